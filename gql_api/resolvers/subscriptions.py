"""Resolvers of the subscriptions: the live feed's events."""

from __future__ import annotations

from collections.abc import AsyncIterator

import strawberry
from strawberry import UNSET
from strawberry.types import Info

from gql_api.domain.live_feed import Subscriber
from gql_api.resolvers.context import RequestContext
from gql_api.schema.types import PostEvent
from gql_api.schema.values import given

Context = Info[RequestContext, None]


async def post_events(
    info: Context,
    tag: str | None = UNSET,
    author_id: strawberry.ID | None = UNSET,
) -> AsyncIterator[PostEvent]:
    """Subscribe before returning, so a bad filter or an unavailable feed is the
    subscription's error, and the events of every write after it are delivered."""
    author = given(author_id)
    subscriber = await info.context.service.follow_posts(
        tag=given(tag), author_id=None if author is None else str(author)
    )
    return _Events(subscriber)


class _Events:
    """The subscriber's changes as events; closing it (begun or not) unsubscribes."""

    def __init__(self, subscriber: Subscriber) -> None:
        self._subscriber = subscriber

    def __aiter__(self) -> _Events:
        return self

    async def __anext__(self) -> PostEvent:
        live = await self._subscriber.next()
        return PostEvent.of(live.change.kind, live.change.post, live.shared)

    async def aclose(self) -> None:
        self._subscriber.close()
