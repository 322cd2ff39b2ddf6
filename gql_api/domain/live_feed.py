"""The live feed: one follower of the store's change feed per process, fanned out to every
subscriber whose filter a change matches, each through a bounded queue.

The process keeps no state another needs: every instance follows the database's own
change feed, so a write made through any instance reaches the subscribers of all. A
subscriber that does not keep up is dropped once its queue is full (its transport closes
it), never buffered without bound. Subscribers are indexed by their filter, so a change
costs the subscribers it reaches, not all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from gql_api.domain.records import PostChange, PostRecord
from gql_api.stores.base import ChangeFeed, DatabaseUnavailable

log = logging.getLogger(__name__)

# Identities of the changes delivered lately: a feed may report one twice (at least once).
RECENT_CHANGES = 4096
# After the change feed is lost: the first wait before following anew, and the longest.
RETRY_FIRST_SECONDS = 0.5
RETRY_MOST_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class EventFilter:
    """What a subscriber asked for, normalized as the ``posts`` arguments are."""

    tag: str | None = None
    author_id: str | None = None

    def matches(self, post: PostRecord) -> bool:
        return (self.tag is None or self.tag in post.tags) and (
            self.author_id is None or self.author_id == post.author_id
        )


class LiveChange:
    """One change on its way to its subscribers. ``shared`` holds what they make of it
    that does not depend on who they are (a response to the same selection by the same
    viewer), so a thousand subscribers of one query run it once."""

    __slots__ = ("change", "shared")

    def __init__(self, change: PostChange) -> None:
        self.change = change
        self.shared: dict[Any, Any] = {}


class SubscriberTooSlow(Exception):
    """The subscriber's queue filled: it is dropped, and the changes since are lost to it."""


class Subscriber:
    """A subscription's queue of changes, bounded."""

    __slots__ = ("_feed", "_queue", "_size", "_wake", "closed", "filter", "overflowed")

    def __init__(self, feed: LiveFeed, event_filter: EventFilter, size: int) -> None:
        self.filter = event_filter
        self._feed = feed
        self._queue: deque[LiveChange] = deque()
        self._size = size
        self._wake = asyncio.Event()
        self.overflowed = False
        self.closed = False

    def offer(self, change: LiveChange) -> None:
        if self.overflowed or self.closed:
            return
        if len(self._queue) >= self._size:
            self.overflowed = True
            self._queue.clear()  # what it has not read is lost to it anyway
            self._feed.drop(self)
        else:
            self._queue.append(change)
        self._wake.set()

    async def next(self) -> LiveChange:
        """The next change; ``SubscriberTooSlow`` once dropped, ``StopAsyncIteration`` once
        closed."""
        while not self._queue:
            if self.overflowed:
                raise SubscriberTooSlow
            if self.closed:
                raise StopAsyncIteration
            self._wake.clear()
            await self._wake.wait()
        return self._queue.popleft()

    def __aiter__(self) -> Subscriber:
        return self

    async def __anext__(self) -> LiveChange:
        return await self.next()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._feed.drop(self)
            self._wake.set()


class LiveFeed:
    """The process's follower of the store's changes and its subscribers.

    It follows from the first subscription on (a store's feed may cost a listener or a
    poll: none while nobody listens) until the process stops.
    """

    def __init__(self, store: ChangeFeed, *, queue_size: int, timeout: float) -> None:
        self.store = store
        self.queue_size = queue_size
        self.timeout = timeout  # how long a first subscription waits for the feed
        self.subscribers = 0
        self.delivered = 0  # changes handed to subscribers' queues, for the log and tests
        self._everyone: set[Subscriber] = set()
        self._by_tag: dict[str, set[Subscriber]] = {}
        self._by_author: dict[str, set[Subscriber]] = {}
        self._recent: OrderedDict[tuple[str, int, Any], None] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self._following: asyncio.Future[None] | None = None

    async def subscribe(self, event_filter: EventFilter) -> Subscriber:
        """A subscriber of the changes from now on; ``DatabaseUnavailable`` when the
        store's change feed cannot be followed."""
        await self._follow()
        subscriber = Subscriber(self, event_filter, self.queue_size)
        self._index(subscriber).add(subscriber)
        self.subscribers += 1
        return subscriber

    def drop(self, subscriber: Subscriber) -> None:
        group = self._index(subscriber)
        if subscriber in group:
            group.discard(subscriber)
            self.subscribers -= 1
            self._unindex_empty(subscriber.filter)

    async def close(self) -> None:
        """Stop following and end every subscription (each sees the end of its stream)."""
        task, self._task, self._following = self._task, None, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for group in [self._everyone, *self._by_tag.values(), *self._by_author.values()]:
            for subscriber in list(group):
                subscriber.close()

    def dispatch(self, change: PostChange) -> None:
        """Hand ``change`` to each subscriber whose filter it matches (once, however often
        the store reported it)."""
        identity = change.identity
        if identity in self._recent:
            return
        self._recent[identity] = None
        if len(self._recent) > RECENT_CHANGES:
            self._recent.popitem(last=False)
        post = change.post
        candidates: list[set[Subscriber]] = [self._everyone]
        candidates += [self._by_tag[tag] for tag in post.tags if tag in self._by_tag]
        if post.author_id in self._by_author:
            candidates.append(self._by_author[post.author_id])
        shared = LiveChange(change)
        for group in candidates:
            for subscriber in list(group):  # a full queue drops its subscriber from the group
                if subscriber.filter.matches(post):
                    subscriber.offer(shared)
                    self.delivered += 1

    def _index(self, subscriber: Subscriber) -> set[Subscriber]:
        tag, author = subscriber.filter.tag, subscriber.filter.author_id
        if tag is not None:  # by tag first: tags are the narrower index of a change
            return self._by_tag.setdefault(tag, set())
        if author is not None:
            return self._by_author.setdefault(author, set())
        return self._everyone

    def _unindex_empty(self, event_filter: EventFilter) -> None:
        if event_filter.tag is not None and not self._by_tag.get(event_filter.tag, True):
            del self._by_tag[event_filter.tag]
        elif event_filter.author_id is not None and not self._by_author.get(
            event_filter.author_id, True
        ):
            del self._by_author[event_filter.author_id]

    async def _follow(self) -> None:
        """Start following the store (once), and wait until it follows."""
        if self._following is None or (self._following.done() and self._task is None):
            self._following = asyncio.get_running_loop().create_future()
            self._task = asyncio.create_task(self._run(self._following), name="live feed")
        try:
            async with asyncio.timeout(self.timeout):
                await asyncio.shield(self._following)
        except TimeoutError:
            raise DatabaseUnavailable("the store's change feed did not start in time") from None

    async def _run(self, following: asyncio.Future[None]) -> None:
        delay = RETRY_FIRST_SECONDS
        while True:
            changes: AsyncIterator[PostChange] | None = None
            try:
                changes = await self.store.changes()
                if not following.done():
                    following.set_result(None)
                delay = RETRY_FIRST_SECONDS
                async for change in changes:
                    self.dispatch(change)
                log.warning("live feed: the store's change feed ended; following anew")
            except DatabaseUnavailable as error:
                log.warning("live feed: change feed lost (%s); following anew in %gs", error, delay)
                if not following.done():
                    following.set_exception(error)
                    following.exception()  # retrieved: a waiter may have given up already
                    self._task = None
                    return
            except Exception:
                log.exception("live feed: the change feed failed; following anew in %gs", delay)
            finally:
                if changes is not None:
                    with contextlib.suppress(Exception):
                        await changes.aclose()  # type: ignore[attr-defined]
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MOST_SECONDS)
