"""An in-process store: fast, for tests and demos. Data lives as long as the process."""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import AsyncIterator, Mapping, Sequence

from gql_api.domain.records import (
    ChangeKind,
    PostChange,
    PostChanges,
    PostRecord,
    ProfileRecord,
    apply_changes,
)
from gql_api.stores.base import (
    AlreadyExists,
    DatabaseUnavailable,
    NoSuchPost,
    PageQuery,
    PostPage,
    VersionConflict,
    is_storable_post_id,
    storable_post,
    stored_post_id,
)
from gql_api.stores.keyset import parse_position, position_of, to_micros

_Key = tuple[int, str]  # (created_at in microseconds, id), kept in ascending order
# Writes a follower of the change feed may lag behind before its feed is lost.
FOLLOWER_BACKLOG = 10_000


class MemoryStore:
    name = "memory"

    def __init__(self) -> None:
        self._posts: dict[str, PostRecord] = {}
        self._profiles: dict[str, ProfileRecord] = {}
        # One sorted key list per feed: all posts, per tag, per author, per (author, tag).
        self._feeds: dict[tuple[str, ...], list[_Key]] = {}
        self._lock = asyncio.Lock()
        self._open = False
        self._followers: set[asyncio.Queue[PostChange | None]] = set()

    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False  # the data stays, as a server's would

    async def ping(self) -> None:
        self._check_open()

    async def provision(self) -> str:
        return "nothing to provision: the memory store lives in the process"

    async def inspect(self) -> list[tuple[bool, str]]:
        return [(True, "memory store: data lasts as long as the process")]

    async def get(self, post_id: str) -> PostRecord | None:
        self._check_open()
        return self._posts.get(post_id) if is_storable_post_id(post_id) else None

    async def create(self, post: PostRecord) -> PostRecord:
        self._check_open()
        storable_post(post)
        async with self._lock:
            if post.id in self._posts:
                raise AlreadyExists(post.id)
            self._posts[post.id] = post
            self._index(post)
        self._publish(PostChange(ChangeKind.CREATED, post))
        return post

    async def update(self, current: PostRecord, changes: PostChanges) -> PostRecord:
        self._check_open()
        async with self._lock:
            current = self._checked(stored_post_id(current.id), current.version)
            updated = apply_changes(current, changes)
            self._unindex(current)
            self._posts[current.id] = updated
            self._index(updated)
        self._publish(PostChange(ChangeKind.UPDATED, updated))
        return updated

    async def delete(self, current: PostRecord) -> None:
        self._check_open()
        async with self._lock:
            stored = self._checked(stored_post_id(current.id), current.version)
            self._unindex(stored)
            del self._posts[current.id]
        self._publish(PostChange(ChangeKind.DELETED, stored))

    async def list_posts(self, query: PageQuery) -> PostPage:
        self._check_open()
        keys = self._feeds.get(_feed_name(query.tag, query.author_id), [])
        end = len(keys)
        if query.after is not None:
            end = bisect.bisect_left(keys, parse_position(query.after))
        start = max(0, end - query.first)
        posts = [self._posts[post_id] for _, post_id in reversed(keys[start:end])]
        return PostPage(
            posts=posts, cursors=[position_of(p) for p in posts], has_next_page=start > 0
        )

    async def get_profiles(self, user_ids: Sequence[str]) -> Mapping[str, ProfileRecord]:
        self._check_open()
        return {uid: self._profiles[uid] for uid in user_ids if uid in self._profiles}

    async def put_profile(self, profile: ProfileRecord) -> ProfileRecord:
        self._check_open()
        self._profiles[profile.user_id] = profile  # one assignment: atomic on the loop
        return profile

    async def changes(self) -> AsyncIterator[PostChange]:
        """This process's writes only: the memory store has no other process."""
        self._check_open()
        return _Follower(self._followers)

    def _publish(self, change: PostChange) -> None:
        for queue in list(self._followers):
            if queue.full():  # lost: its follower is told once it has read what is queued
                self._followers.discard(queue)
                queue.get_nowait()
                queue.put_nowait(None)
            else:
                queue.put_nowait(change)

    def _check_open(self) -> None:
        if not self._open:
            raise DatabaseUnavailable("the store is closed")

    def _checked(self, post_id: str, expected_version: int) -> PostRecord:
        current = self._posts.get(post_id)
        if current is None:
            raise NoSuchPost(post_id)
        if current.version != expected_version:
            raise VersionConflict(current.version)
        return current

    def _index(self, post: PostRecord) -> None:
        key = (to_micros(post.created_at), post.id)
        for feed in _feeds_of(post):
            bisect.insort(self._feeds.setdefault(feed, []), key)

    def _unindex(self, post: PostRecord) -> None:
        key = (to_micros(post.created_at), post.id)
        for feed in _feeds_of(post):
            keys = self._feeds[feed]
            del keys[bisect.bisect_left(keys, key)]
            if not keys:
                del self._feeds[feed]


class _Follower:
    """A follower's queue, registered until it is closed (begun or not)."""

    def __init__(self, followers: set[asyncio.Queue[PostChange | None]]) -> None:
        self._followers = followers
        self._queue: asyncio.Queue[PostChange | None] = asyncio.Queue(FOLLOWER_BACKLOG)
        followers.add(self._queue)

    def __aiter__(self) -> _Follower:
        return self

    async def __anext__(self) -> PostChange:
        change = await self._queue.get()
        if change is None:
            raise DatabaseUnavailable("the change feed fell behind the writes")
        return change

    async def aclose(self) -> None:
        self._followers.discard(self._queue)


def _feed_name(tag: str | None, author_id: str | None) -> tuple[str, ...]:
    return (
        ("all",)
        + (("tag", tag) if tag is not None else ())
        + (("author", author_id) if author_id is not None else ())
    )


def _feeds_of(post: PostRecord) -> list[tuple[str, ...]]:
    feeds = [_feed_name(None, None), _feed_name(None, post.author_id)]
    for tag in post.tags:
        feeds += [_feed_name(tag, None), _feed_name(tag, post.author_id)]
    return feeds
