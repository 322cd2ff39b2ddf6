"""What the DynamoDB change feed promises beyond the contract (tests/test_change_feeds.py):
the table's stream provisioned and checked, only post items' records as changes, nothing
replayed, a follower that holds nothing once closed, outages as ``DatabaseUnavailable``,
and the bookkeeping of shards that split."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from gql_api.domain.records import ChangeKind, PostChange, ProfileRecord
from gql_api.stores.base import DatabaseUnavailable
from gql_api.stores.dynamodb import DynamoDBStore
from gql_api.stores.dynamodb_streams import Shards, StreamFollower
from gql_api.stores.dynamodb_table import table_definition
from tests.helpers import record
from tests.servers import reset_moto
from tests.test_deploy_aws import template
from tests.test_store_contract import changes_of

TABLE = "gql-api-streams"
DELAY = 2.0  # the contract's delay between a write and its change


@pytest.fixture
async def dynamo(moto_url: str) -> AsyncIterator[DynamoDBStore]:
    await asyncio.to_thread(reset_moto, moto_url)
    store = DynamoDBStore(TABLE, endpoint_url=moto_url)
    await store.open()
    await store.provision()
    yield store
    await store.close()


@pytest.fixture
async def bare(moto_url: str) -> AsyncIterator[DynamoDBStore]:
    """An open store whose table was made without a stream, as before the live feed."""
    await asyncio.to_thread(reset_moto, moto_url)
    store = DynamoDBStore(TABLE, endpoint_url=moto_url)
    await store.open()
    definition = table_definition(TABLE)
    del definition["StreamSpecification"]
    assert store._client is not None
    await store._client.create_table(**definition)
    yield store
    await store.close()


async def next_change(changes: AsyncIterator[PostChange]) -> PostChange:
    async with asyncio.timeout(DELAY):
        return await anext(changes)


async def stream_of(store: DynamoDBStore) -> dict[str, Any]:
    assert store._client is not None
    described = (await store._client.describe_table(TableName=TABLE))["Table"]
    return dict(described.get("StreamSpecification") or {})


async def test_provision_adds_the_stream_to_a_table_made_without_one(
    bare: DynamoDBStore,
) -> None:
    assert not (await stream_of(bare)).get("StreamEnabled")
    assert "stream added" in await bare.provision()
    assert await stream_of(bare) == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert all(ok for ok, _ in await bare.inspect())
    again = await bare.provision()  # idempotent: moto refuses a second stream
    assert "already there" in again and "stream added" not in again
    changes = await bare.changes()
    try:
        created = await bare.create(record())
        assert (await next_change(changes)).post == created
    finally:
        await changes.aclose()  # type: ignore[attr-defined]


async def test_inspect_and_the_feed_name_a_missing_stream_and_the_fix(
    bare: DynamoDBStore,
) -> None:
    failed = [line for ok, line in await bare.inspect() if not ok]
    assert failed == [
        f"stream of {TABLE}: missing (the live feed reads it); fix: run `gql-api provision` "
        "(or deploy the table of deploy/aws)"
    ]
    with pytest.raises(DatabaseUnavailable, match=r"missing.*gql-api provision"):
        await bare.changes()


async def test_a_stream_of_another_view_is_reported_not_replaced(bare: DynamoDBStore) -> None:
    assert bare._client is not None
    await bare._client.update_table(
        TableName=TABLE, StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}
    )
    (line,) = [line for ok, line in await bare.inspect() if not ok]
    assert line.startswith(f"stream of {TABLE}: KEYS_ONLY, not NEW_AND_OLD_IMAGES; fix: ")
    assert "StreamEnabled=false" in line
    with pytest.raises(DatabaseUnavailable, match="KEYS_ONLY"):
        await bare.provision()
    assert (await stream_of(bare))["StreamViewType"] == "KEYS_ONLY"


def test_the_templates_table_has_the_stream_provision_makes() -> None:
    table = template()["Resources"]["PostsTable"]["Properties"]
    expected = table_definition("ignored")["StreamSpecification"]
    assert table["StreamSpecification"] == {"StreamViewType": expected["StreamViewType"]}


async def test_a_post_with_tags_makes_one_change_per_write(dynamo: DynamoDBStore) -> None:
    changes = await dynamo.changes()
    try:
        created = await dynamo.create(record(tags=("a", "b", "c"), author_id="bob"))
        updated = await dynamo.update(created, changes_of(created, tags=("c", "d")))
        await dynamo.put_profile(ProfileRecord(user_id="bob", nickname="Bob"))
        await dynamo.delete(updated)
        marker = await dynamo.create(record())  # nothing may come out before it
        seen = [await next_change(changes) for _ in range(4)]
        assert [(c.kind, c.post.id, c.post.version) for c in seen] == [
            (ChangeKind.CREATED, created.id, 1),
            (ChangeKind.UPDATED, created.id, 2),
            (ChangeKind.DELETED, created.id, 2),
            (ChangeKind.CREATED, marker.id, 1),
        ]
        assert (seen[0].post, seen[1].post) == (created, updated)
        assert seen[2].post == updated  # the old image: the post as last stored
    finally:
        await changes.aclose()  # type: ignore[attr-defined]


async def test_a_feed_begun_after_writes_does_not_replay_them(dynamo: DynamoDBStore) -> None:
    earlier = [await dynamo.create(record(tags=("x",))) for _ in range(3)]
    edited = await dynamo.update(earlier[0], changes_of(earlier[0], content="edited"))
    await dynamo.delete(earlier[1])
    changes = await dynamo.changes()
    try:
        await dynamo.update(edited, changes_of(edited, content="again"))
        seen = await next_change(changes)
        assert (seen.kind, seen.post.id, seen.post.version) == (
            ChangeKind.UPDATED,
            edited.id,
            3,
        )
        late = await dynamo.changes()  # begun once the feed above has read that write
        try:
            marker = await dynamo.create(record())
            assert (await next_change(late)).post == marker
            assert (await next_change(changes)).post == marker
        finally:
            await late.aclose()  # type: ignore[attr-defined]
    finally:
        await changes.aclose()  # type: ignore[attr-defined]


async def test_a_follower_closed_unread_holds_nothing_and_the_client_is_opened_once(
    dynamo: DynamoDBStore,
) -> None:
    first = await dynamo.changes()
    client = dynamo._streams
    assert client is not None
    second = await dynamo.changes()
    assert dynamo._streams is client  # one streams client for every follower
    await first.aclose()  # type: ignore[attr-defined]
    assert isinstance(first, StreamFollower)
    assert first._iterators == {}
    with pytest.raises(StopAsyncIteration):
        await anext(first)
    await dynamo.close()
    assert dynamo._streams is None  # closed with the store
    with pytest.raises(DatabaseUnavailable, match="closed"):
        await anext(second)
    await second.aclose()  # type: ignore[attr-defined]


async def test_a_feed_on_an_unreachable_endpoint_is_database_unavailable(
    silent_port: int,
) -> None:
    store = DynamoDBStore(TABLE, endpoint_url=f"http://127.0.0.1:{silent_port}", timeout=0.5)
    await store.open()
    try:
        with pytest.raises(DatabaseUnavailable, match="unreachable"):
            await store.changes()
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def proxy_to(url: str) -> AsyncIterator[tuple[str, asyncio.Server]]:
    """A TCP relay to ``url``: its URL and its server, to stop as a database goes away."""
    target = urlsplit(url)
    assert target.hostname is not None and target.port is not None
    host, port = target.hostname, target.port
    relays: set[asyncio.Future[Any]] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(host, port)
        both = asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))
        relays.add(both)
        await both

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", server
    finally:
        server.close()
        for relayed in relays:
            relayed.cancel()


async def test_a_feed_whose_database_goes_away_is_database_unavailable(
    dynamo: DynamoDBStore, moto_url: str
) -> None:
    async with proxy_to(moto_url) as (url, server):
        follower = DynamoDBStore(TABLE, endpoint_url=url, timeout=1)
        await follower.open()
        try:
            changes = await follower.changes()
            created = await dynamo.create(record())
            assert (await next_change(changes)).post == created
            server.close()  # refuses new connections (moto closes each after its answer)
            with pytest.raises(DatabaseUnavailable, match="unreachable"):
                async with asyncio.timeout(10):
                    await anext(changes)
            await changes.aclose()  # type: ignore[attr-defined]
        finally:
            await follower.close()


def shard(shard_id: str, parent: str | None = None, *, closed: bool = False) -> dict[str, Any]:
    """A shard as DescribeStream lists it."""
    numbers = {"StartingSequenceNumber": "1"} | ({"EndingSequenceNumber": "9"} if closed else {})
    described: dict[str, Any] = {"ShardId": shard_id, "SequenceNumberRange": numbers}
    if parent is not None:
        described["ParentShardId"] = parent
    return described


def test_a_shard_split_off_waits_until_its_parent_is_read_to_its_end() -> None:
    shards = Shards([shard("old", closed=True), shard("a")])
    assert shards.found([shard("old", closed=True), shard("a")], following={"a"}) == []
    split = [shard("a", closed=True), shard("b", "a"), shard("c", "a")]
    # "a" still has records to read: its children wait, so one item's records keep order.
    assert shards.found(split, following={"a"}) == []
    assert set(shards.waiting) == {"b", "c"}
    assert shards.found(split, following=set()) == ["b", "c"]
    assert shards.found(split, following={"b", "c"}) == []  # each begins once


def test_a_grandchild_waits_for_a_child_still_waiting() -> None:
    shards = Shards([shard("a")])
    later = [shard("a", closed=True), shard("b", "a", closed=True), shard("c", "b")]
    assert shards.found(later, following={"a"}) == []
    assert shards.found(later, following=set()) == ["b"]
    assert shards.found(later, following={"b"}) == []
    assert shards.found(later, following=set()) == ["c"]


def test_a_new_shard_whose_parent_was_never_followed_begins_at_once() -> None:
    shards = Shards([shard("a", closed=True)])  # closed before the follower began
    assert shards.found([shard("a", closed=True), shard("n", "a")], following=set()) == ["n"]
    assert shards.found([shard("z")], following={"n"}) == ["z"]  # "a" trimmed, "z" new
