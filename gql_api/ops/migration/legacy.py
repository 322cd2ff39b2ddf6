"""The earlier service's rows under today's rules: each becomes a gql-api record, one
repaired where a rule allows it, or a finding that says why it cannot come over.

What may be repaired, and how (each repair is reported too):
- a post's nickname that is no valid nickname is dropped, as a token's nickname claim
  is; the post comes over without it;
- an image key listed twice is listed once.

Tags are normalized as ``createPost`` does (NFKC, trimmed, lower-cased, duplicates
dropped: twelve legacy tags that are nine after it come over), and a time without an
offset is read as UTC (the earlier service wrote UTC); neither is a finding.

Everything else that breaks a rule (content over 10,000 characters, more than 10
distinct tags, a missing field, an id that is no UUID, an image key outside the
author's prefix) leaves the row behind, with the reason. A legacy image key under the
author's prefix but not of the form ``createUploadUrls`` hands out is kept: the
service serves and keeps such keys on the posts that already show them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gql_api.domain.records import PostRecord, ProfileRecord
from gql_api.domain.validation import (
    LIMITS,
    check_content,
    check_nickname,
    check_user_id,
    is_issued_post_id,
    normalize_tags,
)
from gql_api.errors import BadUserInput
from gql_api.ops.migration.sources import Kind, LegacyRow

# The longest object name every cloud takes (S3, Cloud Storage, Azure Blob), in bytes.
MAX_IMAGE_KEY_BYTES = 1024
_EPOCH = datetime.fromtimestamp(0, UTC)
MAX_REASON = 300  # characters of a finding's reason


@dataclass(frozen=True, slots=True)
class Finding:
    """A row that broke a rule: left behind (``repaired`` False) or brought over with a
    repair (True). ``rule`` is a short stable name for the report."""

    kind: Kind
    ref: str
    rule: str
    reason: str
    repaired: bool = False
    post_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "ref": self.ref,
            "postId": self.post_id,
            "rule": self.rule,
            "outcome": "repaired" if self.repaired else "left behind",
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class Converted:
    record: PostRecord | ProfileRecord | None  # None: the row stays behind
    findings: tuple[Finding, ...] = ()


class _Refused(Exception):
    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(reason)
        self.rule = rule
        self.reason = reason


def convert(kind: Kind, row: LegacyRow) -> Converted:
    """The record ``row`` becomes, with what was repaired; or why it cannot come over."""
    repairs: list[tuple[str, str]] = []
    post_id = row.data.get("postId") if kind is Kind.POSTS else None
    shown_id = post_id if isinstance(post_id, str) and len(post_id) <= 128 else None
    try:
        if kind is Kind.POSTS:
            record: PostRecord | ProfileRecord = _post(row.data, repairs)
        else:
            record = _profile(row.data)
    except _Refused as refused:
        finding = Finding(kind, row.ref, refused.rule, _short(refused.reason), post_id=shown_id)
        return Converted(None, (finding,))
    findings = tuple(
        Finding(kind, row.ref, rule, _short(reason), repaired=True, post_id=shown_id)
        for rule, reason in repairs
    )
    return Converted(record, findings)


def _post(data: Mapping[str, Any], repairs: list[tuple[str, str]]) -> PostRecord:
    post_id = _required_text(data, "postId")
    if not is_issued_post_id(post_id):
        raise _Refused("bad_id", f"postId {_shown(post_id)} is not a UUID (lower-case hex)")
    author_id = _user_id(data)
    content = _required_text(data, "content")
    try:
        check_content(content, "content")
    except BadUserInput as error:
        raise _Refused("bad_content", error.message) from None
    is_markdown = data.get("isMarkdown")
    if is_markdown is None:
        is_markdown = False
    elif not isinstance(is_markdown, bool):
        raise _Refused("bad_field", f"isMarkdown is {_shown(is_markdown)}, not true or false")
    raw_tags = _text_list(data, "tags")
    try:
        tags = normalize_tags(raw_tags, "tags")
    except BadUserInput as error:
        raise _Refused("bad_tags", error.message) from None
    return PostRecord(
        id=post_id,
        author_id=author_id,
        content=content,
        is_markdown=is_markdown,
        tags=tags,
        image_keys=_image_keys(data, author_id, repairs),
        created_at=_created_at(data),
        updated_at=_time(data, "updatedAt", required=False),
        version=1,
        author_nickname=_post_nickname(data, repairs),
    )


def _profile(data: Mapping[str, Any]) -> ProfileRecord:
    user_id = _user_id(data)
    raw = _required_text(data, "nickname")
    try:
        nickname = check_nickname(raw, "nickname")
    except BadUserInput as error:
        raise _Refused("bad_nickname", error.message) from None
    updated = _time(data, "updatedAt", required=False)
    return ProfileRecord(user_id=user_id, nickname=nickname, updated_at=updated)


def _user_id(data: Mapping[str, Any]) -> str:
    user_id = _required_text(data, "userId")
    try:
        return check_user_id(user_id, "userId")
    except BadUserInput as error:
        raise _Refused("bad_user_id", error.message) from None


def _required_text(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if value is None:
        raise _Refused("missing_field", f"{name} is missing")
    if not isinstance(value, str):
        raise _Refused("bad_field", f"{name} is {_shown(value)}, not a string")
    return value


def _text_list(data: Mapping[str, Any], name: str) -> list[str]:
    value = data.get(name)
    if value is None:
        return []
    if not isinstance(value, list | tuple | set | frozenset) or not all(
        isinstance(item, str) for item in value
    ):
        raise _Refused("bad_field", f"{name} is {_shown(value)}, not a list of strings")
    return list(value)


def _image_keys(
    data: Mapping[str, Any], author_id: str, repairs: list[tuple[str, str]]
) -> tuple[str, ...]:
    keys = _text_list(data, "imageKeys")
    unique = list(dict.fromkeys(keys))
    if len(unique) != len(keys):
        repairs.append(("image_keys_deduplicated", "imageKeys listed a key twice: kept once"))
    if len(unique) > LIMITS.max_images_per_post:
        raise _Refused(
            "too_many_images",
            f"imageKeys lists {len(unique)} images, at most {LIMITS.max_images_per_post}",
        )
    prefix = f"{author_id}/"
    for index, key in enumerate(unique):
        name = key[len(prefix) :]
        if (
            not key.startswith(prefix)
            or not name
            or len(key.encode("utf-8", "surrogatepass")) > MAX_IMAGE_KEY_BYTES
            or not key.isprintable()
            or any(part in ("", ".", "..") for part in name.split("/"))
        ):
            raise _Refused(
                "bad_image_key",
                f"imageKeys[{index}] {_shown(key)} is not an object under the author's "
                f"prefix {_shown(prefix)}: a post may only show its author's uploads",
            )
    return tuple(unique)


def _post_nickname(data: Mapping[str, Any], repairs: list[tuple[str, str]]) -> str | None:
    raw = data.get("nickname")
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            return check_nickname(raw, "nickname")
        except BadUserInput as error:
            reason = error.message
    else:
        reason = f"nickname is {_shown(raw)}, not a string"
    repairs.append(("bad_nickname", f"{reason}: the post comes over without it"))
    return None


def _created_at(data: Mapping[str, Any]) -> datetime:
    created = _time(data, "createdAt", required=True)
    assert created is not None  # required: refused when missing
    return created


def _time(data: Mapping[str, Any], name: str, *, required: bool) -> datetime | None:
    value = data.get(name)
    if value is None:
        if required:
            raise _Refused("missing_field", f"{name} is missing")
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise _Refused("bad_time", f"{name} {value[:64]!r} is not an ISO 8601 time") from None
    else:
        raise _Refused("bad_time", f"{name} is {_shown(value)}, not an ISO 8601 time")
    if moment.tzinfo is None:  # the earlier service wrote UTC, with or without an offset
        moment = moment.replace(tzinfo=UTC)
    try:
        # In UTC, and a plain datetime (Firestore's subclass carries nanoseconds).
        return _EPOCH + (moment - _EPOCH)
    except OverflowError:  # within years 1-9999 only before its offset
        raise _Refused(
            "bad_time", f"{name} {_shown(value)} is past year 9999 or before 1 in UTC"
        ) from None


def _shown(value: object) -> str:
    try:
        text = repr(value)
    except ValueError:  # an int of over 4,300 digits has no repr
        return "a number of over 4,300 digits"
    return text if len(text) <= 64 else text[:61] + "..."


def _short(reason: str) -> str:
    """A finding's reason on one short line, whatever the row held."""
    return reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 3] + "..."


def record_key(record: PostRecord | ProfileRecord) -> str:
    """What names a record in the target: a post's id, a profile's user id."""
    return record.id if isinstance(record, PostRecord) else record.user_id
