"""Idempotent creates: ``createPost(input, idempotencyKey)`` retried answers the post made.

The post's id is derived from its author and the key, so every retry lands on the same
id, and the store's conditional create (which fails when the id is taken) stores it
once: no lookup table, no scan, nothing to expire. The post keeps a digest of the
create's input, which tells a retry (the same input) from the key reused for another
input (``CONFLICT``). A key answers its post for ``KEY_WINDOW`` after the post was made;
later the key is spent (``CONFLICT``), so a late replay never passes for a new post.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from datetime import datetime, timedelta

from gql_api.domain.records import PostRecord
from gql_api.errors import BadUserInput, Conflict

KEY_WINDOW = timedelta(hours=24)
MAX_KEY_LENGTH = 255
# Printable ASCII without spaces: UUIDs, ULIDs, base64 and the like.
_KEY = re.compile(rf"[\x21-\x7e]{{1,{MAX_KEY_LENGTH}}}")


def check_idempotency_key(key: str, field: str = "idempotencyKey") -> str:
    if not _KEY.fullmatch(key):
        raise BadUserInput(
            f"{field} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters without "
            "spaces (a UUID, say)",
            field=field,
        )
    return key


def with_idempotency_key(post: PostRecord, key: str) -> PostRecord:
    """``post`` under the id its author's key stands for, carrying its input's digest."""
    # Length-prefixed, so no user id and key can run into another pair's.
    named = f"{len(post.author_id)}:{post.author_id}:{key}".encode("utf-8", "surrogatepass")
    inputs = [post.content, post.is_markdown, list(post.tags), list(post.image_keys)]
    digest = hashlib.sha256(json.dumps(inputs).encode("utf-8", "surrogatepass")).hexdigest()
    return dataclasses.replace(
        post, id=hashlib.sha256(named).hexdigest()[:32], idempotency_digest=digest
    )


def replayed(earlier: PostRecord, retry: PostRecord, now: datetime) -> PostRecord:
    """What a create with a key already used answers: the post it made, when this is a
    retry of that create within ``KEY_WINDOW``; ``CONFLICT`` otherwise."""
    if earlier.idempotency_digest != retry.idempotency_digest:
        raise Conflict(
            "idempotencyKey was used for a createPost with another input: send a new key "
            "for a new post",
            current_version=earlier.version,
        )
    if now - earlier.created_at > KEY_WINDOW:
        raise Conflict(
            "idempotencyKey was used more than 24 hours ago: send a new key for a new post",
            current_version=earlier.version,
        )
    return earlier
