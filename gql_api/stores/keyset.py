"""Position tokens for stores that page by (created_at, id) keys: "<microseconds>.<id>"."""

from __future__ import annotations

from datetime import UTC, datetime

from gql_api.domain.records import PostRecord
from gql_api.stores.base import InvalidPosition, is_storable_post_id

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    return datetime.fromtimestamp(micros // 1_000_000, UTC).replace(microsecond=micros % 1_000_000)


MAX_MICROS = to_micros(datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC))


def position_of(post: PostRecord) -> str:
    return f"{to_micros(post.created_at)}.{post.id}"


def parse_position(token: str) -> tuple[int, str]:
    """The (microseconds, id) of a position this store could have made; anything else,
    whatever a client put in a cursor, is ``InvalidPosition`` before any store sees it."""
    micros, dot, post_id = token.partition(".")
    if not dot or not micros.isascii() or not micros.isdigit() or len(micros) > 18:
        raise InvalidPosition("malformed position")
    # Past the last moment every store can hold (Python's and Firestore's year 9999).
    if int(micros) > MAX_MICROS or not is_storable_post_id(post_id):
        raise InvalidPosition("malformed position")
    return int(micros), post_id
