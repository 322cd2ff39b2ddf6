"""The GraphQL types whose fields resolve: the viewer, a post, a page's edges and the page.
Their resolvers live in ``gql_api.resolvers.fields``; the value-only types in ``values``."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import strawberry

from gql_api.domain.records import ChangeKind, PostRecord
from gql_api.domain.service import Edge
from gql_api.resolvers import fields
from gql_api.schema.values import PageInfo, Profile


@strawberry.type(description="The signed-in caller.")
class Viewer:
    user_id: strawberry.ID
    is_admin: bool
    claimed_nickname: strawberry.Private[str | None]
    profile: Profile = strawberry.field(
        resolver=fields.viewer_profile,
        description="The caller's profile; the token's nickname until one is stored.",
    )


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
        resolver=fields.post_author,
        description="The author's profile (batched: one store call per request).",
        metadata={fields.DIRECT_RESOLVER: fields.post_author_now},
    )
    image_urls: list[str] = strawberry.field(
        resolver=fields.post_image_urls,
        description="Readable URLs for imageKeys, in the same order (empty when no bucket "
        "is set): signed GET URLs, or the public base URL + key. They may differ between "
        "reads. One storage call for every post of a response.",
        metadata={fields.DIRECT_RESOLVER: fields.post_image_urls_now},
    )


@strawberry.type
class PostEdge:
    cursor: str = strawberry.field(resolver=fields.edge_cursor)
    node: Post
    edge: strawberry.Private[Edge]


@strawberry.type(description="A page of posts, newest first.")
class PostConnection:
    edges: list[PostEdge]
    page_info: PageInfo

    @strawberry.field
    def nodes(self) -> list[Post]:
        return [edge.node for edge in self.edges]


@strawberry.enum(description="What happened to a post.")
class PostEventKind(enum.Enum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    DELETED = "DELETED"


@strawberry.type(description="A post created, edited or deleted, as it happened.")
class PostEvent:
    kind: PostEventKind
    post_id: strawberry.ID
    version: int = strawberry.field(
        description="The version written; for DELETED, the version that was deleted."
    )
    post: Post | None = strawberry.field(description="The post as written; null once deleted.")
    # What the subscribers of this event may share of it (the live feed's LiveChange):
    # the executor runs one selection once for every subscriber that asked for the same.
    shared: strawberry.Private[dict[Any, Any]]

    @classmethod
    def of(cls, kind: ChangeKind, record: PostRecord, shared: dict[Any, Any]) -> PostEvent:
        return cls(
            kind=PostEventKind(kind.value),
            post_id=strawberry.ID(record.id),
            version=record.version,
            post=None if kind is ChangeKind.DELETED else Post.from_record(record),
            shared=shared,
        )
