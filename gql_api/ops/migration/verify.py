"""``--verify``: the source read again, every row converted as the migration did, and
each record compared field by field with what the target store answers.

The ids met are kept in memory to tell a duplicate from a mismatch (about 100 bytes
each: some 100 MB at a million posts).
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field

from gql_api.domain.records import PostRecord, ProfileRecord
from gql_api.ops.migration.calls import Calls
from gql_api.ops.migration.legacy import convert, record_key
from gql_api.ops.migration.runner import Progress
from gql_api.ops.migration.sources import Kind, LegacySource
from gql_api.stores.base import PostStore

SHOWN_MISMATCHES = 20
# Fields the store sets of its own, not the migration's to compare.
_NOT_COMPARED = {"etag", "idempotency_digest"}


@dataclass(slots=True)
class Tally:
    in_source: int = 0  # the source's own count
    read: int = 0
    left_behind: int = 0  # rows the rules leave behind (reported by the migration)
    duplicates: int = 0  # an id met again: the first row is the one migrated
    matching: int = 0
    missing: int = 0
    different: int = 0

    @property
    def ok(self) -> bool:
        return self.missing == 0 and self.different == 0 and self.read == self.in_source


@dataclass(slots=True)
class Verification:
    tallies: dict[str, Tally] = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)  # the first few, one line each

    @property
    def ok(self) -> bool:
        return all(tally.ok for tally in self.tallies.values())


def differing_fields(
    expected: PostRecord | ProfileRecord, stored: PostRecord | ProfileRecord
) -> list[str]:
    """The names of the fields in which ``stored`` is not ``expected``."""
    return [
        f.name
        for f in dataclasses.fields(expected)
        if f.name not in _NOT_COMPARED and getattr(expected, f.name) != getattr(stored, f.name)
    ]


async def verify(
    source: LegacySource, store: PostStore, calls: Calls, progress: Progress
) -> Verification:
    result = Verification()
    for kind in Kind:
        tally = result.tallies[kind.value] = Tally()
        tally.in_source = await calls(lambda: source.count(kind))  # noqa: B023 - awaited here
        progress.start(kind, tally.in_source, 0)
        seen: set[str] = set()
        position: str | None = None
        try:
            while True:
                page = await calls.page(source, kind, position)
                expected: list[tuple[str, PostRecord | ProfileRecord]] = []
                for row in page.rows:
                    record = convert(kind, row).record
                    if record is None:
                        tally.left_behind += 1
                    elif record_key(record) in seen:
                        tally.duplicates += 1
                    else:
                        seen.add(record_key(record))
                        expected.append((row.ref, record))
                tally.read += len(page.rows)
                stored = await _stored(kind, [r for _, r in expected], store, calls)
                for (ref, record), there in zip(expected, stored, strict=True):
                    _compare(kind, ref, record, there, tally, result)
                progress.advance(len(page.rows))
                if page.position is None:
                    break
                position = page.position
        finally:
            progress.finish()
    return result


async def _stored(
    kind: Kind, records: list[PostRecord | ProfileRecord], store: PostStore, calls: Calls
) -> list[PostRecord | ProfileRecord | None]:
    if kind is Kind.PROFILES:
        ids = [record_key(r) for r in records]
        found = await calls(lambda: store.get_profiles(ids))
        return [found.get(i) for i in ids]
    readers = asyncio.Semaphore(16)

    async def read(post_id: str) -> PostRecord | None:
        async with readers:
            await calls.item()
            return await calls(lambda: store.get(post_id))

    return list(await asyncio.gather(*(read(record_key(r)) for r in records)))


def _compare(
    kind: Kind,
    ref: str,
    expected: PostRecord | ProfileRecord,
    stored: PostRecord | ProfileRecord | None,
    tally: Tally,
    result: Verification,
) -> None:
    if stored is None:
        tally.missing += 1
        problem = "missing from the target"
    else:
        fields = differing_fields(expected, stored)
        if not fields:
            tally.matching += 1
            return
        tally.different += 1
        problem = "differs in " + ", ".join(fields)
    if len(result.mismatches) < SHOWN_MISMATCHES:
        result.mismatches.append(f"{kind.value} {ref} ({record_key(expected)}): {problem}")
