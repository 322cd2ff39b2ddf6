"""The change feed of the local Cosmos DB server (tests/cosmos_server/change-feed.js), read
through azure-cosmos' own pull API, and what the Cosmos DB store's live feed promises
beyond the contract (tests/test_change_feeds.py): tombstones, carried versions, TTL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gql_api.domain.records import ChangeKind, PostChange
from gql_api.stores.base import NoSuchPost, PageQuery
from gql_api.stores.cosmos import POSTS, CosmosStore
from tests.conftest import COSMOS_KEY
from tests.helpers import record
from tests.test_store_contract import changes_of

# --- the server's change feed, through the SDK -----------------------------------------


class Feed:
    """One container of a fresh database, and reads of its change feed: each read one
    page, with the HTTP status and the continuation it ended on."""

    def __init__(self, container: Any) -> None:
        self.container = container
        self.statuses: list[int] = []

    async def read(self, **start: Any) -> tuple[list[dict[str, Any]], str]:
        headers: list[Any] = []
        pages = self.container.query_items_change_feed(
            response_hook=lambda h, _: headers.append(h),
            raw_response_hook=lambda r: self.statuses.append(r.http_response.status_code),
            **start,
        ).by_page()
        try:
            items = [item async for item in await anext(pages)]
        except StopAsyncIteration:
            items = []
        return items, headers[-1]["etag"]

    async def put(self, item_id: str, n: int) -> None:
        await self.container.upsert_item({"id": item_id, "n": n})


@pytest.fixture
async def feed(cosmos_url: str) -> AsyncIterator[Feed]:
    from azure.cosmos import PartitionKey
    from azure.cosmos.aio import CosmosClient

    async with CosmosClient(
        cosmos_url, credential=COSMOS_KEY, connection_verify=False, enable_endpoint_discovery=False
    ) as client:
        name = f"t{uuid.uuid4().hex}"
        database = await client.create_database_if_not_exists(name)
        container = await database.create_container_if_not_exists(
            "items", partition_key=PartitionKey("/id")
        )
        yield Feed(container)
        await client.delete_database(name)


def seen(items: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(item["id"], item["n"]) for item in items]


async def test_from_the_beginning_each_item_once_latest_version_in_lsn_order(feed: Feed) -> None:
    await feed.put("a", 1)
    await feed.put("b", 1)
    await feed.put("a", 2)  # a's latest version, after b's
    await feed.put("c", 1)
    await feed.container.delete_item("c", partition_key="c")  # LatestVersion has no deletes
    items, _ = await feed.read(start_time="Beginning")
    assert seen(items) == [("b", 1), ("a", 2)]
    lsns = [item["_lsn"] for item in items]
    assert lsns == sorted(lsns) and len(set(lsns)) == 2
    assert feed.statuses == [200]


async def test_from_now_nothing_before_then_only_what_is_new(feed: Feed) -> None:
    await feed.put("old", 1)
    items, now = await feed.read(start_time="Now")
    assert items == [] and feed.statuses == [304]
    items, again = await feed.read(continuation=now)
    assert items == [] and feed.statuses[-1] == 304  # 304 with the same position
    await feed.put("a", 1)
    await feed.put("a", 2)  # twice: once, as it is now
    await feed.put("b", 1)
    items, after = await feed.read(continuation=again)
    assert seen(items) == [("a", 2), ("b", 1)] and feed.statuses[-1] == 200
    items, end = await feed.read(continuation=after)
    assert items == [] and feed.statuses[-1] == 304
    await feed.put("old", 2)
    items, _ = await feed.read(continuation=end)
    assert seen(items) == [("old", 2)]


async def test_max_item_count_pages_the_changes(feed: Feed) -> None:
    for n, item_id in enumerate("abcde"):
        await feed.put(item_id, n)
    pages = []
    items, continuation = await feed.read(start_time="Beginning", max_item_count=2)
    while items:
        pages.append([item["id"] for item in items])
        items, continuation = await feed.read(continuation=continuation, max_item_count=2)
    assert pages == [["a", "b"], ["c", "d"], ["e"]]
    assert feed.statuses == [200, 200, 200, 304]


async def test_a_partition_keys_feed_holds_its_item_only(feed: Feed) -> None:
    for item_id in ("a", "b", "c"):
        await feed.put(item_id, 1)
    items, _ = await feed.read(start_time="Beginning", partition_key="b")
    assert seen(items) == [("b", 1)]


# --- the store's live feed ---------------------------------------------------------------


@pytest.fixture
async def cosmos(cosmos_url: str) -> AsyncIterator[CosmosStore]:
    store = CosmosStore(
        cosmos_url, key=COSMOS_KEY, database=f"t{uuid.uuid4().hex}", verify_tls=False
    )
    await store.open()
    await store.provision()
    yield store
    await store.close()


async def take(changes: Any, count: int) -> list[PostChange]:
    return [await anext(changes) for _ in range(count)]


async def test_a_delete_of_a_post_written_before_following_comes_with_its_tags(
    cosmos: CosmosStore,
) -> None:
    before = await cosmos.create(record(tags=("news",), author_id="bob"))
    changes = await cosmos.changes()
    try:
        await cosmos.delete(before)
        (seen,) = await take(changes, 1)  # its creation, written before, is not replayed
        assert seen.kind is ChangeKind.DELETED
        assert (seen.post.id, seen.post.version) == (before.id, 1)
        assert (seen.post.author_id, seen.post.tags) == ("bob", ("news",))
        assert cosmos.last_charge is not None
    finally:
        await changes.aclose()  # type: ignore[attr-defined]


async def test_writes_within_one_poll_all_come_out_in_order(cosmos: CosmosStore) -> None:
    """LatestVersion reports a post once, as it is when read: a create, an edit and the
    delete made before the follower reads still come out, each once."""
    changes = await cosmos.changes()
    try:
        created = await cosmos.create(record(tags=("a",)))
        updated = await cosmos.update(created, changes_of(created, tags=("b",)))
        await cosmos.delete(updated)
        assert [(c.kind, c.post) for c in await take(changes, 3)] == [
            (ChangeKind.CREATED, created),
            (ChangeKind.UPDATED, updated),
            (ChangeKind.DELETED, updated),
        ]
        made_again = await cosmos.create(record(post_id=created.id))
        (seen,) = await take(changes, 1)
        assert (seen.kind, seen.post) == (ChangeKind.CREATED, made_again)
    finally:
        await changes.aclose()  # type: ignore[attr-defined]


async def test_a_tombstone_is_no_post_to_any_read_or_query(cosmos: CosmosStore) -> None:
    kept = await cosmos.create(record(tags=("t",), author_id="bob"))
    gone = await cosmos.create(record(tags=("t",), author_id="bob"))
    await cosmos.delete(gone)
    assert cosmos._client is not None
    posts = cosmos._client.get_database_client(cosmos.database_name).get_container_client(POSTS)
    stored = await posts.read_item(gone.id, partition_key=gone.id)
    assert (stored["deleted"], stored["ttl"], stored["tags"]) == (True, 3600, ["t"])
    assert await cosmos.get(gone.id) is None
    for filters in ({}, {"tag": "t"}, {"author_id": "bob"}, {"tag": "t", "author_id": "bob"}):
        page = await cosmos.list_posts(PageQuery(first=5, **filters))
        assert [p.id for p in page.posts] == [kept.id], filters
        assert not page.has_next_page
    with pytest.raises(NoSuchPost):
        await cosmos.update(gone, changes_of(gone))
    with pytest.raises(NoSuchPost):
        await cosmos.delete(gone)


async def test_a_post_id_can_be_created_again_after_its_delete(cosmos: CosmosStore) -> None:
    from gql_api.stores.base import AlreadyExists

    first = await cosmos.create(record(content="first"))
    await cosmos.delete(first)
    again = await cosmos.create(record(post_id=first.id, content="again"))
    assert await cosmos.get(first.id) == again and again.version == 1
    with pytest.raises(AlreadyExists):  # a live post is still never overwritten
        await cosmos.create(record(post_id=first.id))


async def test_a_follower_closed_before_it_began_ends(cosmos: CosmosStore) -> None:
    changes = await cosmos.changes()
    await changes.aclose()  # type: ignore[attr-defined]
    await cosmos.create(record())
    with pytest.raises(StopAsyncIteration):
        await anext(changes)


async def test_provision_turns_time_to_live_on_and_inspect_says_when_it_is_off(
    cosmos_url: str,
) -> None:
    from azure.cosmos import PartitionKey

    store = CosmosStore(
        cosmos_url, key=COSMOS_KEY, database=f"t{uuid.uuid4().hex}", verify_tls=False
    )
    await store.open()
    try:
        assert store._client is not None
        database = await store._client.create_database_if_not_exists(store.database_name)
        container = await database.create_container_if_not_exists(
            POSTS, partition_key=PartitionKey("/id")
        )
        assert "defaultTtl" not in await container.read()
        failed = [line for ok, line in await store.inspect() if not ok]
        assert "container posts: time to live off; fix: run `gql-api provision`" in failed
        await store.provision()
        assert (await container.read())["defaultTtl"] == -1
        checks = await store.inspect()
        assert (True, "container posts: time to live on (defaultTtl -1)") in checks
        assert all(ok for ok, _ in checks), checks
    finally:
        await store.close()
