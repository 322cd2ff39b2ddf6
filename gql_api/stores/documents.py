"""The post and profile documents of the document stores (DynamoDB, Firestore, Cosmos DB).

One mapping of a record's fields to a document's, written once; each store adds only its
encoding (``DocumentCodec``): how it writes times, under which names, and whether an
absent value is stored as null or left out. DynamoDB then types each value
(``dynamodb.typed``) and adds its keys; Firestore and Cosmos DB store the document as is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gql_api.domain.records import PostRecord, ProfileRecord


@dataclass(frozen=True, slots=True)
class DocumentCodec:
    created: str  # the field of the creation time
    updated: str  # the field of the last update's time
    write_time: Callable[[datetime], Any]
    read_time: Callable[[Any], datetime]
    keep_nulls: bool = True  # False: an absent value is left out, not stored as null

    def post(self, post: PostRecord) -> dict[str, Any]:
        """The whole document of ``post`` (its etag is the store's, never a field)."""
        return self._present(
            {
                "id": post.id,
                "authorId": post.author_id,
                "content": post.content,
                "isMarkdown": post.is_markdown,
                "tags": list(post.tags),
                "imageKeys": list(post.image_keys),
                self.created: self.write_time(post.created_at),
                self.updated: self._time(post.updated_at),
                "version": post.version,
                "authorNickname": post.author_nickname,
                "idempotencyDigest": post.idempotency_digest,
            }
        )

    def changed(self, updated: PostRecord) -> dict[str, Any]:
        """The fields an update writes: those ``PostChanges`` sets, and the version."""
        return self._present(
            {
                "content": updated.content,
                "isMarkdown": updated.is_markdown,
                "tags": list(updated.tags),
                "imageKeys": list(updated.image_keys),
                self.updated: self._time(updated.updated_at),
                "version": updated.version,
            }
        )

    def post_record(self, document: Mapping[str, Any], etag: str | None = None) -> PostRecord:
        updated = document.get(self.updated)
        return PostRecord(
            id=document["id"],
            author_id=document["authorId"],
            content=document["content"],
            is_markdown=document["isMarkdown"],
            tags=tuple(document["tags"]),
            image_keys=tuple(document["imageKeys"]),
            created_at=self.read_time(document[self.created]),
            updated_at=None if updated is None else self.read_time(updated),
            version=document["version"],
            author_nickname=document.get("authorNickname"),
            idempotency_digest=document.get("idempotencyDigest"),
            etag=etag,
        )

    def profile(self, profile: ProfileRecord) -> dict[str, Any]:
        return self._present(
            {
                "userId": profile.user_id,
                "nickname": profile.nickname,
                self.updated: self._time(profile.updated_at),
            }
        )

    def profile_record(self, user_id: str, document: Mapping[str, Any]) -> ProfileRecord:
        updated = document.get(self.updated)
        return ProfileRecord(
            user_id=user_id,
            nickname=document.get("nickname"),
            updated_at=None if updated is None else self.read_time(updated),
        )

    def _time(self, value: datetime | None) -> Any:
        return None if value is None else self.write_time(value)

    def _present(self, document: dict[str, Any]) -> dict[str, Any]:
        if self.keep_nulls:
            return document
        return {name: value for name, value in document.items() if value is not None}
