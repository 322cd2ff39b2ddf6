"""The plain Strawberry baselines of bench/http_bench.py: the bench's schema and data (as
bench/graphql_node/schema.mjs), Strawberry's defaults. BENCH_AUTHORS=resolver (the strict
one) resolves each post's author with an ``async def`` resolver, as gql-api does through
its loader; BENCH_AUTHORS=attached holds the author on the post (no resolver at all)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import strawberry
from strawberry.asgi import GraphQL


@strawberry.type
class Profile:
    user_id: strawberry.ID
    nickname: str | None


@strawberry.type(name="Post")
class ResolvedPost:
    id: strawberry.ID
    content: str
    tags: list[str]
    created_at: str
    author_id: strawberry.Private[str]

    @strawberry.field
    async def author(self) -> Profile:
        return Profile(user_id=strawberry.ID(self.author_id), nickname=None)


@strawberry.type(name="Post")
class AttachedPost:
    id: strawberry.ID
    content: str
    tags: list[str]
    created_at: str
    author_id: strawberry.Private[str]
    author: Profile


RESOLVED = os.environ.get("BENCH_AUTHORS", "resolver") == "resolver"
Post = ResolvedPost if RESOLVED else AttachedPost
START = datetime(2026, 1, 1, tzinfo=UTC)


def stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def make_post(
    post_id: str, content: str, tags: list[str], created: datetime, author: str
) -> ResolvedPost | AttachedPost:
    fields: dict[str, Any] = {
        "id": strawberry.ID(post_id),
        "content": content,
        "tags": tags,
        "created_at": stamp(created),
        "author_id": author,
    }
    if RESOLVED:
        return ResolvedPost(**fields)
    return AttachedPost(**fields, author=Profile(user_id=strawberry.ID(author), nickname=None))


POSTS = [
    make_post(
        f"post{i:04d}", f"post number {i}", ["bench", f"t{i % 3}"], START + timedelta(seconds=i),
        f"user{i % 5}",
    )
    for i in range(int(os.environ.get("BENCH_POSTS", "50")))
][::-1]  # fmt: skip


@strawberry.type(name="PostEdge")
class PostEdge:
    cursor: str
    node: Post  # type: ignore[valid-type]


@strawberry.type(name="PostConnection")
class PostConnection:
    edges: list[PostEdge]


@strawberry.input
class CreatePostInput:
    content: str
    tags: list[str] | None = None


@strawberry.type
class Query:
    @strawberry.field
    async def posts(self, first: int = 20, tag: str | None = None) -> PostConnection:
        shown = [p for p in POSTS if tag is None or tag in p.tags][:first]
        return PostConnection(edges=[PostEdge(cursor=p.id, node=p) for p in shown])


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def create_post(self, input: CreatePostInput) -> Post:  # type: ignore[valid-type]
        tags = [t.strip().lower() for t in input.tags or []]
        post = make_post(f"new{len(POSTS)}", input.content, tags, datetime.now(UTC), "bench")
        POSTS.insert(0, post)
        return post


app = GraphQL(strawberry.Schema(query=Query, mutation=Mutation))
