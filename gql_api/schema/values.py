"""The GraphQL types that only carry values: the DateTime scalar, profiles, limits,
page info, uploads, payloads and inputs. No field here has a resolver; resolvers
(``gql_api.resolvers``) build them, and ``types`` holds the types whose fields resolve."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, TypeVar

import strawberry
from strawberry import UNSET

from gql_api.domain.validation import LIMITS

T = TypeVar("T")


def _serialize_datetime(value: datetime) -> str:
    if value.tzinfo is UTC:  # what the stores hold: no conversion, and "+00:00" ends it
        return value.isoformat(timespec="microseconds")[:-6] + "Z"
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _parse_datetime(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError("DateTime must be an RFC 3339 string")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("DateTime must carry a time zone (for example a Z suffix)")
    return parsed.astimezone(UTC)


DATETIME = strawberry.scalar(
    name="DateTime",
    description="A moment in time: RFC 3339 in UTC with a Z suffix.",
    serialize=_serialize_datetime,
    parse_value=_parse_datetime,
)


@strawberry.type(description="A user's public profile.")
class Profile:
    user_id: strawberry.ID
    nickname: str | None = None


@strawberry.type(description="The validation limits this server enforces.")
class Limits:
    max_content_length: int = LIMITS.max_content_length
    max_tags: int = LIMITS.max_tags
    max_tag_length: int = LIMITS.max_tag_length
    max_images_per_post: int = LIMITS.max_images_per_post
    max_page_size: int = LIMITS.max_page_size


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type(description="An HTTP header an upload must carry.")
class Header:
    name: str
    value: str


@strawberry.type(description="A field of a multipart form upload (a POST).")
class FormField:
    name: str
    value: str


@strawberry.type(description="Where and how to upload one image.")
class UploadUrl:
    key: str = strawberry.field(description="The image key to list in a post's imageKeys.")
    url: str = strawberry.field(description="Send the image's bytes here.")
    method: str = strawberry.field(
        description="The HTTP method to send them with: PUT (the bytes as the body) or "
        "POST (a multipart/form-data form: every field of `fields`, in order, then the "
        "file as the last part)."
    )
    headers: list[Header] = strawberry.field(
        description="Send exactly these headers with the upload (they are signed)."
    )
    fields: list[FormField] = strawberry.field(
        description="For a POST: the form fields to send before the file, exactly as "
        "given (they carry the signed policy). Empty for a PUT."
    )
    expires_at: datetime = strawberry.field(description="The URL stops working after this.")


@strawberry.type
class DeletePostPayload:
    id: strawberry.ID


@strawberry.input
class CreatePostInput:
    content: str
    is_markdown: bool | None = False
    tags: list[str] | None = strawberry.field(default_factory=list)
    image_keys: list[str] | None = strawberry.field(default_factory=list)


@strawberry.input(description="Fields left out (or null) keep their stored value.")
class UpdatePostInput:
    content: str | None = UNSET
    is_markdown: bool | None = UNSET
    tags: list[str] | None = UNSET
    image_keys: list[str] | None = UNSET


def given(value: T | None) -> T | None:
    """An argument left out (UNSET) means the same as null."""
    return None if value is UNSET else value


IdempotencyKey = Annotated[
    str | None,
    strawberry.argument(
        description="A key of the client's choosing (a UUID): a retry with the same key "
        "within 24 hours answers the post already made instead of making another; the "
        "same key with another input is CONFLICT."
    ),
]
ExpectedVersion = Annotated[
    int | None,
    strawberry.argument(
        description="Apply only if the stored version is this one; otherwise CONFLICT."
    ),
]
