"""The migration loop (gql_api.ops.migration.runner) over a source held in a list, into
the embedded SQLite store: resume, reruns, strict mode, duplicates, throttling. The
same runs against each legacy layout on its real local server: tests/test_migrate.py."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import pytest

from gql_api.domain.records import PostRecord
from gql_api.ops.migration import checkpoint as checkpoints
from gql_api.ops.migration.calls import CallOptions, Calls
from gql_api.ops.migration.runner import Migration, Outcome, StrictStop
from gql_api.ops.migration.sources import Kind, LegacyPage, LegacyRow
from gql_api.ops.migration.verify import verify
from gql_api.settings import Settings
from gql_api.stores.base import DatabaseUnavailable, PageQuery
from gql_api.stores.sqlite import SqliteStore


def legacy(n: int, **changes: Any) -> dict[str, Any]:
    return {
        "postId": f"00000000-0000-4000-8000-{n:012d}",
        "userId": f"user-{n % 3}",
        "nickname": f"User {n % 3}",
        "content": f"post {n}",
        "isMarkdown": False,
        "tags": ["Feed", f"n{n % 5}"],
        "imageKeys": [f"user-{n % 3}/legacy/{n}.jpg"],
        "createdAt": f"2024-01-01T00:{n // 60:02d}:{n % 60:02d}+00:00",
        "updatedAt": None,
    } | changes


class ListSource:
    """Rows in a list; a page's position is the index just past it."""

    name = "list"
    location = "a list"

    def __init__(self, posts: list[dict[str, Any]], profiles: list[dict[str, Any]]) -> None:
        self.rows = {Kind.POSTS: posts, Kind.PROFILES: profiles}
        self.reads = 0

    def overlaps(self, settings: Settings) -> str | None:
        return None

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def count(self, kind: Kind) -> int:
        return len(self.rows[kind])

    async def page(self, kind: Kind, after: str | None, size: int) -> LegacyPage:
        start = 0 if after is None else int(after)
        rows = self.rows[kind]
        self.reads += 1
        end = min(start + size, len(rows))
        page = [LegacyRow(str(i), rows[i]) for i in range(start, end)]
        return LegacyPage(page, None if end == len(rows) else str(end))


class Quiet:
    def start(self, kind: Kind, total: int, done: int) -> None: ...

    def advance(self, rows: int) -> None: ...

    def finish(self) -> None: ...


class CountingStore(SqliteStore):
    """The embedded store, counting its writes; ``throttle_every`` refuses every n-th
    create as a throttled database does (``DatabaseUnavailable``), after writing it
    for every other one of those: a write whose answer was lost."""

    def __init__(self, path: Path, throttle_every: int = 0) -> None:
        super().__init__(path)
        self.creates = 0
        self.lost_answers = 0  # creates written, then refused all the same
        self.puts = 0
        self.throttle_every = throttle_every

    async def create(self, post: PostRecord) -> PostRecord:
        self.creates += 1
        if self.throttle_every and self.creates % self.throttle_every == 0:
            if self.creates % (2 * self.throttle_every) == 0:
                await super().create(post)
                self.lost_answers += 1
            raise DatabaseUnavailable("throttled")
        return await super().create(post)

    async def put_profile(self, profile: Any) -> Any:
        self.puts += 1
        return await super().put_profile(profile)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncGenerator[CountingStore, None]:
    opened = CountingStore(tmp_path / "target.db")
    await opened.open()
    yield opened
    await opened.close()


def migration(source: ListSource, store: SqliteStore, tmp_path: Path, **options: Any) -> Migration:
    calls = Calls(CallOptions(page_size=options.pop("page_size", 10), attempts=6))
    return Migration(
        source,
        store,
        calls,
        Quiet(),
        checkpoint_path=tmp_path / "checkpoint.json",
        report_path=tmp_path / "report.jsonl",
        target="sqlite target",
        **options,
    )


PROFILES = [{"userId": f"user-{i}", "nickname": f"Nick {i}"} for i in range(3)]


async def all_posts(store: SqliteStore) -> list[PostRecord]:
    page = await store.list_posts(PageQuery(first=1000))
    return page.posts


async def test_a_run_brings_every_valid_row_and_reports_the_rest(
    store: CountingStore, tmp_path: Path
) -> None:
    posts = [legacy(i) for i in range(35)]
    posts[4] = legacy(4, content="x" * 10_001)
    posts[9] = legacy(9, nickname="bad\nname")  # repaired: comes over without it
    posts[20] = legacy(20, content="another text")  # a duplicate id: left behind
    posts[20]["postId"] = posts[3]["postId"]
    profiles = [*PROFILES, {"userId": "user-9", "nickname": "\u202e"}]
    outcome = await migration(ListSource(posts, profiles), store, tmp_path).run()
    counts = outcome.counts["posts"]
    assert (counts.read, counts.written, counts.left_behind, counts.repaired) == (35, 33, 2, 1)
    assert store.creates == 34  # the duplicate's create was refused, nothing overwritten
    assert outcome.counts["profiles"].written == 3 and store.puts == 3
    stored = {p.id: p for p in await all_posts(store)}
    assert len(stored) == 33 and stored[posts[3]["postId"]].content == "post 3"
    assert stored[posts[9]["postId"]].author_nickname is None
    lines = (tmp_path / "report.jsonl").read_text().splitlines()
    rules = sorted(line.split('"rule": "')[1].split('"')[0] for line in lines)
    assert rules == ["bad_content", "bad_nickname", "bad_nickname", "duplicate_id"]
    assert checkpoints.load(tmp_path / "checkpoint.json", "a list", "sqlite target").done


async def test_a_rerun_writes_nothing_and_a_fresh_one_finds_everything_there(
    store: CountingStore, tmp_path: Path
) -> None:
    source = ListSource([legacy(i) for i in range(25)], PROFILES)
    await migration(source, store, tmp_path).run()
    writes, reads = (store.creates, store.puts), source.reads
    again = await migration(source, store, tmp_path).run()
    assert again.finished_before and source.reads == reads
    (tmp_path / "checkpoint.json").unlink()
    fresh = await migration(source, store, tmp_path).run()
    assert (store.creates - writes[0], store.puts) == (25, 3)  # tried, each refused as there
    assert fresh.counts["posts"].already == 25 and fresh.counts["posts"].written == 0
    assert fresh.counts["profiles"].already == 3


async def test_a_run_stopped_midway_resumes_at_its_last_page(
    store: CountingStore, tmp_path: Path
) -> None:
    source = ListSource([legacy(i) for i in range(50)], PROFILES)
    crashing = migration(source, store, tmp_path)
    real_page = crashing._page
    pages = 0

    async def crash_on_the_third(kind: Kind, rows: Any, done: Any) -> Any:
        nonlocal pages
        if kind is Kind.POSTS:
            pages += 1
            if pages == 3:
                await store.create(crashing_record(rows[0]))  # half a page, then the crash
                raise KeyboardInterrupt
        return await real_page(kind, rows, done)

    def crashing_record(row: LegacyRow) -> PostRecord:
        from gql_api.ops.migration.legacy import convert

        record = convert(Kind.POSTS, row).record
        assert isinstance(record, PostRecord)
        return record

    crashing._page = crash_on_the_third  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        await crashing.run()
    state = checkpoints.load(tmp_path / "checkpoint.json", "a list", "sqlite target")
    assert (state.phase, state.position, state.counts["posts"].written) == ("posts", "20", 20)
    outcome = await migration(source, store, tmp_path).run()
    assert outcome.counts["posts"].written == 49 and outcome.counts["posts"].already == 1
    assert len(await all_posts(store)) == 50


async def test_strict_stops_at_the_first_bad_row_after_writing_those_before(
    store: CountingStore, tmp_path: Path
) -> None:
    posts = [legacy(i) for i in range(30)]
    posts[13] = legacy(13, tags=[f"t{i}" for i in range(11)])
    with pytest.raises(StrictStop) as stopped:
        await migration(ListSource(posts, PROFILES), store, tmp_path, strict=True).run()
    assert stopped.value.finding.ref == "13" and stopped.value.finding.rule == "bad_tags"
    assert len(await all_posts(store)) == 13
    posts[13] = legacy(13)  # fixed in the source: the same command goes on from its page
    outcome = await migration(ListSource(posts, PROFILES), store, tmp_path, strict=True).run()
    assert len(await all_posts(store)) == 30
    # Counted from the checkpoint: its first page, then three found there, the rest new.
    assert outcome.counts["posts"].written == 27 and outcome.counts["posts"].already == 3


async def test_a_dry_run_writes_nothing_and_counts_what_a_run_would(
    store: CountingStore, tmp_path: Path
) -> None:
    posts = [legacy(i) for i in range(15)]
    posts.append(dict(posts[2], content="other"))  # a duplicate id
    outcome: Outcome = await migration(
        ListSource(posts, PROFILES), store, tmp_path, dry_run=True
    ).run()
    assert (store.creates, store.puts) == (0, 0) and await all_posts(store) == []
    assert not (tmp_path / "checkpoint.json").exists()
    counts = outcome.counts["posts"]
    assert (counts.written, counts.left_behind) == (15, 1)


async def test_throttled_writes_are_retried_and_land_once(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "t.db", throttle_every=4)
    await store.open()
    try:
        runner = migration(ListSource([legacy(i) for i in range(40)], PROFILES), store, tmp_path)
        outcome = await runner.run()
        assert runner.calls.retries >= 10
        # A write refused after it landed is found there on its retry: "already", as it
        # cannot be told from one made before (a throttled write lands nothing).
        assert store.lost_answers >= 3
        posts = outcome.counts["posts"]
        assert (posts.written, posts.already) == (40 - store.lost_answers, store.lost_answers)
        assert len(await all_posts(store)) == 40
    finally:
        await store.close()


async def test_verify_compares_every_field_and_names_the_ones_that_differ(
    store: CountingStore, tmp_path: Path
) -> None:
    posts = [legacy(i) for i in range(12)]
    posts.append(legacy(12, content=""))  # left behind by the rules
    source = ListSource(posts, PROFILES)
    await migration(source, store, tmp_path).run()
    calls = Calls(CallOptions(page_size=5))
    clean = await verify(source, store, calls, Quiet())
    assert clean.ok and clean.tallies["posts"].matching == 12
    assert clean.tallies["posts"].left_behind == 1
    changed = await store.get(posts[5]["postId"])
    assert changed is not None
    await store.delete(changed)
    await store.create(dataclasses.replace(changed, tags=("other",), etag=None))
    await store.delete((await store.get(posts[6]["postId"])) or changed)
    found = await verify(source, store, calls, Quiet())
    assert not found.ok
    assert (found.tallies["posts"].different, found.tallies["posts"].missing) == (1, 1)
    assert any("differs in tags" in line for line in found.mismatches)


async def test_the_rate_limit_holds_items_to_their_rate() -> None:
    import time

    calls = Calls(CallOptions(rate=40))
    started = time.monotonic()
    for _ in range(80):  # a second's burst, then 40 a second
        await calls.item()
    assert time.monotonic() - started >= 0.9  # a lower bound: the limit, not a speed
