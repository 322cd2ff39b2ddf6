"""The input rules (``domain/validation.py``), by example: each refusal is BAD_USER_INPUT
naming its field, and what passes is normalized as the contract says. (The property tests
in tests/test_properties_validation.py try arbitrary text.)"""

from __future__ import annotations

import uuid

import pytest

from gql_api.domain.validation import (
    LIMITS,
    check_content,
    check_nickname,
    check_page_size,
    check_user_id,
    is_issued_post_id,
    new_post_id,
    normalize_tag,
    normalize_tags,
)
from gql_api.errors import BadUserInput


def refusal(call: object, *arguments: object) -> BadUserInput:
    with pytest.raises(BadUserInput) as refused:
        call(*arguments)  # type: ignore[operator]
    return refused.value


def test_content_is_stored_exactly_as_sent_within_its_limits() -> None:
    assert check_content("  hello\n", "content") == "  hello\n"
    assert check_content("x" * LIMITS.max_content_length, "content")
    for bad in ("", "   \n\t", "x" * (LIMITS.max_content_length + 1), "a\ud800b"):
        assert refusal(check_content, bad, "input.content").extensions["field"] == "input.content"
    padded = " " * LIMITS.max_raw_content_length + "x"  # short once trimmed, but not stored
    assert "surrounding whitespace" in refusal(check_content, padded, "content").message


def test_tags_are_normalized_and_deduplicated_in_order() -> None:
    # NFKC (a fullwidth P), trimmed, lower-cased
    assert normalize_tag("  \uff30ython ", "tag") == "python"
    assert normalize_tags(["B", "a", "b", "A "], "tags") == ("b", "a")
    for bad in ("", "two words", "tab\there", "x" * (LIMITS.max_tag_length + 1)):
        assert refusal(normalize_tag, bad, "tags[0]").extensions["field"] == "tags[0]"
    too_many = [f"t{i}" for i in range(LIMITS.max_tags + 1)]
    assert refusal(normalize_tags, too_many, "tags").extensions["field"] == "tags"
    assert normalize_tags(["same"] * LIMITS.max_raw_tags, "tags") == ("same",)
    assert refusal(normalize_tags, ["same"] * (LIMITS.max_raw_tags + 1), "tags")


def test_page_sizes() -> None:
    assert check_page_size(None) == LIMITS.default_page_size
    assert check_page_size(1) == 1
    assert check_page_size(LIMITS.max_page_size) == LIMITS.max_page_size
    for bad in (0, -1, LIMITS.max_page_size + 1, 10**5000):
        assert refusal(check_page_size, bad).extensions["field"] == "first"


def test_nicknames_are_trimmed_visible_and_free_of_controls() -> None:
    assert check_nickname("  Ada Lovelace ", "nickname") == "Ada Lovelace"
    assert check_nickname("👩‍💻", "nickname") == "👩‍💻"  # a zero width joiner is allowed
    for bad in ("", "   ", "\u200b\u200b", "a\nb", "evil\u202eabc", "x" * 51):
        assert refusal(check_nickname, bad, "nickname").extensions["field"] == "nickname"


def test_user_ids_and_post_ids() -> None:
    assert check_user_id("auth0|abc", "userId") == "auth0|abc"
    for bad in ("", "x" * (LIMITS.max_user_id_length + 1), "\udc00"):
        assert refusal(check_user_id, bad, "userId").extensions["field"] == "userId"
    issued = new_post_id()
    assert is_issued_post_id(issued) and issued != new_post_id()
    for other in ("a/b", issued.upper(), issued + "0", "", "../" + issued[3:]):
        assert not is_issued_post_id(other)
    # A post migrated from the earlier service keeps its id: a UUID, hyphenated.
    legacy = str(uuid.UUID(issued))
    assert is_issued_post_id(legacy)
    for other in (legacy.upper(), legacy + "0", legacy.replace("-", "_"), "{" + legacy + "}"):
        assert not is_issued_post_id(other)
