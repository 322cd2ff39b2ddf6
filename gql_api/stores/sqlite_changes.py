"""The SQLite store's change feed: a follower polls the change log the triggers write
(``post_changes``, in ``sqlite_schema``) on a connection of its own. Every process on the
database file writes to the same log in its write's transaction, so a follower sees them
all, in commit order; a poll is one read of the log's primary key past the last change
seen, and costs next to nothing when there is none."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiosqlite

from gql_api.domain.records import ChangeKind, PostChange
from gql_api.stores.base import DatabaseUnavailable
from gql_api.stores.sqlite_schema import CHANGES_KEPT, record_of

# How often a follower reads the log: the live feed's delay, at most.
POLL_SECONDS = 0.1
# Changes read at a time (a burst of writes comes out over several reads).
BATCH = 500


class SqliteFollower:
    """One follower of the change log, from the moment it was opened."""

    def __init__(self, db: aiosqlite.Connection, last_seq: int) -> None:
        self._db: aiosqlite.Connection | None = db
        self._last = last_seq
        self._ready: list[PostChange] = []

    @classmethod
    async def open(
        cls, path: Path, connect: Callable[[Path], Awaitable[aiosqlite.Connection]]
    ) -> SqliteFollower:
        try:
            db = await connect(path)
            try:
                cursor = await db.execute("SELECT max(seq) FROM post_changes")
                rows = list(await cursor.fetchall())
            except BaseException:
                await db.close()
                raise
        except (sqlite3.Error, OSError) as error:
            raise DatabaseUnavailable(f"cannot follow {path}: {error}") from error
        return cls(db, rows[0][0] or 0)

    def __aiter__(self) -> SqliteFollower:
        return self

    async def __anext__(self) -> PostChange:
        while not self._ready:
            if self._db is None:
                raise StopAsyncIteration
            await self._read()
            if not self._ready:
                await asyncio.sleep(POLL_SECONDS)
        return self._ready.pop(0)

    async def _read(self) -> None:
        assert self._db is not None
        try:
            cursor = await self._db.execute(
                "SELECT seq, kind, row FROM post_changes WHERE seq > ? ORDER BY seq LIMIT ?",
                (self._last, BATCH),
            )
            rows = list(await cursor.fetchall())
        except sqlite3.Error as error:
            raise DatabaseUnavailable(f"the change log cannot be read: {error}") from error
        if rows and rows[0][0] != self._last + 1:
            # The log was pruned past the last change seen: some are lost to this follower.
            raise DatabaseUnavailable(
                f"the change feed fell more than {CHANGES_KEPT} changes behind the writes"
            )
        for seq, kind, row in rows:
            self._last = seq
            self._ready.append(PostChange(ChangeKind(kind), record_of(json.loads(row))))

    async def aclose(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await db.close()
