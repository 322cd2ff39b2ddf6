"""Client-facing page cursors: an opaque envelope around a store's position token.

The envelope records which ``tag``/``authorId`` arguments it was made for, so a cursor
replayed with other filters is refused instead of silently paging another feed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

import orjson

from gql_api.domain.validation import LIMITS
from gql_api.errors import BadUserInput

_VERSION = 1


def filter_key(tag: str | None, author_id: str | None) -> str:
    if tag is None and author_id is None:
        return _UNFILTERED  # most pages: the whole feed
    digest = hashlib.blake2b(json.dumps([tag, author_id]).encode(), digest_size=6)
    return digest.hexdigest()


_UNFILTERED = hashlib.blake2b(json.dumps([None, None]).encode(), digest_size=6).hexdigest()


def encode_cursor(position: str, filters: str) -> str:
    # orjson writes what json.dumps(separators=(",", ":")) does, several times faster
    # (non-ASCII as UTF-8, not escaped: decode_cursor reads both).
    try:
        payload = orjson.dumps([_VERSION, filters, position])
    except TypeError:  # a lone surrogate, which no store's position holds
        payload = json.dumps([_VERSION, filters, position], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def malformed_cursor() -> BadUserInput:
    return BadUserInput("after is not a valid cursor for this query", field="after")


def decode_cursor(cursor: str, filters: str) -> str:
    """The store position inside ``cursor``; ``BAD_USER_INPUT`` when malformed or foreign."""
    malformed = malformed_cursor()
    if len(cursor) > LIMITS.max_cursor_length or not cursor.isascii():
        raise malformed
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        version, made_for, position = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise malformed from None
    if version != _VERSION or not isinstance(made_for, str) or not isinstance(position, str):
        raise malformed
    if made_for != filters:
        raise BadUserInput(
            "after is a cursor for other tag/authorId arguments: page with the same filters "
            "it was made for, or start again without after",
            field="after",
        )
    return position
