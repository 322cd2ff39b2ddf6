"""The GraphQL object and input types of the public contract."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, TypeVar, cast

import strawberry
from strawberry import UNSET
from strawberry.types import Info

from gql_api.domain.records import PostRecord, ProfileRecord
from gql_api.domain.service import Edge
from gql_api.domain.validation import LIMITS
from gql_api.resolvers.context import RequestContext

T = TypeVar("T")


def _serialize_datetime(value: datetime) -> str:
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


async def _viewer_profile(
    root: strawberry.Parent[Viewer], info: Info[RequestContext, None]
) -> Profile:
    stored = await info.context.profiles.load(str(root.user_id))
    return Profile(user_id=root.user_id, nickname=stored.nickname or root.claimed_nickname)


@strawberry.type(description="The signed-in caller.")
class Viewer:
    user_id: strawberry.ID
    is_admin: bool
    claimed_nickname: strawberry.Private[str | None]
    profile: Profile = strawberry.field(
        resolver=_viewer_profile,
        description="The caller's profile; the token's nickname until one is stored.",
    )


@strawberry.type(description="The validation limits this server enforces.")
class Limits:
    max_content_length: int = LIMITS.max_content_length
    max_tags: int = LIMITS.max_tags
    max_tag_length: int = LIMITS.max_tag_length
    max_images_per_post: int = LIMITS.max_images_per_post
    max_page_size: int = LIMITS.max_page_size


def _post_author(root: strawberry.Parent[Post], info: Info[RequestContext, None]) -> Profile:
    known = info.context.known_profiles.get(str(root.author_id))
    if known is not None:
        return _author_profile(root, known)
    # Not loaded with its page: a coroutine, which the executor awaits (batched by the loader).
    return cast(Profile, _load_author(root, info))


async def _load_author(root: Post, info: Info[RequestContext, None]) -> Profile:
    return _author_profile(root, await info.context.profiles.load(str(root.author_id)))


def _author_profile(root: Post, stored: ProfileRecord) -> Profile:
    return Profile(user_id=root.author_id, nickname=stored.nickname or root.author_nickname)


def _post_image_urls(root: strawberry.Parent[Post], info: Info[RequestContext, None]) -> list[str]:
    """Called by graphql-core directly, like ``_post_author``: a list when the URLs are
    known (fetched with the page, or no key, or no bucket), else an awaitable that the
    request's loader batches with every other post's keys into one storage call."""
    keys = root.image_keys
    if not keys:
        return []
    context = info.context
    known = context.known_image_urls
    if all(key in known for key in keys):
        return [known[key] for key in keys]
    if context.service.images is None or context.images_failed:
        return []
    # Not fetched with its page: an awaitable, which the executor awaits.
    return cast(list[str], context.load_image_urls(keys))


@strawberry.type(description="A post in the feed.")
class Post:
    id: strawberry.ID
    author_id: strawberry.ID
    content: str = strawberry.field(description="Stored exactly as sent.")
    is_markdown: bool
    tags: list[str]
    image_keys: list[str]
    created_at: datetime
    updated_at: datetime | None = strawberry.field(description="Null until the first update.")
    version: int = strawberry.field(description="1 on create, +1 on every update.")
    author_nickname: strawberry.Private[str | None]

    @classmethod
    def from_record(cls, record: PostRecord) -> Post:
        return cls(
            id=strawberry.ID(record.id),
            author_id=strawberry.ID(record.author_id),
            content=record.content,
            is_markdown=record.is_markdown,
            tags=list(record.tags),
            image_keys=list(record.image_keys),
            created_at=record.created_at,
            updated_at=record.updated_at,
            version=record.version,
            author_nickname=record.author_nickname,
        )

    author: Profile = strawberry.field(
        resolver=_post_author,
        description="The author's profile (batched: one store call per request).",
    )
    image_urls: list[str] = strawberry.field(
        resolver=_post_image_urls,
        description="Readable URLs for imageKeys, in the same order (empty when no bucket "
        "is set): signed GET URLs, or the public base URL + key. They may differ between "
        "reads. One storage call for every post of a response.",
    )


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


def _edge_cursor(root: strawberry.Parent[PostEdge]) -> str:
    return root.edge.cursor


@strawberry.type
class PostEdge:
    cursor: str = strawberry.field(resolver=_edge_cursor)
    node: Post
    edge: strawberry.Private[Edge]


@strawberry.type(description="A page of posts, newest first.")
class PostConnection:
    edges: list[PostEdge]
    page_info: PageInfo

    @strawberry.field
    def nodes(self) -> list[Post]:
        return [edge.node for edge in self.edges]


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
