"""What only the SQLite store promises: its files, its schema migrations, its query plans."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite
import pytest

from gql_api.domain.records import PostRecord, ProfileRecord
from gql_api.domain.service import NewPost, PostService
from gql_api.errors import StoreUnavailableError
from gql_api.settings import Settings, SettingsError, load_settings
from gql_api.stores import create_store
from gql_api.stores import sqlite as sqlite_module
from gql_api.stores.base import DatabaseUnavailable, PageQuery
from gql_api.stores.sqlite import SqliteStore, _fetchall
from gql_api.stores.sqlite_schema import MIGRATIONS, page_sql
from tests.helpers import ALICE, record

FEEDS = [
    PageQuery(first=20),
    PageQuery(first=20, after="1700000000000000.p1"),
    PageQuery(first=20, tag="x"),
    PageQuery(first=20, tag="x", after="1700000000000000.p1"),
    PageQuery(first=20, author_id="alice", after="1700000000000000.p1"),
    PageQuery(first=20, tag="x", author_id="alice", after="1700000000000000.p1"),
]


@pytest.mark.parametrize(
    "query", FEEDS, ids=lambda q: f"tag={q.tag},author={q.author_id},after={q.after is not None}"
)
def test_every_feed_page_is_an_index_range_without_sorting(query: PageQuery) -> None:
    db = sqlite3.connect(":memory:")
    for script in MIGRATIONS:
        db.executescript(script)
    sql, params = page_sql(query)
    plan = [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
    assert plan
    assert not any("TEMP B-TREE" in step for step in plan), plan
    # A filtered page seeks straight to its feed; only the whole feed's first page may
    # walk an index from its start (and stops after first + 1 rows).
    unfiltered = query.tag is None and query.author_id is None
    for step in plan:
        assert step.startswith("SEARCH") or (
            unfiltered and step == "SCAN p USING INDEX posts_feed"
        ), plan
    seek = plan[0]
    if query.tag is not None:
        assert "tag=?" in seek, plan
    if query.author_id is not None:
        assert "author_id=?" in seek, plan
    if query.after is not None:
        assert "<(?,?)" in seek, plan


async def test_data_and_schema_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "gql-api.db"
    store = SqliteStore(path)
    await store.open()
    post = await store.create(record(tags=("kept",)))
    await store.close()
    reopened = SqliteStore(path)
    await reopened.open()
    try:
        assert await reopened.get(post.id) == post
        page = await reopened.list_posts(PageQuery(first=5, tag="kept"))
        assert [p.id for p in page.posts] == [post.id]
    finally:
        await reopened.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_a_version_1_database_is_migrated_and_keeps_its_profiles(tmp_path: Path) -> None:
    path = tmp_path / "gql-api.db"
    with sqlite3.connect(path) as db:  # as the first release left it
        db.executescript(MIGRATIONS[0])
        db.execute("INSERT INTO profiles (user_id, nickname) VALUES ('alice', 'Alice')")
        db.execute("PRAGMA user_version = 1")
    store = SqliteStore(path)
    await store.open()
    try:
        assert await store.get_profiles(["alice"]) == {"alice": ProfileRecord("alice", "Alice")}
        renamed = ProfileRecord("alice", "Ally", updated_at=datetime(2026, 3, 1, tzinfo=UTC))
        await store.put_profile(renamed)
        assert await store.get_profiles(["alice"]) == {"alice": renamed}
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


async def test_a_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "gql-api.db"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    store = SqliteStore(path)
    with pytest.raises(DatabaseUnavailable, match="upgrade gql-api"):
        await store.open()


async def test_a_path_that_cannot_hold_a_database_is_store_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    store = SqliteStore(blocker / "gql-api.db")
    with pytest.raises(DatabaseUnavailable, match="cannot open"):
        await store.open()


async def test_a_closed_store_is_unavailable_not_broken(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "gql-api.db")
    await store.open()
    await store.close()
    with pytest.raises(DatabaseUnavailable):
        await store.get("x")
    with pytest.raises(DatabaseUnavailable):
        await store.create(record())


async def test_writes_given_up_mid_way_leave_the_store_writable(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "gql-api.db")
    await store.open()
    try:
        hurried = PostService(store, timeout=0.003)
        outcomes = await asyncio.gather(
            *(hurried.create_post(ALICE, NewPost(content=f"#{i}", tags=["t"])) for i in range(200)),
            return_exceptions=True,
        )
        assert all(isinstance(o, PostRecord | StoreUnavailableError) for o in outcomes)
        await asyncio.sleep(0.5)  # let the transactions already started finish
        patient = PostService(store, timeout=5)
        post = await patient.create_post(ALICE, NewPost(content="after", tags=["t"]))
        assert await store.get(post.id) == post
        # every post that exists has its tag entry: nothing was half written
        listed = await patient.list_posts(first=100, tag="t")
        everything = await patient.list_posts(first=100)
        assert {e.post.id for e in listed.edges} == {e.post.id for e in everything.edges}
    finally:
        await store.close()


async def test_a_write_lock_held_elsewhere_is_store_unavailable_then_recovers(
    tmp_path: Path,
) -> None:
    path = tmp_path / "gql-api.db"
    store = SqliteStore(path, timeout=0.5)
    await store.open()
    try:
        service = PostService(store, timeout=0.5)
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # another process is writing, for a long time
        with pytest.raises(StoreUnavailableError):
            await service.create_post(ALICE, NewPost(content="blocked"))
        await asyncio.sleep(0.3)  # the lock goes soon after the answer...
        other.execute("ROLLBACK")
        other.close()
        await asyncio.sleep(1.0)
        # ...and the write the client was told failed did not happen after all.
        assert (await service.list_posts(first=10)).edges == []
        post = await service.create_post(ALICE, NewPost(content="works again"))
        assert await store.get(post.id) == post
    finally:
        await store.close()


async def test_a_write_whose_work_ends_past_the_deadline_is_rolled_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock taken late, or the work slow: a transaction that would COMMIT after the
    caller was answered STORE_UNAVAILABLE is rolled back instead (a retry makes no
    duplicate)."""
    store = SqliteStore(tmp_path / "gql-api.db", timeout=0.5)
    await store.open()
    insert_tags = sqlite_module._insert_tags
    slow = True

    async def slow_insert_tags(db: aiosqlite.Connection, post: PostRecord) -> None:
        await insert_tags(db, post)
        if slow:  # inside the transaction, past the deadline (0.45 s) and the timeout
            await asyncio.sleep(0.8)

    monkeypatch.setattr(sqlite_module, "_insert_tags", slow_insert_tags)
    try:
        service = PostService(store, timeout=0.5)
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError):
            await service.create_post(ALICE, NewPost(content="late", tags=["t"]))
        assert time.monotonic() - started < 0.75  # the service's timeout answered
        with pytest.raises(DatabaseUnavailable, match="deadline"):  # the store alone, too
            await store.create(record(tags=("t",)))
        await asyncio.sleep(0.5)  # the first transaction has ended by now
        # Neither write took effect, posts nor tags...
        assert (await service.list_posts(first=10)).edges == []
        assert (await service.list_posts(first=10, tag="t")).edges == []
        # ...and the writer is free and healthy.
        slow = False
        post = await service.create_post(ALICE, NewPost(content="works", tags=["t"]))
        assert await store.get(post.id) == post
    finally:
        await store.close()


@pytest.mark.parametrize(("setting", "pragma"), [(None, 2), ("NORMAL", 1), ("full", 2)])
async def test_writes_are_durable_unless_relaxed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str | None, pragma: int
) -> None:
    """synchronous FULL by default: an acknowledged write survives a power loss."""
    if setting is not None:
        monkeypatch.setenv("GQL_API_SQLITE_SYNCHRONOUS", setting)
    settings = Settings(sqlite_path=tmp_path / "gql-api.db")
    store = create_store(settings)
    assert isinstance(store, SqliteStore)
    await store.open()
    try:
        connections = [store._writer, *store._all_readers]
        for db in connections:
            assert db is not None
            assert (await _fetchall(db, "PRAGMA synchronous"))[0] == (pragma,)
    finally:
        await store.close()


def test_an_unknown_synchronous_mode_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GQL_API_SQLITE_SYNCHRONOUS", "off")
    with pytest.raises(SettingsError, match="GQL_API_SQLITE_SYNCHRONOUS='off'"):
        load_settings()
