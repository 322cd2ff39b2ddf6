"""The domain's records: a post, the changes of an update, a profile, a write seen on a
change feed. The vocabulary the rules and the stores share (each store maps them to its
own documents or rows)."""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class PostRecord:
    id: str
    author_id: str
    content: str
    is_markdown: bool
    tags: tuple[str, ...]
    image_keys: tuple[str, ...]
    created_at: datetime
    updated_at: datetime | None
    version: int
    # The nickname claim of the author's token when the post was written; a stored
    # profile nickname takes precedence over it.
    author_nickname: str | None = None
    # For a post created with an idempotency key: the digest of the create's input, so a
    # retry with the same key is told from a reuse of the key for another input.
    idempotency_digest: str | None = None
    # The store's own concurrency token for this version (Firestore's update time,
    # Cosmos DB's ETag), carried from a read to the conditional write that follows it.
    etag: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class PostChanges:
    """The new values of an update; the store sets ``version`` and ``updated_at`` itself."""

    content: str
    is_markdown: bool
    tags: tuple[str, ...]
    image_keys: tuple[str, ...]
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ProfileRecord:
    user_id: str
    nickname: str | None = None
    updated_at: datetime | None = None  # when the nickname was last stored


def apply_changes(current: PostRecord, changes: PostChanges) -> PostRecord:
    """The record an update of ``current`` writes: ``changes`` applied, version + 1."""
    return dataclasses.replace(
        current,
        content=changes.content,
        is_markdown=changes.is_markdown,
        tags=changes.tags,
        image_keys=changes.image_keys,
        updated_at=changes.updated_at,
        version=current.version + 1,
        etag=None,
    )


class ChangeKind(enum.Enum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    DELETED = "DELETED"


@dataclass(frozen=True, slots=True)
class PostChange:
    """One write of a post, as a store's change feed reports it: the post as written, or
    for ``DELETED`` as it was last stored (its version, author and tags: what a
    subscriber's filter is matched against)."""

    kind: ChangeKind
    post: PostRecord

    @property
    def identity(self) -> tuple[str, int, ChangeKind]:
        """What tells one write from another: a feed may report a write more than once."""
        return (self.post.id, self.post.version, self.kind)
