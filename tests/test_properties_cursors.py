"""Properties of the page cursors (gql_api.domain.cursors) and of the keyset positions inside
them (gql_api.stores.keyset): any string gives a position or the layer's own error
(``BadUserInput`` on ``after``, ``InvalidPosition``), never another exception; a cursor
decodes to the position it was made from, and only for the filters it was made for."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gql_api.domain.cursors import decode_cursor, encode_cursor, filter_key
from gql_api.domain.records import PostRecord
from gql_api.domain.validation import LIMITS, has_surrogates
from gql_api.errors import BadUserInput
from gql_api.stores.base import InvalidPosition, is_storable_post_id
from gql_api.stores.keyset import from_micros, parse_position, position_of, to_micros
from tests.property_strategies import (
    PROPERTY,
    attempt,
    json_values,
    nasty_text,
    short_text,
)

filters = st.tuples(st.none() | short_text, st.none() | short_text)
# What the stores make: "<microseconds>.<id>", with ids every store can hold.
post_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}", fullmatch=True)
positions = st.builds(
    lambda micros, post_id: f"{micros}.{post_id}", st.integers(0, 10**17), post_ids
)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def b64_json(value: Any) -> str:
    try:
        text = json.dumps(value)
    except ValueError:  # an int past 4,300 digits: send its digits, which JSON allows
        text = "1" * 5000
    return b64(text.encode("utf-8", "surrogatepass"))


# Strings a client may send as `after`: anything, anything base64-shaped, and the
# base64 of any JSON (version, filters and position of the wrong types or count).
cursor_texts = st.one_of(
    nasty_text,
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/", max_size=80),
    st.binary(max_size=700).map(b64),
    json_values.map(b64_json),
    st.tuples(json_values, json_values, json_values).map(lambda triple: b64_json(list(triple))),
    st.tuples(st.sampled_from([1, 1.0, True, "1"]), short_text, short_text).map(
        lambda triple: b64_json(list(triple))
    ),
    st.integers(1, 800).map(lambda depth: b64(("[" * depth).encode())),
    st.integers(1, 760).map(lambda depth: b64(("[" * depth + "]" * depth).encode())),
)


def decode_or_refuse(cursor: str, made_for: str) -> str | None:
    """The position, or ``None`` when refused as it must be: ``BadUserInput`` on ``after``."""
    position = attempt(BadUserInput, decode_cursor, cursor, made_for)
    if isinstance(position, BadUserInput):
        assert position.extensions == {"code": "BAD_USER_INPUT", "field": "after"}
        return None
    return position


@PROPERTY
@given(short_text, short_text)
def test_filter_key_is_short_hex_and_stable(tag: str, author_id: str) -> None:
    key = filter_key(tag, author_id)
    assert len(key) == 12 and int(key, 16) >= 0
    assert filter_key(tag, author_id) == key
    if tag != author_id:
        assert filter_key(author_id, tag) != key  # the arguments are not interchangeable


@PROPERTY
@given(positions, filters)
def test_a_cursor_decodes_to_its_position(position: str, tag_author: tuple[Any, Any]) -> None:
    made_for = filter_key(*tag_author)
    cursor = encode_cursor(position, made_for)
    assert cursor.isascii() and len(cursor) <= LIMITS.max_cursor_length
    assert "=" not in cursor and "/" not in cursor and "+" not in cursor  # url-safe
    assert decode_cursor(cursor, made_for) == position


@PROPERTY
@given(nasty_text, filters)
def test_any_position_round_trips_or_is_refused_as_too_long(
    position: str, tag_author: tuple[Any, Any]
) -> None:
    made_for = filter_key(*tag_author)
    cursor = encode_cursor(position, made_for)
    if len(cursor) <= LIMITS.max_cursor_length:
        decoded = decode_cursor(cursor, made_for)
        # JSON joins a pair of lone surrogates into one character; stores never make those.
        assert decoded == position or (has_surrogates(position) and not has_surrogates(decoded))
    else:
        assert decode_or_refuse(cursor, made_for) is None


@PROPERTY
@given(positions, filters, filters)
def test_a_cursor_for_other_filters_is_refused(
    position: str, made_for: tuple[Any, Any], used_with: tuple[Any, Any]
) -> None:
    cursor = encode_cursor(position, filter_key(*made_for))
    if made_for == used_with:
        assert decode_cursor(cursor, filter_key(*used_with)) == position
        return
    with pytest.raises(BadUserInput, match="other tag/authorId") as refusal:
        decode_cursor(cursor, filter_key(*used_with))
    assert refusal.value.extensions["field"] == "after"


@PROPERTY
@given(cursor_texts, filters)
def test_decoding_any_string_gives_a_position_or_refuses(
    cursor: str, tag_author: tuple[Any, Any]
) -> None:
    made_for = filter_key(*tag_author)
    position = decode_or_refuse(cursor, made_for)
    if position is not None:
        assert isinstance(position, str)
        assert len(cursor) <= LIMITS.max_cursor_length
        # Only an envelope naming these filters yields a position, and it is its last item.
        envelope = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        assert envelope[1] == made_for and envelope[2] == position


@PROPERTY
@given(nasty_text)
def test_parse_position_of_any_string_gives_a_key_or_invalid_position(token: str) -> None:
    key = attempt(InvalidPosition, parse_position, token)
    if isinstance(key, InvalidPosition):
        return
    micros, post_id = key
    assert 0 <= micros < 10**18
    assert is_storable_post_id(post_id)
    digits, _, rest = token.partition(".")
    assert int(digits) == micros and rest == post_id


@PROPERTY
@given(
    st.datetimes(
        min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)
    ),
    post_ids,
)
def test_a_posts_position_parses_back_to_its_key(created_at: datetime, post_id: str) -> None:
    post = PostRecord(
        id=post_id,
        author_id="alice",
        content="hi",
        is_markdown=False,
        tags=(),
        image_keys=(),
        created_at=created_at,
        updated_at=None,
        version=1,
    )
    micros = to_micros(created_at)
    assert parse_position(position_of(post)) == (micros, post_id)
    assert from_micros(micros) == created_at
    # And through a cursor, which is how a client sends it back.
    made_for = filter_key(None, None)
    assert parse_position(decode_cursor(encode_cursor(position_of(post), made_for), made_for)) == (
        micros,
        post_id,
    )
