"""Properties of the image keys (gql_api.images.keys): any user id or content type gives a
key or ``ImageInputError``; the keys ``new_image_key`` makes are valid for their user and
for no other; the checks of any string answer a value, never an exception."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gql_api.images.keys import (
    CONTENT_TYPES,
    EXTENSION_TYPES,
    MAX_USER_ID_LENGTH,
    ImageInputError,
    content_type_of,
    extension_for,
    is_valid_image_key,
    new_image_key,
)
from tests.property_strategies import PROPERTY, attempt, nasty_text, short_text

content_types = st.one_of(
    st.sampled_from(list(CONTENT_TYPES)),
    st.sampled_from(list(CONTENT_TYPES)).map(lambda ctype: f" {ctype.upper()}\t"),
    st.sampled_from(["image/svg+xml", "text/html", "image/png; x=1", "image/jpg", "png", ""]),
    nasty_text,
)
user_ids = st.one_of(
    st.sampled_from(
        ["alice", "bob", "a", "x" * MAX_USER_ID_LENGTH, "\u00e9l\u00e8ve", "\U0001f600"]
    ),
    st.sampled_from([".", "..", "a/b", "a\\b", "a\x00", "\ud800", "x" * (MAX_USER_ID_LENGTH + 1)]),
    nasty_text,
)


def can_own_images(user_id: str) -> bool:
    return (
        1 <= len(user_id) <= MAX_USER_ID_LENGTH
        and user_id not in (".", "..")
        and all(char not in "/\\" and char.isprintable() for char in user_id)
    )


@PROPERTY
@given(content_types)
def test_extension_for_any_content_type_is_allowed_or_refused(content_type: str) -> None:
    extension = attempt(ImageInputError, extension_for, content_type)
    if isinstance(extension, ImageInputError):
        assert str(extension)
        assert content_type.strip().lower() not in CONTENT_TYPES
    else:
        assert extension == CONTENT_TYPES[content_type.strip().lower()]


@PROPERTY
@given(nasty_text)
def test_content_type_of_any_key_is_an_allowed_type_or_none(key: str) -> None:
    content_type = content_type_of(key)
    if content_type is not None:
        assert content_type in CONTENT_TYPES
        assert key.endswith(f".{CONTENT_TYPES[content_type]}")
    else:
        assert key.rpartition(".")[2] not in EXTENSION_TYPES or "." not in key


@PROPERTY
@given(user_ids, content_types, user_ids)
def test_new_keys_are_valid_for_their_user_and_no_other(
    user_id: str, content_type: str, other: str
) -> None:
    key = attempt(ImageInputError, new_image_key, user_id, content_type)
    if isinstance(key, ImageInputError):
        assert not can_own_images(user_id) or content_type.strip().lower() not in CONTENT_TYPES
        return
    assert can_own_images(user_id)
    assert key.startswith(f"{user_id}/")
    assert len(key) == len(user_id) + 1 + 22 + 1 + len(extension_for(content_type))
    assert is_valid_image_key(key, user_id)
    assert content_type_of(key) == content_type.strip().lower()
    assert new_image_key(user_id, content_type) != key  # fresh each time
    if other != user_id:
        assert not is_valid_image_key(key, other)
    # Nor once edited: another extension, a character more or less, another prefix.
    assert not is_valid_image_key(key + "x", user_id)
    assert not is_valid_image_key(key.replace("/", "//", 1), user_id)
    assert not is_valid_image_key(f"{user_id}/{key}", user_id)
    assert not is_valid_image_key(key.rpartition(".")[0] + ".svg", user_id)


@PROPERTY
@given(nasty_text, user_ids)
def test_is_valid_image_key_of_any_strings_is_a_bool(key: str, author_id: str) -> None:
    valid = is_valid_image_key(key, author_id)
    assert isinstance(valid, bool)
    if valid:
        assert can_own_images(author_id)
        assert key.startswith(f"{author_id}/")
        assert content_type_of(key) in CONTENT_TYPES


URL_SAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# Names of about 22 characters, url-safe or with one character that is not.
names = st.one_of(
    short_text,
    st.text(URL_SAFE, min_size=21, max_size=23),
    st.builds(
        lambda name, odd: name[:10] + odd + name[11:],
        st.text(URL_SAFE, min_size=22, max_size=22),
        st.sampled_from([".", "/", "+", "=", "\u00e9", "\x00", "\ud800", " "]),
    ),
)


@PROPERTY
@given(st.sampled_from(["alice", "\u00e9l\u00e8ve"]), names, st.sampled_from(list(EXTENSION_TYPES)))
def test_only_22_url_safe_characters_make_a_key(user_id: str, name: str, extension: str) -> None:
    key = f"{user_id}/{name}.{extension}"
    url_safe = set(URL_SAFE)
    assert is_valid_image_key(key, user_id) == (len(name) == 22 and set(name) <= url_safe)
