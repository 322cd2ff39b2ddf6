"""Position tokens for stores that page by (created_at, id) keys: "<microseconds>.<id>"."""

from __future__ import annotations

from datetime import UTC, datetime

from gql_api.stores.base import InvalidPosition, PostRecord, is_storable_post_id

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    return datetime.fromtimestamp(micros // 1_000_000, UTC).replace(microsecond=micros % 1_000_000)


def position_of(post: PostRecord) -> str:
    return f"{to_micros(post.created_at)}.{post.id}"


def parse_position(token: str) -> tuple[int, str]:
    micros, dot, post_id = token.partition(".")
    if not dot or not micros.isascii() or not micros.isdigit() or len(micros) > 18:
        raise InvalidPosition("malformed position")
    if not is_storable_post_id(post_id):
        raise InvalidPosition("malformed position")
    return int(micros), post_id
