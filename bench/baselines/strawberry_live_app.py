"""The plain Strawberry baseline of bench/live_fanout.py: gql-api's ``postEvents``
subscription and ``createPost`` as a minimal app would write them. An in-process asyncio
broadcast (one unbounded queue per subscriber) feeds an ``async def`` generator, served by
Strawberry's own graphql-transport-ws handler (``strawberry.asgi.GraphQL``); the mutation
publishes to every queue. No store, no auth, no limits: the strongest fair version."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncGenerator
from dataclasses import dataclass

import strawberry
from strawberry.asgi import GraphQL


@strawberry.enum
class PostEventKind(enum.Enum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    DELETED = "DELETED"


@strawberry.type
class Profile:
    user_id: strawberry.ID
    nickname: str | None


@strawberry.type
class Post:
    id: strawberry.ID
    content: str
    tags: list[str]
    author: Profile


@strawberry.type
class PostEvent:
    kind: PostEventKind
    post_id: strawberry.ID
    version: int
    post: Post | None


@dataclass(frozen=True, slots=True)
class Change:
    event: PostEvent
    tags: frozenset[str]
    author_id: str


class Broadcast:
    """One queue per subscriber; a publish puts the change on each."""

    def __init__(self) -> None:
        self.queues: set[asyncio.Queue[Change]] = set()

    def publish(self, change: Change) -> None:
        for queue in self.queues:
            queue.put_nowait(change)

    async def listen(self) -> AsyncGenerator[Change, None]:
        queue: asyncio.Queue[Change] = asyncio.Queue()
        self.queues.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self.queues.discard(queue)


BROADCAST = Broadcast()
MADE = [0]


@strawberry.input
class CreatePostInput:
    content: str
    tags: list[str] | None = None


@strawberry.type
class Query:
    @strawberry.field
    def hello(self) -> str:
        return "hello"


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def create_post(self, input: CreatePostInput) -> Post:
        MADE[0] += 1
        tags = list(dict.fromkeys(t.strip().lower() for t in input.tags or []))
        author = Profile(user_id=strawberry.ID("bench"), nickname=None)
        post = Post(
            id=strawberry.ID(f"new{MADE[0]}"), content=input.content, tags=tags, author=author
        )
        event = PostEvent(kind=PostEventKind.CREATED, post_id=post.id, version=1, post=post)
        BROADCAST.publish(Change(event, frozenset(tags), "bench"))
        return post


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def post_events(
        self, tag: str | None = None, author_id: strawberry.ID | None = None
    ) -> AsyncGenerator[PostEvent, None]:
        wanted = tag.strip().lower() if tag is not None else None
        async for change in BROADCAST.listen():
            if (wanted is None or wanted in change.tags) and (
                author_id is None or author_id == change.author_id
            ):
                yield change.event


app = GraphQL(strawberry.Schema(query=Query, mutation=Mutation, subscription=Subscription))
