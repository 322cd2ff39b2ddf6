"""The migration itself: page by page from the source, each row converted under today's
rules and written through the target store, the place kept after every page.

Writes are creates, never overwrites: a post already in the target as it would be
written is left alone (so a page done again after a crash writes nothing twice), and one
there with other values is a duplicate id, reported. A profile already in the target is
never replaced: after the cut-over it is the user's newer one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from gql_api.domain.records import PostRecord, ProfileRecord
from gql_api.ops.migration import checkpoint as checkpoints
from gql_api.ops.migration.calls import Calls
from gql_api.ops.migration.checkpoint import Checkpoint, Counts, Report
from gql_api.ops.migration.legacy import Finding, convert, record_key
from gql_api.ops.migration.sources import Kind, LegacyRow, LegacySource
from gql_api.stores.base import AlreadyExists, PostStore

# Findings kept in memory for the summary; all of them are in the report file.
SHOWN_FINDINGS = 20


class Progress(Protocol):
    def start(self, kind: Kind, total: int, done: int) -> None: ...

    def advance(self, rows: int) -> None: ...

    def finish(self) -> None: ...


class StrictStop(Exception):
    """``--strict``: the first row that breaks a rule ends the migration."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(f"{finding.kind.value} {finding.ref}: {finding.reason}")
        self.finding = finding


@dataclass(slots=True)
class Outcome:
    counts: dict[str, Counts]
    findings: list[Finding] = field(default_factory=list)  # the first few, for the summary
    finished_before: bool = False  # the checkpoint said done: nothing was read


class Migration:
    def __init__(
        self,
        source: LegacySource,
        store: PostStore,
        calls: Calls,
        progress: Progress,
        *,
        checkpoint_path: Path,
        report_path: Path,
        target: str,
        strict: bool = False,
        dry_run: bool = False,
        concurrency: int = 16,
    ) -> None:
        self.source = source
        self.store = store
        self.calls = calls
        self.progress = progress
        self.checkpoint_path = checkpoint_path
        self.report_path = report_path
        self.target = target
        self.strict = strict
        self.dry_run = dry_run
        self._writers = asyncio.Semaphore(concurrency)
        # A dry run's records as the target would have them by then: key -> hash.
        self._seen: dict[str, int] = {}
        self._shown: list[Finding] = []

    async def run(self) -> Outcome:
        if self.dry_run:
            state = Checkpoint(source=self.source.location, target=self.target)
        else:
            state = checkpoints.load(self.checkpoint_path, self.source.location, self.target)
            if state.done:
                return Outcome(state.counts, finished_before=True)
        report = Report(self.report_path, 0 if self.dry_run else state.report_bytes)
        try:
            for kind in Kind:
                if not state.is_past(kind):
                    await self._migrate(kind, state, report)
        finally:
            report.close()
        return Outcome(state.counts, self._shown)

    async def _migrate(self, kind: Kind, state: Checkpoint, report: Report) -> None:
        counts = state.counts[kind.value]
        total = await self.calls(lambda: self.source.count(kind))
        self.progress.start(kind, total, counts.read)
        try:
            while True:
                page = await self.calls.page(self.source, kind, state.position)
                rows = page.rows
                done = Counts(read=len(rows))
                try:
                    findings = await self._page(kind, rows, done)
                except StrictStop as stop:
                    report.write([stop.finding])
                    report.flush()
                    raise
                report.write(findings)
                self._show(findings)
                counts.add(done)
                self.progress.advance(len(rows))
                state.position = page.position
                last = state.position is None
                if last:
                    state.phase = checkpoints.PHASES[checkpoints.PHASES.index(kind.value) + 1]
                state.report_bytes = report.flush()
                if not self.dry_run:
                    checkpoints.save(self.checkpoint_path, state)
                if last:
                    return
        finally:
            self.progress.finish()

    async def _page(self, kind: Kind, rows: Sequence[LegacyRow], done: Counts) -> list[Finding]:
        """Convert and write one page; its findings. In strict mode the rows before the
        first finding are written, then ``StrictStop``."""
        findings: list[Finding] = []
        records: list[tuple[LegacyRow, PostRecord | ProfileRecord, bool]] = []
        for row in rows:
            converted = convert(kind, row)
            if converted.findings and self.strict:
                await self._write(kind, records, done, findings)
                raise StrictStop(converted.findings[0])
            findings.extend(converted.findings)
            if converted.record is None:
                done.left_behind += 1
            else:
                records.append((row, converted.record, bool(converted.findings)))
        await self._write(kind, records, done, findings)
        if self.strict and findings:
            raise StrictStop(findings[0])
        return findings

    async def _write(
        self,
        kind: Kind,
        records: list[tuple[LegacyRow, PostRecord | ProfileRecord, bool]],
        done: Counts,
        findings: list[Finding],
    ) -> None:
        # The same id twice in a page: the later row waits for the earlier's write, so the
        # first in the source's order is the one kept, as across pages.
        waves: list[list[tuple[LegacyRow, PostRecord | ProfileRecord, bool]]] = []
        seen: dict[str, int] = {}
        for entry in records:
            key = record_key(entry[1])
            wave = seen.get(key, 0)
            seen[key] = wave + 1
            if wave == len(waves):
                waves.append([])
            waves[wave].append(entry)
        for group in waves:
            if kind is Kind.POSTS:
                outcomes = await asyncio.gather(*(self._post(entry[1]) for entry in group))
            else:
                outcomes = await self._profiles([entry[1] for entry in group])
            for (row, record, repaired), outcome in zip(group, outcomes, strict=True):
                if outcome == "duplicate":
                    done.left_behind += 1
                    findings.append(_duplicate(kind, row, record))
                elif outcome == "already":
                    done.already += 1
                else:
                    done.written += 1
                    done.repaired += repaired

    async def _post(self, record: PostRecord | ProfileRecord) -> str:
        """ "written", "already" (there as it would be written) or "duplicate"."""
        assert isinstance(record, PostRecord)
        async with self._writers:
            await self.calls.item()
            if self.dry_run:
                return await self._dry_post(record)
            try:
                await self.calls(lambda: self.store.create(record))
                return "written"
            except AlreadyExists:
                stored = await self.calls(lambda: self.store.get(record.id))
                if stored != record:
                    return "duplicate"
                # Also a retried write of this run whose first answer was lost (timed
                # out, refused after it landed): "written" is never claimed unproven.
                return "already"

    async def _dry_post(self, record: PostRecord) -> str:
        if record.id in self._seen:
            return "already" if self._seen[record.id] == hash(record) else "duplicate"
        stored = await self.calls(lambda: self.store.get(record.id))
        self._seen[record.id] = hash(record if stored is None else stored)
        if stored is None:
            return "written"
        return "already" if stored == record else "duplicate"

    async def _profiles(self, records: Sequence[PostRecord | ProfileRecord]) -> list[str]:
        profiles = [r for r in records if isinstance(r, ProfileRecord)]
        ids = [p.user_id for p in profiles]
        stored = await self.calls(lambda: self.store.get_profiles(ids))

        async def put(profile: ProfileRecord) -> str:
            there = stored.get(profile.user_id)
            if there is not None:
                return "already" if there == profile else "duplicate"
            if self.dry_run and profile.user_id in self._seen:
                return "already" if self._seen[profile.user_id] == hash(profile) else "duplicate"
            async with self._writers:
                await self.calls.item()
                if self.dry_run:
                    self._seen[profile.user_id] = hash(profile)
                else:
                    await self.calls(lambda: self.store.put_profile(profile))
            return "written"

        return list(await asyncio.gather(*(put(p) for p in profiles)))

    def _show(self, findings: list[Finding]) -> None:
        room = SHOWN_FINDINGS - len(self._shown)
        self._shown.extend(findings[: max(room, 0)])


def _duplicate(kind: Kind, row: LegacyRow, record: PostRecord | ProfileRecord) -> Finding:
    if isinstance(record, PostRecord):
        reason = (
            f"postId {record.id} is in the target already with other values: a duplicate id "
            "in the source (the first row kept), or a post changed since it was migrated"
        )
        return Finding(kind, row.ref, "duplicate_id", reason, post_id=record.id)
    reason = (
        f"userId {record.user_id!r} has a profile in the target already, with another "
        "nickname: a duplicate in the source (the first row kept), or the user's newer one"
    )
    return Finding(kind, row.ref, "duplicate_id", reason)
