"""The embedded store: SQLite in WAL mode through aiosqlite (each connection on its own thread).

One writer connection behind a lock and a pool of readers; keyset pages on indexes;
updates and deletes conditional on the version. Layout, durability
(``GQL_API_SQLITE_SYNCHRONOUS``) and scale: README, "The SQLite store".
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

import aiosqlite

from gql_api.domain.records import PostChanges, PostRecord, ProfileRecord
from gql_api.stores.base import (
    AlreadyExists,
    DatabaseUnavailable,
    NoSuchPost,
    PageQuery,
    PostPage,
    VersionConflict,
    is_storable_post_id,
    page_of,
    storable_post,
    stored_post_id,
)
from gql_api.stores.keyset import position_of, to_micros
from gql_api.stores.sqlite_changes import SqliteFollower
from gql_api.stores.sqlite_schema import (
    COLUMNS,
    MIGRATIONS,
    page_sql,
    profile_of,
    record_of,
    statements,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

READERS = 4
SqliteSynchronous = Literal["full", "normal"]
_SYNCHRONOUS: dict[str, str] = {"full": "FULL", "normal": "NORMAL"}
# A write transaction's deadline, as a share of the store timeout: it waits for another
# process's lock until then, and is rolled back rather than committed when its work ends
# past it, so it fails before the caller's own timeout answers STORE_UNAVAILABLE (the
# rest of the timeout is the COMMIT's margin).
BUSY_SHARE = 0.9


class SqliteStore:
    name = "sqlite"

    def __init__(
        self,
        path: Path,
        *,
        readers: int = READERS,
        timeout: float = 5.0,
        synchronous: SqliteSynchronous = "full",
    ) -> None:
        self.path = path
        self.synchronous = synchronous
        self.timeout = timeout  # the service's store timeout: a write never outlives it
        self._reader_count = readers
        self._writer: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._readers: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._all_readers: list[aiosqlite.Connection] = []

    async def open(self) -> None:
        try:
            await asyncio.to_thread(self.path.parent.mkdir, parents=True, exist_ok=True)
            self._writer = await self._connect()
            await self._migrate()
            for _ in range(self._reader_count):
                reader = await self._connect()
                self._all_readers.append(reader)
                self._readers.put_nowait(reader)
        except (sqlite3.Error, OSError) as exc:
            await self.close()
            raise DatabaseUnavailable(f"cannot open {self.path}: {exc}") from exc

    async def close(self) -> None:
        connections = [*self._all_readers, *([self._writer] if self._writer else [])]
        self._all_readers.clear()
        self._readers = asyncio.Queue()
        self._writer = None
        for connection in connections:
            await connection.close()

    async def ping(self) -> None:
        async with self._read() as db:
            await _fetchall(db, "SELECT 1")

    async def provision(self) -> str:
        return f"database {self.path} at schema version {len(MIGRATIONS)} (migrated on open)"

    async def inspect(self) -> list[tuple[bool, str]]:
        async with self._read() as db:
            (mode,) = (await _fetchall(db, "PRAGMA journal_mode"))[0]
            (version,) = (await _fetchall(db, "PRAGMA user_version"))[0]
        return [
            (mode == "wal", f"database {self.path}: journal mode {mode}"),
            (version == len(MIGRATIONS), f"database {self.path}: schema version {version}"),
        ]

    async def get(self, post_id: str) -> PostRecord | None:
        if not is_storable_post_id(post_id):
            return None
        async with self._read() as db:
            rows = await _fetchall(db, f"SELECT {COLUMNS} FROM posts WHERE id = ?", (post_id,))
        return record_of(rows[0]) if rows else None

    async def create(self, post: PostRecord) -> PostRecord:
        storable_post(post)

        async def work(db: aiosqlite.Connection) -> PostRecord:
            if await _fetchall(db, "SELECT 1 FROM posts WHERE id = ?", (post.id,)):
                raise AlreadyExists(post.id)
            await db.execute(
                f"INSERT INTO posts ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    post.id,
                    post.author_id,
                    post.content,
                    int(post.is_markdown),
                    json.dumps(post.tags),
                    json.dumps(post.image_keys),
                    to_micros(post.created_at),
                    None if post.updated_at is None else to_micros(post.updated_at),
                    post.version,
                    post.author_nickname,
                    post.idempotency_digest,
                ),
            )
            await _insert_tags(db, post)
            return post

        return await self._transaction(work)

    async def update(self, current: PostRecord, changes: PostChanges) -> PostRecord:
        stored_post_id(current.id)

        async def work(db: aiosqlite.Connection) -> PostRecord:
            cursor = await db.execute(
                "UPDATE posts SET content = ?, is_markdown = ?, tags = ?, image_keys = ?, "
                "updated_us = ?, version = version + 1 "
                f"WHERE id = ? AND version = ? RETURNING {COLUMNS}",
                (
                    changes.content,
                    int(changes.is_markdown),
                    json.dumps(changes.tags),
                    json.dumps(changes.image_keys),
                    to_micros(changes.updated_at),
                    current.id,
                    current.version,
                ),
            )
            row = await cursor.fetchone()
            await cursor.close()
            if row is None:
                await _raise_missing_or_conflict(db, current.id)
            updated = record_of(row)
            await db.execute("DELETE FROM post_tags WHERE post_id = ?", (current.id,))
            await _insert_tags(db, updated)
            return updated

        return await self._transaction(work)

    async def delete(self, current: PostRecord) -> None:
        stored_post_id(current.id)

        async def work(db: aiosqlite.Connection) -> None:
            cursor = await db.execute(
                "DELETE FROM posts WHERE id = ? AND version = ?", (current.id, current.version)
            )
            if cursor.rowcount == 0:
                await _raise_missing_or_conflict(db, current.id)
            await db.execute("DELETE FROM post_tags WHERE post_id = ?", (current.id,))

        await self._transaction(work)

    async def list_posts(self, query: PageQuery) -> PostPage:
        sql, params = page_sql(query)
        async with self._read() as db:
            rows = await _fetchall(db, sql, params)
        return page_of([record_of(row) for row in rows], query.first, position_of)

    async def get_profiles(self, user_ids: Sequence[str]) -> Mapping[str, ProfileRecord]:
        if not user_ids:
            return {}
        marks = ", ".join("?" * len(user_ids))
        async with self._read() as db:
            rows = await _fetchall(
                db,
                f"SELECT user_id, nickname, updated_us FROM profiles WHERE user_id IN ({marks})",
                tuple(user_ids),
            )
        return {row[0]: profile_of(row) for row in rows}

    async def put_profile(self, profile: ProfileRecord) -> ProfileRecord:
        async def work(db: aiosqlite.Connection) -> None:
            await db.execute(
                "INSERT INTO profiles (user_id, nickname, updated_us) VALUES (?, ?, ?) "
                "ON CONFLICT (user_id) DO UPDATE "
                "SET nickname = excluded.nickname, updated_us = excluded.updated_us",
                (
                    profile.user_id,
                    profile.nickname,
                    None if profile.updated_at is None else to_micros(profile.updated_at),
                ),
            )

        await self._transaction(work)
        return profile

    async def changes(self) -> SqliteFollower:
        """Every process's writes on this file, from now on (see ``sqlite_changes``)."""
        if self._writer is None:
            raise DatabaseUnavailable("the store is closed")
        return await SqliteFollower.open(self.path, self._connect)

    async def _connect(self, path: Path | None = None) -> aiosqlite.Connection:
        db = await aiosqlite.connect(path or self.path, isolation_level=None)
        await db.execute("PRAGMA journal_mode = WAL")
        # FULL: a write acknowledged survives a power loss (NORMAL, in WAL mode, may lose
        # the last ones); bench/sqlite_durability.py measures the cost.
        await db.execute(f"PRAGMA synchronous = {_SYNCHRONOUS[self.synchronous]}")
        await db.execute("PRAGMA busy_timeout = 5000")
        return db

    async def _migrate(self) -> None:
        async def work(db: aiosqlite.Connection) -> None:
            (version,) = (await _fetchall(db, "PRAGMA user_version"))[0]
            if version > len(MIGRATIONS):
                raise DatabaseUnavailable(
                    f"{self.path} has schema version {version}, newer than this "
                    f"gql-api knows ({len(MIGRATIONS)}): upgrade gql-api"
                )
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in statements(script):
                    await db.execute(statement)
                await db.execute(f"PRAGMA user_version = {number}")

        await self._transaction(work, bound_work=False)

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[aiosqlite.Connection]:
        if not self._all_readers:
            raise DatabaseUnavailable("the store is closed")
        db = await self._readers.get()
        try:
            yield db
        except sqlite3.OperationalError as exc:
            raise DatabaseUnavailable(str(exc)) from exc
        finally:
            self._readers.put_nowait(db)

    async def _transaction(
        self, work: Callable[[aiosqlite.Connection], Awaitable[T]], *, bound_work: bool = True
    ) -> T:
        """Run ``work`` in one write transaction that always ends in COMMIT or ROLLBACK.

        A caller that gives up (a timeout) while waiting for the lock leaves nothing
        behind. Once the lock is held, the transaction runs as its own shielded task to
        its end, so a cancellation can never leave BEGIN without COMMIT or ROLLBACK on
        the shared writer connection.

        The transaction has a deadline, ``BUSY_SHARE`` of ``timeout`` after this call
        (a little less than the caller's own timeout): waiting for another process's
        lock (SQLite's busy timeout) gets what is left of it, and a transaction whose
        ``work`` ends past it is rolled back instead of committed (DatabaseUnavailable). So
        a write the caller was told failed (STORE_UNAVAILABLE) does not take effect
        later, when that lock goes or the work ends: a client that retries it makes no
        duplicate. The one window left is the COMMIT itself: started before the
        deadline, its WAL append and fsync can still end after the caller's timeout on a
        stalled disk (the remaining tenth of the timeout is its margin), and a COMMIT
        cannot be recalled once issued.

        ``bound_work=False`` (the schema migrations at open, which no client waits for
        and which may take long on a big database) bounds only the wait for the lock.
        """
        deadline = time.monotonic() + self.timeout * BUSY_SHARE
        await self._write_lock.acquire()
        if time.monotonic() >= deadline:
            self._write_lock.release()
            raise DatabaseUnavailable("timed out waiting for the writer")
        task = asyncio.create_task(
            self._run_transaction(work, deadline, deadline if bound_work else None)
        )
        task.add_done_callback(_retrieve_exception)
        return await asyncio.shield(task)

    async def _run_transaction(
        self,
        work: Callable[[aiosqlite.Connection], Awaitable[T]],
        lock_deadline: float,
        commit_deadline: float | None,
    ) -> T:
        """BEGIN IMMEDIATE (waiting for another process's lock until ``lock_deadline``),
        ``work``, then COMMIT, or ROLLBACK if ``work`` failed or ended past
        ``commit_deadline``."""
        try:
            db = self._writer
            if db is None:
                raise DatabaseUnavailable("the store is closed")
            if db.in_transaction:  # never expected; heal rather than fail every later write
                log.error("sqlite writer was left inside a transaction; rolling it back")
                await db.execute("ROLLBACK")
            busy_ms = max(1, int((lock_deadline - time.monotonic()) * 1000) + 1)
            await db.execute(f"PRAGMA busy_timeout = {busy_ms}")
            await db.execute("BEGIN IMMEDIATE")
            try:
                result = await work(db)
                if commit_deadline is not None and time.monotonic() >= commit_deadline:
                    # The caller is answered STORE_UNAVAILABLE, or soon will be.
                    raise DatabaseUnavailable("the write ran past its deadline; rolled back")
                await db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    await db.execute("ROLLBACK")
                raise
            return result
        except sqlite3.OperationalError as exc:  # locked past busy_timeout, disk I/O
            raise DatabaseUnavailable(str(exc)) from exc
        finally:
            self._write_lock.release()


def _retrieve_exception(task: asyncio.Task[Any]) -> None:
    """The caller may be gone (cancelled); its task's failure is then only logged here."""
    if not task.cancelled() and task.exception() is not None:
        log.debug("write transaction ended with %r", task.exception())


async def _fetchall(
    db: aiosqlite.Connection, sql: str, params: tuple[Any, ...] = ()
) -> list[sqlite3.Row]:
    return list(await db.execute_fetchall(sql, params))


async def _raise_missing_or_conflict(db: aiosqlite.Connection, post_id: str) -> None:
    rows = await _fetchall(db, "SELECT version FROM posts WHERE id = ?", (post_id,))
    if not rows:
        raise NoSuchPost(post_id)
    raise VersionConflict(int(rows[0][0]))


async def _insert_tags(db: aiosqlite.Connection, post: PostRecord) -> None:
    if post.tags:
        micros = to_micros(post.created_at)
        await db.executemany(
            "INSERT INTO post_tags (tag, created_us, post_id, author_id) VALUES (?, ?, ?, ?)",
            [(tag, micros, post.id, post.author_id) for tag in post.tags],
        )
