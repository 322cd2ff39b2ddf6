"""The domain's records (``domain/records.py``): what an update writes, and which fields
make two records the same."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from gql_api.domain.records import PostChanges, PostRecord, apply_changes

CREATED = datetime(2026, 1, 1, tzinfo=UTC)
POST = PostRecord(
    id="p1",
    author_id="alice",
    content="hello",
    is_markdown=False,
    tags=("a",),
    image_keys=("alice/x.png",),
    created_at=CREATED,
    updated_at=None,
    version=4,
    author_nickname="Ada",
    idempotency_digest="d" * 64,
    etag="etag-of-version-4",
)


def test_an_update_applies_the_changes_and_the_next_version_only() -> None:
    later = datetime(2026, 1, 2, tzinfo=UTC)
    changes = PostChanges(
        content="# hi", is_markdown=True, tags=("b", "c"), image_keys=(), updated_at=later
    )
    updated = apply_changes(POST, changes)
    assert (updated.content, updated.is_markdown, updated.tags, updated.image_keys) == (
        "# hi",
        True,
        ("b", "c"),
        (),
    )
    assert (updated.version, updated.updated_at) == (5, later)
    # Who wrote it, when, and with which key stay; the store's token is the old version's.
    assert (updated.id, updated.author_id, updated.created_at) == ("p1", "alice", CREATED)
    assert (updated.author_nickname, updated.idempotency_digest) == ("Ada", "d" * 64)
    assert updated.etag is None
    assert POST.version == 4  # records are values: the read one is unchanged


def test_the_store_token_is_not_part_of_a_record_s_identity() -> None:
    assert dataclasses.replace(POST, etag="another") == POST
    assert dataclasses.replace(POST, version=5) != POST
