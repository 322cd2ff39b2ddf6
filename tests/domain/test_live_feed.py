"""The live feed's fan-out (``domain/live_feed.py``): filters, the filter index, once per
change, bounded queues, following anew after a lost feed, and the end of it all."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest

from gql_api.domain.live_feed import EventFilter, LiveChange, LiveFeed, SubscriberTooSlow
from gql_api.domain.records import ChangeKind, PostChange
from gql_api.stores.base import DatabaseUnavailable
from gql_api.stores.memory import MemoryStore
from tests.helpers import record


def change(kind: ChangeKind = ChangeKind.CREATED, **fields: object) -> PostChange:
    return PostChange(kind, dataclasses.replace(record(), **fields))  # type: ignore[arg-type]


async def open_feed(queue_size: int = 10) -> tuple[MemoryStore, LiveFeed]:
    store = MemoryStore()
    await store.open()
    return store, LiveFeed(store, queue_size=queue_size, timeout=2)


async def next_of(subscriber: object) -> PostChange:
    async with asyncio.timeout(2):
        live: LiveChange = await subscriber.next()  # type: ignore[attr-defined]
        return live.change


@pytest.mark.parametrize(
    ("event_filter", "tags", "author", "matches"),
    [
        (EventFilter(), (), "a", True),
        (EventFilter(tag="news"), ("tech", "news"), "a", True),
        (EventFilter(tag="news"), ("tech",), "a", False),
        (EventFilter(author_id="a"), ("x",), "a", True),
        (EventFilter(author_id="a"), ("x",), "b", False),
        (EventFilter(tag="x", author_id="a"), ("x",), "a", True),
        (EventFilter(tag="x", author_id="a"), ("x",), "b", False),
        (EventFilter(tag="x", author_id="a"), ("y",), "a", False),
    ],
)
async def test_a_change_reaches_the_subscribers_its_post_matches(
    event_filter: EventFilter, tags: tuple[str, ...], author: str, matches: bool
) -> None:
    _, feed = await open_feed()
    subscriber = await feed.subscribe(event_filter)
    feed.dispatch(change(tags=tags, author_id=author))
    feed.dispatch(change(tags=("never-asked",), author_id="nobody-asked"))
    if matches:
        assert (await next_of(subscriber)).post.tags == tags
    if event_filter != EventFilter():  # the second change matches no filter but "all"
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await subscriber.next()
    await feed.close()


async def test_writes_to_the_store_come_out_to_subscribers() -> None:
    store, feed = await open_feed()
    subscriber = await feed.subscribe(EventFilter(tag="news"))
    post = await store.create(record(tags=("news",)))
    assert (await next_of(subscriber)).post == post
    await store.delete(post)
    deleted = await next_of(subscriber)
    assert (deleted.kind, deleted.post.id) == (ChangeKind.DELETED, post.id)
    await feed.close()


async def test_a_change_reported_twice_is_delivered_once() -> None:
    _, feed = await open_feed()
    subscriber = await feed.subscribe(EventFilter())
    once = change()
    feed.dispatch(once)
    feed.dispatch(once)
    feed.dispatch(dataclasses.replace(once, kind=ChangeKind.UPDATED))  # another write
    assert (await next_of(subscriber)).kind is ChangeKind.CREATED
    assert (await next_of(subscriber)).kind is ChangeKind.UPDATED
    assert feed.delivered == 2
    await feed.close()


async def test_every_subscriber_of_a_change_shares_one_live_change() -> None:
    _, feed = await open_feed()
    first, second = await feed.subscribe(EventFilter()), await feed.subscribe(EventFilter())
    feed.dispatch(change())
    assert (await first.next()) is (await second.next())  # what one makes, the other reuses
    await feed.close()


async def test_a_slow_subscriber_is_dropped_and_the_others_carry_on() -> None:
    _, feed = await open_feed(queue_size=3)
    slow, keeping_up = await feed.subscribe(EventFilter()), await feed.subscribe(EventFilter())
    for _ in range(5):
        feed.dispatch(change())
        await next_of(keeping_up)
    with pytest.raises(SubscriberTooSlow):
        await slow.next()
    assert feed.subscribers == 1  # the slow one holds nothing any more
    feed.dispatch(change())
    await next_of(keeping_up)
    await feed.close()


async def test_closed_subscribers_leave_the_index_empty() -> None:
    _, feed = await open_feed()
    subscribers = [
        await feed.subscribe(EventFilter(tag="t")),
        await feed.subscribe(EventFilter(author_id="a")),
        await feed.subscribe(EventFilter()),
    ]
    for subscriber in subscribers:
        subscriber.close()
    assert feed.subscribers == 0
    assert (feed._by_tag, feed._by_author, feed._everyone) == ({}, {}, set())
    await feed.close()


async def test_closing_the_feed_ends_every_subscription() -> None:
    _, feed = await open_feed()
    subscriber = await feed.subscribe(EventFilter())
    await feed.close()
    with pytest.raises(StopAsyncIteration):
        await subscriber.next()


class FlakyFeed:
    """A change feed that is lost after its first change, then works."""

    def __init__(self) -> None:
        self.follows = 0
        self.queue: asyncio.Queue[PostChange] = asyncio.Queue()

    async def changes(self) -> AsyncIterator[PostChange]:
        self.follows += 1
        return self._follow(self.follows)

    async def _follow(self, attempt: int) -> AsyncIterator[PostChange]:
        yield await self.queue.get()
        if attempt == 1:
            raise DatabaseUnavailable("lost")
        while True:
            yield await self.queue.get()


async def test_a_lost_change_feed_is_followed_anew() -> None:
    flaky = FlakyFeed()
    feed = LiveFeed(flaky, queue_size=10, timeout=2)
    subscriber = await feed.subscribe(EventFilter())
    flaky.queue.put_nowait(change())
    await next_of(subscriber)
    flaky.queue.put_nowait(change())  # read by the second follow, after the retry's wait
    await next_of(subscriber)
    assert flaky.follows == 2
    await feed.close()


class DeadFeed:
    async def changes(self) -> AsyncIterator[PostChange]:
        raise DatabaseUnavailable("no database")


async def test_a_feed_that_cannot_start_refuses_the_subscription_and_retries_later() -> None:
    feed = LiveFeed(DeadFeed(), queue_size=10, timeout=2)
    with pytest.raises(DatabaseUnavailable):
        await feed.subscribe(EventFilter())
    with pytest.raises(DatabaseUnavailable):  # tried again, not a remembered failure
        await feed.subscribe(EventFilter())
    assert feed.subscribers == 0
    await feed.close()
