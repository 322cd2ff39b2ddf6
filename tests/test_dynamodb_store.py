"""What only the DynamoDB store promises: round trips, shards, provisioning, outages."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gql_api.domain.service import NewPost, PostEdit, PostService
from gql_api.errors import StoreUnavailableError
from gql_api.stores.base import PageQuery
from gql_api.stores.dynamodb import DynamoDBStore
from gql_api.stores.dynamodb_table import table_definition
from tests.helpers import ALICE, BOB, StepClock, cli_env, free_port, run_cli
from tests.servers import reset_moto

TABLE = "gql-api-dynamo"


async def reset(moto_url: str) -> None:
    await asyncio.to_thread(reset_moto, moto_url)


@pytest.fixture
async def dynamo(moto_url: str) -> AsyncIterator[DynamoDBStore]:
    await reset(moto_url)
    store = DynamoDBStore(TABLE, endpoint_url=moto_url)
    await store.open()
    await store.provision()
    yield store
    await store.close()


class RoundTrips:
    """Counts the HTTP requests the SDK sends, by operation (botocore's before-send event)."""

    def __init__(self, store: DynamoDBStore) -> None:
        self.calls: Counter[str] = Counter()
        assert store._client is not None
        store._client.meta.events.register("before-send.dynamodb", self._count)

    def _count(self, event_name: str, **kwargs: Any) -> None:
        self.calls[event_name.rsplit(".", 1)[-1]] += 1

    def take(self) -> Counter[str]:
        taken, self.calls = self.calls, Counter()
        return taken


async def test_round_trips_of_each_operation(dynamo: DynamoDBStore) -> None:
    service = PostService(dynamo, timeout=5, clock=StepClock())
    trips = RoundTrips(dynamo)
    post = await service.create_post(ALICE, NewPost(content="x", tags=["a", "b"]))
    assert trips.take() == {"TransactWriteItems": 1}
    await service.get_post(post.id)
    assert trips.take() == {"GetItem": 1}
    for _ in range(4):
        await service.create_post(BOB, NewPost(content="y", tags=["a"]))
    trips.take()
    await service.list_posts(first=2)
    assert trips.take() == {"Query": 1}
    page = await service.list_posts(first=2, author_id="bob")
    assert trips.take() == {"Query": 1}
    await service.list_posts(first=2, after=page.end_cursor, author_id="bob")
    assert trips.take() == {"Query": 1}
    await service.list_posts(first=2, tag="a")
    assert trips.take() == {"Query": 1, "BatchGetItem": 1}
    await service.list_posts(first=2, tag="a", author_id="alice")
    assert trips.take() == {"Query": 1, "BatchGetItem": 1}
    await service.update_post(ALICE, post.id, PostEdit(content="z", tags=["b", "c"]))
    assert trips.take() == {"GetItem": 1, "TransactWriteItems": 1}
    await service.delete_post(ALICE, post.id)
    assert trips.take() == {"GetItem": 1, "TransactWriteItems": 1}
    await service.update_profile(ALICE, "Alice")
    assert trips.take() == {"PutItem": 1}
    await service.load_profiles(["alice", "bob", "carol"])
    assert trips.take() == {"BatchGetItem": 1}


async def test_a_sharded_feed_merges_into_one_newest_first_walk(moto_url: str) -> None:
    await reset(moto_url)
    store = DynamoDBStore(TABLE, endpoint_url=moto_url, feed_shards=4)
    await store.open()
    try:
        await store.provision()
        service = PostService(store, timeout=5, clock=StepClock())
        made = [(await service.create_post(ALICE, NewPost(content=f"#{i}"))).id for i in range(13)]
        trips = RoundTrips(store)
        seen: list[str] = []
        page = await service.list_posts(first=4)
        assert trips.take() == {"Query": 4}  # one per shard, in parallel
        seen += [e.post.id for e in page.edges]
        while page.has_next_page:
            assert len(page.edges) == 4
            page = await service.list_posts(first=4, after=page.end_cursor)
            seen += [e.post.id for e in page.edges]
        assert seen == made[::-1]
        shards = Counter(store._shard(post_id) for post_id in made)
        assert len(shards) > 1  # the posts really are spread
    finally:
        await store.close()


async def test_provision_is_idempotent_and_inspect_says_all_is_well(dynamo: DynamoDBStore) -> None:
    assert "already there" in await dynamo.provision()
    checks = await dynamo.inspect()
    assert all(ok for ok, _ in checks), checks
    assert {line.split(":")[0] for _, line in checks} >= {
        "index feed",
        "index author",
        "index tag",
        "index tagAuthor",
    }


async def test_inspect_names_a_missing_index_and_the_fix(moto_url: str) -> None:
    await reset(moto_url)
    store = DynamoDBStore(TABLE, endpoint_url=moto_url)
    await store.open()
    try:
        definition = table_definition(TABLE)
        definition["GlobalSecondaryIndexes"] = [
            i for i in definition["GlobalSecondaryIndexes"] if i["IndexName"] != "tag"
        ]
        definition["AttributeDefinitions"] = [
            a for a in definition["AttributeDefinitions"] if a["AttributeName"] != "tagPk"
        ]
        assert store._client is not None
        await store._client.create_table(**definition)
        failed = [line for ok, line in await store.inspect() if not ok]
        assert failed == [
            "index tag: missing; fix: run `gql-api provision` (or deploy the table of deploy/aws)"
        ]
        await reset(moto_url)
        assert (await store.inspect())[0][0] is False
        assert "not found" in (await store.inspect())[0][1]
    finally:
        await store.close()


async def test_an_unreachable_endpoint_is_store_unavailable_in_time() -> None:
    store = DynamoDBStore(TABLE, endpoint_url=f"http://127.0.0.1:{free_port()}", timeout=1)
    await store.open()
    try:
        service = PostService(store, timeout=2)
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError):
            await service.get_post("0" * 32)  # an id the store is asked about
        with pytest.raises(StoreUnavailableError):
            await service.list_posts()
        assert time.monotonic() - started < 6
    finally:
        await store.close()


async def test_a_server_that_never_answers_is_store_unavailable_in_time(silent_port: int) -> None:
    store = DynamoDBStore(TABLE, endpoint_url=f"http://127.0.0.1:{silent_port}", timeout=30)
    await store.open()
    try:
        service = PostService(store, timeout=0.5)
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError):
            await service.create_post(ALICE, NewPost(content="x"))
        assert time.monotonic() - started < 3
    finally:
        await store.close()


@pytest.fixture
def dynamo_env(moto_url: str) -> dict[str, str]:
    return cli_env(
        GQL_API_STORE="dynamodb",
        GQL_API_DYNAMODB_ENDPOINT=moto_url,
        GQL_API_DYNAMODB_TABLE="gql-api-cli",
        GQL_API_DEV_SECRET="s" * 40,
    )


async def test_doctor_fails_before_provision_and_passes_after(
    moto_url: str, dynamo_env: dict[str, str]
) -> None:
    await reset(moto_url)
    before = await asyncio.to_thread(run_cli, ["doctor"], dynamo_env)
    assert before.returncode == 1
    assert "FAIL  table gql-api-cli: not found; fix: run `gql-api provision`" in before.stdout
    provision = await asyncio.to_thread(run_cli, ["provision"], dynamo_env)
    assert provision.returncode == 0, provision.stderr
    assert "table gql-api-cli created" in provision.stdout
    again = await asyncio.to_thread(run_cli, ["provision"], dynamo_env)
    assert "already there" in again.stdout
    after = await asyncio.to_thread(run_cli, ["doctor"], dynamo_env)
    assert after.returncode == 0, after.stdout
    assert "store dynamodb: read, conditional write, page and delete work" in after.stdout


async def test_old_service_settings_select_this_store(
    moto_url: str, dynamo_env: dict[str, str]
) -> None:
    await reset(moto_url)
    env = {
        k: v for k, v in dynamo_env.items() if k not in ("GQL_API_STORE", "GQL_API_DYNAMODB_TABLE")
    }
    env.update(CLOUD_PROVIDER="aws", POSTS_TABLE_NAME="legacy-posts")
    provision = await asyncio.to_thread(run_cli, ["provision"], env)
    assert provision.returncode == 0, provision.stderr
    assert "provision dynamodb: table legacy-posts created" in provision.stdout


async def test_page_reads_stay_full_when_index_entries_outlive_their_post(
    dynamo: DynamoDBStore,
) -> None:
    """Deleting in one transaction leaves no tag entry behind (moto's indexes are immediate)."""
    service = PostService(dynamo, timeout=5, clock=StepClock())
    ids = [
        (await service.create_post(ALICE, NewPost(content="x", tags=["t"]))).id for _ in range(5)
    ]
    await service.delete_post(ALICE, ids[2])
    page = await dynamo.list_posts(PageQuery(first=4, tag="t"))
    assert [p.id for p in page.posts] == [ids[4], ids[3], ids[1], ids[0]]
    assert not page.has_next_page
