"""Properties of ``convert`` (gql_api.ops.migration.legacy), attacked with any legacy row: it
never raises, gives a record or exactly one finding with a short reason, and every record it
gives obeys the service's own rules and survives the SQLite store unchanged.
"""

from __future__ import annotations

import asyncio
import copy
import json
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, example, given

from gql_api.domain.records import PostRecord, ProfileRecord
from gql_api.domain.validation import (
    LIMITS,
    check_content,
    check_nickname,
    check_user_id,
    is_issued_post_id,
    normalize_tags,
)
from gql_api.ops.migration.legacy import Converted, convert
from gql_api.ops.migration.sources import Kind, LegacyRow
from gql_api.stores.sqlite import SqliteStore
from tests.migration.legacy_strategies import kinds, legacy_rows
from tests.migration.test_runner import legacy
from tests.property_strategies import PROPERTY

MAX_REASON = 300  # a report line's reason: one readable line, not the row's value again


def outcome_of(kind: Kind, data: dict[str, Any]) -> Converted:
    converted = convert(kind, LegacyRow("ref", data))
    assert isinstance(converted, Converted)
    return converted


def check_shape(converted: Converted, kind: Kind) -> None:
    """A record (with only repairs reported), or none with exactly one left-behind finding."""
    if converted.record is None:
        assert len(converted.findings) == 1, converted.findings
        (finding,) = converted.findings
        assert not finding.repaired and finding.rule and finding.reason.strip()
    else:
        want = PostRecord if kind is Kind.POSTS else ProfileRecord
        assert isinstance(converted.record, want)
        assert all(f.repaired and f.rule and f.reason.strip() for f in converted.findings)
    for finding in converted.findings:
        assert finding.kind is kind and finding.ref == "ref"
        # As the report writes it: one JSON line.
        line = json.dumps(finding.as_json(), ensure_ascii=False)
        assert "\n" not in line
        line.encode("utf-8", "backslashreplace")


# --------------------------------------------------------------------------------------
# Property 1: convert never raises
# --------------------------------------------------------------------------------------

HUGE = 10**5000  # past int's 4,300-digit str() limit: repr() raises ValueError


@PROPERTY
@given(kinds, legacy_rows())
def test_convert_never_raises_for_any_row(kind: Kind, data: dict[str, Any]) -> None:
    check_shape(outcome_of(kind, data), kind)


@PROPERTY
@given(kinds, legacy_rows())
@example(Kind.POSTS, legacy(1, userId="x" * 256, imageKeys=["y"]))
def test_a_findings_reason_is_one_short_line(kind: Kind, data: dict[str, Any]) -> None:
    for finding in outcome_of(kind, data).findings:
        assert len(finding.reason) <= MAX_REASON, (len(finding.reason), finding.rule)


GOOD = legacy(1)
OUT_OF_RANGE_TIMES = {
    "year 1 with a positive offset": "0001-01-01T00:00:00+00:01",
    "year 9999 with a negative offset": "9999-12-31T23:59:59-00:01",
    "an aware datetime before year 1 in UTC": datetime(
        1, 1, 1, tzinfo=timezone(timedelta(hours=5))
    ),
    "an aware datetime past year 9999 in UTC": datetime(
        9999, 12, 31, 23, tzinfo=ZoneInfo("America/New_York")
    ),
}


@pytest.mark.parametrize("field_name", ["createdAt", "updatedAt"])
@pytest.mark.parametrize("value", OUT_OF_RANGE_TIMES.values(), ids=OUT_OF_RANGE_TIMES.keys())
def test_a_time_outside_what_utc_can_hold_is_a_finding(field_name: str, value: Any) -> None:
    converted = outcome_of(Kind.POSTS, GOOD | {field_name: value})
    assert converted.record is None and converted.findings[0].rule == "bad_time"


@pytest.mark.parametrize(
    ("kind", "field_name"),
    [
        (Kind.POSTS, "postId"),
        (Kind.POSTS, "userId"),
        (Kind.POSTS, "content"),
        (Kind.POSTS, "isMarkdown"),
        (Kind.POSTS, "tags"),
        (Kind.POSTS, "createdAt"),
        (Kind.POSTS, "nickname"),  # a repair, not even a refusal
        (Kind.PROFILES, "nickname"),
    ],
)
def test_a_huge_number_in_any_field_is_a_finding(kind: Kind, field_name: str) -> None:
    data = (GOOD if kind is Kind.POSTS else {"userId": "u", "nickname": "N"}) | {field_name: HUGE}
    check_shape(outcome_of(kind, data), kind)


# --------------------------------------------------------------------------------------
# Property 2: what comes over obeys the rules and survives the store
# --------------------------------------------------------------------------------------


def is_utc(moment: datetime | None) -> bool:
    return moment is None or (
        type(moment) is datetime
        and moment.tzinfo is not None
        and moment.utcoffset() == timedelta(0)
    )


def check_post_rules(post: PostRecord) -> None:
    assert is_issued_post_id(post.id)
    assert check_user_id(post.author_id, "userId") == post.author_id
    assert check_content(post.content, "content") == post.content
    assert isinstance(post.is_markdown, bool)
    assert normalize_tags(post.tags, "tags") == post.tags
    assert isinstance(post.image_keys, tuple)
    assert len(post.image_keys) <= LIMITS.max_images_per_post
    assert len(set(post.image_keys)) == len(post.image_keys)
    assert all(key.startswith(f"{post.author_id}/") for key in post.image_keys)
    assert all(len(key) > len(post.author_id) + 1 for key in post.image_keys)
    if post.author_nickname is not None:
        assert check_nickname(post.author_nickname, "nickname") == post.author_nickname
    assert is_utc(post.created_at) and post.created_at is not None
    assert is_utc(post.updated_at)
    assert post.version == 1 and post.idempotency_digest is None


def check_profile_rules(profile: ProfileRecord) -> None:
    assert check_user_id(profile.user_id, "userId") == profile.user_id
    assert profile.nickname is not None
    assert check_nickname(profile.nickname, "nickname") == profile.nickname
    assert is_utc(profile.updated_at)


@pytest.fixture(scope="module")
def shared_store() -> Iterator[tuple[asyncio.AbstractEventLoop, SqliteStore]]:
    """One store, on one loop of its own, for every example of the round-trip property."""
    loop = asyncio.new_event_loop()
    with tempfile.TemporaryDirectory() as folder:
        store = SqliteStore(Path(folder) / "roundtrip.db", synchronous="normal")
        loop.run_until_complete(store.open())
        try:
            yield loop, store
        finally:
            loop.run_until_complete(store.close())
            loop.close()


async def stored_again(
    store: SqliteStore, record: PostRecord | ProfileRecord
) -> PostRecord | ProfileRecord | None:
    if isinstance(record, ProfileRecord):
        await store.put_profile(record)
        return (await store.get_profiles([record.user_id])).get(record.user_id)
    there = await store.get(record.id)
    if there is not None:
        await store.delete(there)
    await store.create(record)
    return await store.get(record.id)


@PROPERTY
@given(kinds, legacy_rows(plausible=True))
@example(Kind.POSTS, legacy(1, createdAt="0001-01-01T00:00:00", content="a\x00b"))
@example(Kind.POSTS, legacy(2, createdAt="9999-12-31T23:59:59.999999+00:00", userId="\x00"))
@example(Kind.POSTS, legacy(3, createdAt=datetime(9999, 12, 31, 23, 59, tzinfo=UTC)))
def test_every_record_obeys_the_rules_and_survives_the_store(
    shared_store: tuple[asyncio.AbstractEventLoop, SqliteStore], kind: Kind, data: dict[str, Any]
) -> None:
    record = outcome_of(kind, data).record
    assume(record is not None)
    assert record is not None
    if isinstance(record, PostRecord):
        check_post_rules(record)
    else:
        check_profile_rules(record)
    loop, store = shared_store
    assert loop.run_until_complete(stored_again(store, record)) == record
    # The same row converts the same way again (a resumed run and --verify rely on it).
    assert outcome_of(kind, copy.deepcopy(data)).record == record
