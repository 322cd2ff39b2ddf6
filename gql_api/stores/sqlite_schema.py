"""The SQLite store's tables: their migrations (``PRAGMA user_version``), the columns of
a post, the page queries on their indexes, and rows as records. Layout and why: README,
"The SQLite store"."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from gql_api.domain.records import PostRecord, ProfileRecord
from gql_api.stores.base import PageQuery
from gql_api.stores.keyset import from_micros, parse_position

# Each entry moves the schema from version N to N + 1 (PRAGMA user_version).
MIGRATIONS: list[str] = [
    """
    CREATE TABLE posts (
        id TEXT PRIMARY KEY,
        author_id TEXT NOT NULL,
        content TEXT NOT NULL,
        is_markdown INTEGER NOT NULL,
        tags TEXT NOT NULL,
        image_keys TEXT NOT NULL,
        created_us INTEGER NOT NULL,
        updated_us INTEGER,
        version INTEGER NOT NULL,
        author_nickname TEXT
    );
    CREATE INDEX posts_feed ON posts (created_us DESC, id DESC);
    CREATE INDEX posts_author_feed ON posts (author_id, created_us DESC, id DESC);
    CREATE TABLE post_tags (
        tag TEXT NOT NULL,
        created_us INTEGER NOT NULL,
        post_id TEXT NOT NULL,
        author_id TEXT NOT NULL,
        PRIMARY KEY (tag, created_us, post_id)
    ) WITHOUT ROWID;
    CREATE INDEX post_tags_author ON post_tags (author_id, tag, created_us, post_id);
    CREATE INDEX post_tags_post ON post_tags (post_id);
    CREATE TABLE profiles (
        user_id TEXT PRIMARY KEY,
        nickname TEXT
    ) WITHOUT ROWID;
    """,
    """
    ALTER TABLE profiles ADD COLUMN updated_us INTEGER;
    """,
    """
    ALTER TABLE posts ADD COLUMN idempotency_digest TEXT;
    """,
    # The change log the live feed follows (stores/sqlite_changes.py): written by triggers
    # in the write's own transaction, so every process's writes are in it, and pruned to
    # the last CHANGES_KEPT changes by the insert that goes past them.
    """
    CREATE TABLE post_changes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        row TEXT NOT NULL
    );
    CREATE TRIGGER post_changes_prune AFTER INSERT ON post_changes BEGIN
        DELETE FROM post_changes WHERE seq <= NEW.seq - {kept};
    END;
    CREATE TRIGGER posts_created AFTER INSERT ON posts BEGIN
        INSERT INTO post_changes (kind, row) VALUES ('CREATED', {new});
    END;
    CREATE TRIGGER posts_updated AFTER UPDATE ON posts BEGIN
        INSERT INTO post_changes (kind, row) VALUES ('UPDATED', {new});
    END;
    CREATE TRIGGER posts_deleted AFTER DELETE ON posts BEGIN
        INSERT INTO post_changes (kind, row) VALUES ('DELETED', {old});
    END;
    """,
]

COLUMNS = (
    "id, author_id, content, is_markdown, tags, image_keys, created_us, updated_us, "
    "version, author_nickname, idempotency_digest"
)
P_COLUMNS = ", ".join(f"p.{c.strip()}" for c in COLUMNS.split(","))
# Changes the log keeps: a follower further behind than this has lost its feed.
CHANGES_KEPT = 10_000


def _row_json(alias: str) -> str:
    """A trigger's row as a JSON array in COLUMNS order (``record_of`` reads it back)."""
    return "json_array(" + ", ".join(f"{alias}.{c.strip()}" for c in COLUMNS.split(",")) + ")"


MIGRATIONS[3] = MIGRATIONS[3].format(kept=CHANGES_KEPT, new=_row_json("NEW"), old=_row_json("OLD"))


def statements(script: str) -> list[str]:
    """A migration's statements: split at each ``;`` that ends one (not those inside a
    trigger's body)."""
    found, pending = [], ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                found.append(pending.strip())
            pending = ""
    return found


def page_sql(query: PageQuery) -> tuple[str, tuple[Any, ...]]:
    params: list[Any] = []
    if query.tag is not None:
        # Feed rows come from post_tags, whose primary key is the tag feed's order.
        source = "post_tags t JOIN posts p ON p.id = t.post_id"
        order_keys = ("t.created_us", "t.post_id")
        where = ["t.tag = ?"]
        params.append(query.tag)
        if query.author_id is not None:
            where.append("t.author_id = ?")
            params.append(query.author_id)
    else:
        source = "posts p"
        order_keys = ("p.created_us", "p.id")
        where = []
        if query.author_id is not None:
            where.append("p.author_id = ?")
            params.append(query.author_id)
    if query.after is not None:
        micros, post_id = parse_position(query.after)
        where.append(f"({order_keys[0]}, {order_keys[1]}) < (?, ?)")
        params += [micros, post_id]
    condition = f"WHERE {' AND '.join(where)} " if where else ""
    sql = (
        f"SELECT {P_COLUMNS} FROM {source} {condition}"
        f"ORDER BY {order_keys[0]} DESC, {order_keys[1]} DESC LIMIT ?"
    )
    params.append(query.first + 1)
    return sql, tuple(params)


def profile_of(row: Any) -> ProfileRecord:
    return ProfileRecord(
        user_id=row[0],
        nickname=row[1],
        updated_at=None if row[2] is None else from_micros(row[2]),
    )


def record_of(row: Any) -> PostRecord:
    return PostRecord(
        id=row[0],
        author_id=row[1],
        content=row[2],
        is_markdown=bool(row[3]),
        tags=tuple(json.loads(row[4])),
        image_keys=tuple(json.loads(row[5])),
        created_at=from_micros(row[6]),
        updated_at=None if row[7] is None else from_micros(row[7]),
        version=row[8],
        author_nickname=row[9],
        idempotency_digest=row[10],
    )
