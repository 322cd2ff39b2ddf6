"""The Cosmos DB store's post documents and its live feed (``CosmosStore.changes``).

The feed is the container's change feed in LatestVersion mode, read with the pull API
(``query_items_change_feed``): from "Now", then from each page's continuation, polled
every ``POLL_INTERVAL`` while empty. That mode has no deletes and reports an item once,
as it is when read, so every document records what a follower may have missed:

- a delete is a conditional patch of the post into its tombstone: the post as last
  stored, ``deleted: true``, with a ``ttl`` (the container's ``defaultTtl`` is -1) after
  which Cosmos DB removes it; the store reads a tombstone as no post;
- a write that replaces a version written less than ``PRIOR_WINDOW`` ago carries that
  version as ``prior`` (a follower polls far more often), so a create and an edit, or an
  edit and a delete, made within one poll both come out;
- ``writtenUs``, the writer's clock at the write, tells a follower whether a carried
  version was written before it began (then it is not replayed).

Cost and limits: README, "The Cosmos DB live feed".
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from gql_api.domain.records import ChangeKind, PostChange, PostRecord
from gql_api.stores.base import AlreadyExists, DatabaseUnavailable
from gql_api.stores.documents import DocumentCodec
from gql_api.stores.keyset import from_micros, to_micros

if TYPE_CHECKING:
    from azure.cosmos.aio import ContainerProxy

    from gql_api.stores.cosmos import CosmosStore

POLL_INTERVAL = 0.5  # seconds between reads of an empty feed
PAGE_SIZE = 100  # changes per read; a full page is followed at once by the next
PRIOR_WINDOW_US = 10_000_000  # a version older than this was read by every follower
TOMBSTONE_TTL = 3600  # seconds a tombstone is kept: far beyond any follower's lag
REMEMBERED = 10_000  # posts whose last writes a follower remembers, to drop repeats
Hook = Callable[[Mapping[str, Any], Any], None]  # an SDK response_hook

WRITTEN = "writtenUs"
DELETED = "deleted"
DELETED_AT = "deletedUs"
PRIOR = "prior"
TTL = "ttl"

# Times as integer microseconds (createdUs, updatedUs: exact, and ordered as numbers),
# absent values as nulls.
CODEC = DocumentCodec("createdUs", "updatedUs", write_time=to_micros, read_time=from_micros)


def now_us() -> int:
    return time.time_ns() // 1000


# --- documents -----------------------------------------------------------------------


def post_record(item: Mapping[str, Any]) -> PostRecord:
    """The post of a stored document. Its token is Cosmos DB's ``_etag`` and the
    version's ``writtenUs``: a write after it needs both (``etag_of``, ``written_of``)."""
    etag = item.get("_etag")
    token = None if etag is None else f"{etag}|{item.get(WRITTEN) or ''}"
    return CODEC.post_record(item, etag=token)


def etag_of(token: str) -> str:
    etag, separator, _ = token.rpartition("|")
    return etag if separator else token


def written_of(post: PostRecord) -> int | None:
    _, separator, written = (post.etag or "").rpartition("|")
    return int(written) if separator and written.isdigit() else None


def is_tombstone(item: Mapping[str, Any]) -> bool:
    return bool(item.get(DELETED))


def written(post: PostRecord, replaced: PostRecord | None = None) -> dict[str, Any]:
    """The document of a create (``replaced`` None) or an update of ``replaced``."""
    at = now_us()
    document = {**CODEC.post(post), WRITTEN: at}
    before = None if replaced is None else written_of(replaced)
    if replaced is not None and before is not None and at - before < PRIOR_WINDOW_US:
        document[PRIOR] = {**CODEC.post(replaced), WRITTEN: before}
    return document


def tombstone() -> list[dict[str, Any]]:
    """The patch a delete makes of the stored post (conditional on its ETag): marked,
    all else kept (its fields, ``writtenUs`` and the version it carries)."""
    return [
        {"op": "set", "path": f"/{DELETED}", "value": True},
        {"op": "set", "path": f"/{DELETED_AT}", "value": now_us()},
        {"op": "set", "path": f"/{TTL}", "value": TOMBSTONE_TTL},
    ]


async def recreate(posts: ContainerProxy, document: dict[str, Any], hook: Hook) -> dict[str, Any]:
    """After a create's 409: the post over its tombstone (a conditional replace), else
    ``AlreadyExists``. Once deleted, a post id can be created again (a late retry)."""
    from azure.core import MatchConditions
    from azure.cosmos.exceptions import (
        CosmosAccessConditionFailedError,
        CosmosResourceExistsError,
        CosmosResourceNotFoundError,
    )

    post_id = document["id"]
    try:
        try:
            stored = await posts.read_item(post_id, partition_key=post_id, response_hook=hook)
        except CosmosResourceNotFoundError as error:
            if owner_missing(error):
                raise  # the store's _calling: the container is missing
            return await posts.create_item(document, response_hook=hook)  # it expired since
        if not is_tombstone(stored):
            raise AlreadyExists(post_id)
        if now_us() - int(stored.get(DELETED_AT) or 0) < PRIOR_WINDOW_US:
            document = {**document, PRIOR: _carried(stored)}
        return await posts.replace_item(
            post_id,
            document,
            etag=stored["_etag"],
            match_condition=MatchConditions.IfNotModified,
            response_hook=hook,
        )
    except (CosmosResourceExistsError, CosmosAccessConditionFailedError):
        raise AlreadyExists(post_id) from None  # another writer made it first


def _carried(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if not k.startswith("_") and k not in (PRIOR, TTL)}


class Write(NamedTuple):
    change: PostChange
    at: int  # when it was made: writtenUs (deletedUs for a delete); 0 if unknown (old)
    carried: bool  # a version a document carries, not the change the feed reports


def writes_of(document: Mapping[str, Any], *, carried: bool = False) -> list[Write]:
    """The writes a document records, oldest first."""
    writes: list[Write] = []
    prior = document.get(PRIOR)
    if isinstance(prior, Mapping):
        writes += writes_of(prior, carried=True)
    post = post_record(document)
    kind = ChangeKind.CREATED if post.version == 1 else ChangeKind.UPDATED
    deleted = is_tombstone(document)
    # A tombstone reports its delete; the version it keeps is carried.
    writes.append(
        Write(PostChange(kind, post), int(document.get(WRITTEN) or 0), carried or deleted)
    )
    if deleted:
        at = int(document.get(DELETED_AT) or 0)
        writes.append(Write(PostChange(ChangeKind.DELETED, post), at, carried))
    return writes


def owner_missing(error: Any) -> bool:
    """Whether a 404 says that the database or the container is missing, not the item.

    Cosmos DB answers a request on an item of a missing container or database with 404
    and sub-status 1003 (``SubStatusCodes.OWNER_RESOURCE_NOT_FOUND``). A 404 to a request
    that was not for an item (``/dbs/{db}/colls/{coll}/docs/{id}``) is the SDK's own
    read of the container's properties finding no container (or no database).
    """
    from urllib.parse import urlsplit

    from azure.cosmos.http_constants import SubStatusCodes

    if getattr(error, "sub_status", None) == SubStatusCodes.OWNER_RESOURCE_NOT_FOUND:
        return True
    response = getattr(error, "response", None)
    request = getattr(response, "request", None)
    if request is None:
        return False
    segments = [segment for segment in urlsplit(request.url).path.split("/") if segment]
    return not (len(segments) >= 6 and segments[-2] == "docs")


# --- the follower --------------------------------------------------------------------


async def follow(store: CosmosStore) -> CosmosChanges:
    """A follower of ``store``'s posts from now: its first read (a 304) fixes the start."""
    began = now_us()
    _, continuation = await read_page(store, start_time="Now")
    return CosmosChanges(store, continuation, began)


async def read_page(store: CosmosStore, **start: Any) -> tuple[list[dict[str, Any]], str]:
    """One read of the change feed (one request per physical partition read): its items
    and the continuation after them."""
    responses: list[Mapping[str, Any]] = []
    charged = store._charged("changes")

    def hook(headers: Mapping[str, Any], result: Any) -> None:
        # The SDK replaces the raw ETag in these very headers by its continuation.
        responses.append(headers)
        charged(headers, result)

    from gql_api.stores.cosmos import POSTS

    async with store._calling() as database:
        pages = (
            database.get_container_client(POSTS)
            .query_items_change_feed(max_item_count=PAGE_SIZE, response_hook=hook, **start)
            .by_page()
        )
        try:
            items = [item async for item in await anext(pages)]
        except StopAsyncIteration:  # 304: nothing changed
            items = []
    continuation = responses[-1].get("etag") if responses else None
    if not continuation:
        raise DatabaseUnavailable("Cosmos DB: a change feed read gave no continuation")
    return items, continuation


class CosmosChanges:
    """The changes of the posts container after a continuation; nothing to release but
    itself (it reads through the store's client), so ``aclose`` works begun or not."""

    def __init__(self, store: CosmosStore, continuation: str, since_us: int) -> None:
        self._store = store
        self._continuation = continuation
        # Carried versions made before this (by their writer's clock) are not replayed.
        self._since_us = since_us
        self._ready: collections.deque[PostChange] = collections.deque()
        self._given: collections.OrderedDict[str, tuple[tuple[int, bool], ...]] = (
            collections.OrderedDict()
        )
        self._closed = asyncio.Event()

    def __aiter__(self) -> CosmosChanges:
        return self

    async def __anext__(self) -> PostChange:
        while not self._ready:
            if self._closed.is_set():
                raise StopAsyncIteration
            items, self._continuation = await read_page(
                self._store, continuation=self._continuation
            )
            for item in items:
                self._ready.extend(self._new(item))
            if not self._ready and len(items) < PAGE_SIZE:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(POLL_INTERVAL):
                        await self._closed.wait()
        return self._ready.popleft()

    async def aclose(self) -> None:
        self._closed.set()
        self._ready.clear()

    def _new(self, document: Mapping[str, Any]) -> list[PostChange]:
        return [
            write.change
            for write in writes_of(document)
            if (not write.carried or write.at >= self._since_us) and self._first_time(write)
        ]

    def _first_time(self, write: Write) -> bool:
        """Whether ``write`` was not given out yet: it is told by its time (a post's
        writes come in order, carried ones first, so an older one was given out before)."""
        post_id = write.change.post.id
        key = (write.at, write.change.kind is ChangeKind.DELETED)
        given = self._given.pop(post_id, ())
        new = key not in given
        self._given[post_id] = (*given[-3:], key) if new else given  # its last few writes
        if len(self._given) > REMEMBERED:
            self._given.popitem(last=False)
        return new
