"""Properties of gql_api.domain.validation: any input gives a value or ``BadUserInput`` naming
its field, never another exception; and what each rule promises holds for what it accepts.

These functions take what Strawberry has already coerced to the schema's types (a
``String`` is a ``str``, an ``Int`` an ``int``), so only ``clean_nickname`` (a token
claim) is given other JSON types.
"""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gql_api.domain.validation import (
    LIMITS,
    check_content,
    check_image_keys,
    check_nickname,
    check_page_size,
    check_user_id,
    clean_nickname,
    has_surrogates,
    normalize_tag,
    normalize_tags,
)
from gql_api.errors import BadUserInput
from gql_api.images.keys import CONTENT_TYPES, ImageInputError, new_image_key
from tests.property_strategies import (
    FEW,
    PROPERTY,
    SPECIAL_STRINGS,
    attempt,
    huge_ints,
    is_surrogate,
    json_values,
    mixed_text,
    nasty_text,
    short_text,
)

BIDI_AND_ANNOTATION = set(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
BIDI_AND_ANNOTATION |= set("\ufff9\ufffa\ufffb")


# Letters and marks shown as nothing (README: the Hangul fillers, the braille blank,
# default-ignorable code points): a name of only these looks empty.
SHOWN_AS_NOTHING = set("\u3164\uffa0\u2800\u115f\u1160\u17b4\u17b5\u034f\u00ad")
SHOWN_AS_NOTHING |= {chr(c) for c in [*range(0x180B, 0x1810), *range(0xFE00, 0xFE10)]}
SHOWN_AS_NOTHING |= {chr(c) for c in range(0xE0100, 0xE01F0)}


def refused(call: Any, *args: Any, fields: set[str]) -> BadUserInput | None:
    """``None`` when the call returned; the ``BadUserInput`` otherwise, checked to name
    one of ``fields``. Any other exception fails the test."""
    error = attempt(BadUserInput, call, *args)
    if not isinstance(error, BadUserInput):
        return None
    assert error.extensions["code"] == "BAD_USER_INPUT"
    assert error.extensions.get("field") in fields, error.extensions
    assert error.message
    return error


@PROPERTY
@given(nasty_text)
def test_has_surrogates_finds_exactly_the_lone_surrogates(text: str) -> None:
    assert has_surrogates(text) == any(is_surrogate(char) for char in text)


@PROPERTY
@given(nasty_text)
def test_check_content_returns_the_input_unchanged_or_refuses(content: str) -> None:
    valid = (
        not any(is_surrogate(char) for char in content)
        and len(content) <= LIMITS.max_raw_content_length
        and 1 <= len(content.strip()) <= LIMITS.max_content_length
    )
    result = attempt(BadUserInput, check_content, content, "input.content")
    if isinstance(result, BadUserInput):
        assert result.extensions == {"code": "BAD_USER_INPUT", "field": "input.content"}
        assert not valid
    else:
        assert result is content  # stored exactly as sent
        assert valid


@PROPERTY
@given(nasty_text)
def test_normalize_tag_gives_a_valid_tag_or_refuses(raw: str) -> None:
    # The documented rule: NFKC, trimmed, lower-cased; 1-50 characters, no whitespace or
    # control characters (nor lone surrogates, which no store can hold).
    form = unicodedata.normalize("NFKC", raw).strip().lower() if not has_surrogates(raw) else ""
    valid = 1 <= len(form) <= LIMITS.max_tag_length and not any(
        char.isspace() or unicodedata.category(char) in ("Cc", "Cs") for char in form
    )
    tag = attempt(BadUserInput, normalize_tag, raw, "input.tags[0]")
    if isinstance(tag, BadUserInput):
        assert tag.extensions == {"code": "BAD_USER_INPUT", "field": "input.tags[0]"}
        assert not valid
        return
    assert valid and tag == form
    assert 1 <= len(tag) <= LIMITS.max_tag_length
    assert not any(char.isspace() for char in tag)
    assert not any(unicodedata.category(char) in ("Cc", "Cs") for char in tag)
    assert tag == tag.lower()
    assert normalize_tag(tag, "again") == tag  # idempotent: a stored tag is its own form
    # Equivalent spellings are one tag: the NFKC form of the input, and its surroundings.
    assert normalize_tag(unicodedata.normalize("NFKC", raw), "nfkc") == tag
    assert normalize_tag(f" \t{raw}\u3000", "padded") == tag


@PROPERTY
@given(st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=1))
def test_normalize_tag_keeps_plain_words_lower_cased(word: str) -> None:
    word = word[: LIMITS.max_tag_length]
    assert normalize_tag(f"  {word} ", "tag") == word.lower()


tag_lists = st.one_of(
    st.lists(st.one_of(short_text, st.sampled_from(["Intro", "intro", " INTRO ", "x", "\uff58"]))),
    st.builds(lambda tag, count: [tag] * count, short_text, st.sampled_from([11, 1000, 1001])),
    st.builds(lambda count: [f"t{i}" for i in range(count)], st.integers(0, 12)),
)


@PROPERTY
@given(tag_lists)
def test_normalize_tags_gives_distinct_valid_tags_in_order_or_refuses(raw: list[str]) -> None:
    fields = {"input.tags"} | {f"input.tags[{i}]" for i in range(len(raw))}
    tags = attempt(BadUserInput, normalize_tags, raw, "input.tags")
    if isinstance(tags, BadUserInput):
        assert tags.extensions["field"] in fields
        return
    assert len(raw) <= LIMITS.max_raw_tags
    assert len(tags) == len(set(tags)) <= LIMITS.max_tags
    # The first occurrence of each normalized tag, in the order sent.
    assert tags == tuple(dict.fromkeys(normalize_tag(item, "tag") for item in raw))


user_ids = st.one_of(
    st.sampled_from(["alice", "bob", "alice/x", "ali", "a" * 256, "\u00e9l\u00e8ve", ".."]),
    short_text,
)


@FEW
@given(
    user_ids, st.lists(st.tuples(st.sampled_from(["new", "other", "text", "again"]), short_text))
)
@example("alice", [("new", ""), ("again", "")])
@example("alice", [("new", "")] * 5)
def test_check_image_keys_accepts_exactly_the_authors_fresh_keys(
    author: str, specs: list[tuple[str, str]]
) -> None:
    keys: list[str] = []
    for kind, text in specs:
        if kind == "text" or (kind == "again" and not keys):
            keys.append(text)
            continue
        if kind == "again":
            keys.append(keys[-1])
            continue
        owner = author if kind == "new" else author + "x"
        key = attempt(ImageInputError, new_image_key, owner, list(CONTENT_TYPES)[len(text) % 4])
        # A user id that cannot own images: a key of the right shape all the same.
        keys.append(f"{owner}/{'A' * 22}.png" if isinstance(key, ImageInputError) else key)
    fields = {"input.imageKeys"} | {f"input.imageKeys[{i}]" for i in range(len(keys))}
    error = refused(check_image_keys, keys, author, "input.imageKeys", fields=fields)
    if error is None:
        assert check_image_keys(keys, author, "f") == tuple(keys)
        assert len(keys) <= LIMITS.max_images_per_post
        assert len(set(keys)) == len(keys)
        assert all(key.startswith(f"{author}/") for key in keys)


@PROPERTY
@given(st.sampled_from(["alice", "bob", "x" * 256, "\u00e9l\u00e8ve"]), st.integers(0, 4))
def test_check_image_keys_accepts_up_to_four_keys_of_the_author(author: str, count: int) -> None:
    keys = [new_image_key(author, "image/png") for _ in range(count)]
    assert check_image_keys(keys, author, "input.imageKeys") == tuple(keys)
    if count:
        with pytest.raises(BadUserInput) as refusal:
            check_image_keys([*keys, keys[0]], author, "input.imageKeys")
        assert refusal.value.extensions["field"] == "input.imageKeys"


@PROPERTY
@given(st.one_of(st.none(), huge_ints, st.integers(-3, 105)))
@example(0)
@example(1)
@example(100)
@example(101)
def test_check_page_size_accepts_1_to_100_and_refuses_the_rest(first: int | None) -> None:
    size = attempt(BadUserInput, check_page_size, first)
    if isinstance(size, BadUserInput):
        assert size.extensions == {"code": "BAD_USER_INPUT", "field": "first"}
        assert first is not None and not 1 <= first <= LIMITS.max_page_size
    else:
        assert size == (LIMITS.default_page_size if first is None else first)
        assert 1 <= size <= LIMITS.max_page_size


@PROPERTY
@given(nasty_text)
@example("")
@example("a" * 256)
@example("a" * 257)
def test_check_user_id_returns_the_id_or_refuses(user_id: str) -> None:
    valid = 1 <= len(user_id) <= LIMITS.max_user_id_length and not has_surrogates(user_id)
    result = attempt(BadUserInput, check_user_id, user_id, "authorId")
    if isinstance(result, BadUserInput):
        assert result.extensions == {"code": "BAD_USER_INPUT", "field": "authorId"}
        assert not valid
    else:
        assert result is user_id
        assert valid


def assert_valid_nickname(nickname: str) -> None:
    assert nickname == nickname.strip()
    assert 1 <= len(nickname) <= LIMITS.max_nickname_length
    assert not any(unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") for c in nickname)
    assert not BIDI_AND_ANNOTATION & set(nickname)
    assert any(
        not c.isspace() and unicodedata.category(c) != "Cf" and c not in SHOWN_AS_NOTHING
        for c in nickname
    )


@PROPERTY
@given(st.one_of(nasty_text, mixed_text))
@example("\u3164")
@example(" \u2800\uffa0 ")
@example("\u200b\ufe0f")
@example("Al\u202eice")
@example("x" * 51)
def test_check_nickname_gives_a_trimmed_visible_name_or_refuses(raw: str) -> None:
    nickname = attempt(BadUserInput, check_nickname, raw, "nickname")
    if isinstance(nickname, BadUserInput):
        assert nickname.extensions == {"code": "BAD_USER_INPUT", "field": "nickname"}
        return
    assert nickname == raw.strip()
    assert_valid_nickname(nickname)
    assert check_nickname(nickname, "nickname") == nickname


@PROPERTY
@given(
    st.text("abcXYZ019 \u00e9\u4e2d\U0001f600-_.", min_size=1, max_size=50),
    st.sampled_from(["", " ", "\t", "\n", "\u3000"]),
)
def test_check_nickname_accepts_plain_names_with_any_surrounding_space(
    name: str, space: str
) -> None:
    if name.strip():
        assert check_nickname(f"{space}{name}{space}", "nickname") == name.strip()


@PROPERTY
@given(st.sampled_from(SPECIAL_STRINGS), st.sampled_from(["\n", "\x00", "\u2028", "\u202e"]))
def test_check_nickname_refuses_a_control_character_inside(name: str, control: str) -> None:
    with pytest.raises(BadUserInput):
        check_nickname(f"Al{control}{name}ice", "nickname")


@FEW
@given(st.one_of(json_values, nasty_text))
def test_clean_nickname_of_any_claim_is_none_or_a_valid_nickname(claim: Any) -> None:
    nickname = clean_nickname(claim)
    if nickname is None:
        assert not isinstance(claim, str) or refused(
            check_nickname, claim, "nickname", fields={"nickname"}
        )
    else:
        assert isinstance(claim, str) and nickname == claim.strip()
        assert_valid_nickname(nickname)
