"""The earlier service's rows under today's rules (gql_api.ops.migration.legacy)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from gql_api.domain.records import PostRecord, ProfileRecord
from gql_api.ops.migration.legacy import convert
from gql_api.ops.migration.sources import Kind, LegacyRow

POST_ID = "0f8c1c3e-5d0a-4e7b-9a4e-2f1d3c4b5a69"


def legacy_post(**changes: Any) -> dict[str, Any]:
    post: dict[str, Any] = {
        "postId": POST_ID,
        "userId": "alice",
        "nickname": "Alice",
        "content": "hello",
        "isMarkdown": True,
        "tags": ["Python", "python ", "\uff27\uff2f"],  # the last: a fullwidth GO
        "imageKeys": ["alice/2023/cat photo.jpg", "alice/abcdefghijklmnopqrstuv.png"],
        "createdAt": "2024-03-01T10:00:00.123456+00:00",
        "updatedAt": "2024-03-02T11:00:00Z",
    }
    post.update(changes)
    return {k: v for k, v in post.items() if v is not ...}


def post_of(data: dict[str, Any]) -> PostRecord:
    converted = convert(Kind.POSTS, LegacyRow("ref", data))
    assert isinstance(converted.record, PostRecord), converted.findings
    return converted.record


def refusal(data: dict[str, Any], kind: Kind = Kind.POSTS) -> tuple[str, str]:
    converted = convert(kind, LegacyRow("the-ref", data))
    assert converted.record is None
    (finding,) = converted.findings
    assert finding.ref == "the-ref" and not finding.repaired
    return finding.rule, finding.reason


def test_a_legacy_post_keeps_its_id_times_and_keys_with_version_1() -> None:
    post = post_of(legacy_post())
    assert post.id == POST_ID and post.version == 1
    assert post.created_at == datetime(2024, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert post.updated_at == datetime(2024, 3, 2, 11, 0, tzinfo=UTC)
    assert post.tags == ("python", "go")  # normalized as createPost does
    assert post.image_keys == ("alice/2023/cat photo.jpg", "alice/abcdefghijklmnopqrstuv.png")
    assert post.author_id == "alice" and post.author_nickname == "Alice" and post.is_markdown


def test_optional_fields_take_their_defaults_and_naive_times_are_utc() -> None:
    post = post_of(
        legacy_post(
            nickname=...,
            isMarkdown=...,
            tags=None,
            imageKeys=...,
            updatedAt=None,
            createdAt="2024-03-01T10:00:00",
        )
    )
    assert (post.author_nickname, post.is_markdown, post.tags, post.image_keys) == (
        None,
        False,
        (),
        (),
    )
    assert post.updated_at is None and post.created_at == datetime(2024, 3, 1, 10, tzinfo=UTC)


def test_a_firestore_timestamp_comes_over_as_a_plain_utc_time() -> None:
    moment = datetime(2024, 3, 1, 12, 0, 0, 5, tzinfo=UTC)
    post = post_of(legacy_post(createdAt=moment))
    assert post.created_at == moment and type(post.created_at) is datetime


@pytest.mark.parametrize(
    ("changes", "rule", "words"),
    [
        ({"content": "x" * 10_001}, "bad_content", "10001 characters, at most 10000"),
        ({"content": "   "}, "bad_content", "empty"),
        ({"tags": [f"t{i}" for i in range(11)]}, "bad_tags", "11 distinct tags"),
        ({"tags": ["two words"]}, "bad_tags", "whitespace"),
        ({"tags": "python"}, "bad_field", "not a list of strings"),
        ({"content": ...}, "missing_field", "content is missing"),
        ({"userId": None}, "missing_field", "userId is missing"),
        ({"postId": ...}, "missing_field", "postId is missing"),
        ({"createdAt": ...}, "missing_field", "createdAt is missing"),
        ({"createdAt": "yesterday"}, "bad_time", "not an ISO 8601 time"),
        ({"updatedAt": 17}, "bad_time", "not an ISO 8601 time"),
        ({"postId": "POST-1"}, "bad_id", "not a UUID"),
        ({"isMarkdown": "yes"}, "bad_field", "not true or false"),
        ({"imageKeys": ["bob/cat.jpg"]}, "bad_image_key", "prefix 'alice/'"),
        ({"imageKeys": ["alice/../bob/cat.jpg"]}, "bad_image_key", "author's prefix"),
        ({"imageKeys": ["alice/"]}, "bad_image_key", "author's prefix"),
        ({"imageKeys": [f"alice/{i}.jpg" for i in range(5)]}, "too_many_images", "at most 4"),
        ({"userId": "x" * 300}, "bad_user_id", "1 to 256"),
    ],
)
def test_a_row_that_breaks_a_rule_is_left_behind_with_the_reason(
    changes: dict[str, Any], rule: str, words: str
) -> None:
    found_rule, reason = refusal(legacy_post(**changes))
    assert (found_rule, words in reason) == (rule, True), reason


def test_twelve_tags_that_are_nine_after_normalizing_come_over() -> None:
    raw = [f"Tag{i}" for i in range(9)] + [
        "TAG0",
        " tag1",
        "\uff54\uff41\uff472",
    ]  # a fullwidth tag2
    assert post_of(legacy_post(tags=raw)).tags == tuple(f"tag{i}" for i in range(9))


def test_a_bad_post_nickname_is_dropped_and_reported_as_a_repair() -> None:
    converted = convert(Kind.POSTS, LegacyRow("r", legacy_post(nickname="a\nb")))
    assert isinstance(converted.record, PostRecord)
    assert converted.record.author_nickname is None
    (finding,) = converted.findings
    assert finding.repaired and finding.rule == "bad_nickname" and finding.post_id == POST_ID


def test_a_key_listed_twice_is_kept_once_and_reported() -> None:
    converted = convert(Kind.POSTS, LegacyRow("r", legacy_post(imageKeys=["alice/a.jpg"] * 2)))
    assert isinstance(converted.record, PostRecord)
    assert converted.record.image_keys == ("alice/a.jpg",)
    assert [f.rule for f in converted.findings] == ["image_keys_deduplicated"]


def test_profiles_need_a_valid_nickname() -> None:
    ok = convert(Kind.PROFILES, LegacyRow("alice", {"userId": "alice", "nickname": " Alice "}))
    assert ok.record == ProfileRecord(user_id="alice", nickname="Alice")
    assert refusal({"userId": "bob", "nickname": "\u202eevil"}, Kind.PROFILES)[0] == "bad_nickname"
    assert refusal({"userId": "bob"}, Kind.PROFILES)[0] == "missing_field"
    assert refusal({"nickname": "Bob"}, Kind.PROFILES)[0] == "missing_field"


def test_a_report_never_echoes_a_huge_id() -> None:
    converted = convert(Kind.POSTS, LegacyRow("r", legacy_post(postId="x" * 100_000)))
    (finding,) = converted.findings
    assert finding.post_id is None and len(finding.reason) < 200
