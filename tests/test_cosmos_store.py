"""What only the Cosmos DB store promises: round trips, request charges, provisioning, outages."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gql_api.domain.records import PostChanges, PostRecord
from gql_api.domain.service import NewPost, PostEdit, PostService
from gql_api.errors import StoreUnavailableError
from gql_api.stores.base import DatabaseUnavailable, NoSuchPost
from gql_api.stores.cosmos import POSTS, CosmosStore
from tests.conftest import COSMOS_KEY
from tests.helpers import ALICE, BOB, StepClock, cli_env, free_port, record, run_cli


class RoundTrips:
    """Counts every HTTP response the SDK receives (azure-core's raw_response_hook)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, response: Any) -> None:
        self.count += 1

    def take(self) -> int:
        taken, self.count = self.count, 0
        return taken


@pytest.fixture
async def counted(cosmos_url: str) -> AsyncIterator[tuple[CosmosStore, RoundTrips]]:
    trips = RoundTrips()
    store = CosmosStore(
        cosmos_url,
        key=COSMOS_KEY,
        database=f"t{uuid.uuid4().hex}",
        verify_tls=False,
        client_options={"raw_response_hook": trips},
    )
    await store.open()
    await store.provision()
    yield store, trips
    await store.close()


async def test_round_trips_and_request_charges(
    counted: tuple[CosmosStore, RoundTrips], caplog: pytest.LogCaptureFixture
) -> None:
    store, trips = counted
    service = PostService(store, timeout=5, clock=StepClock())
    trips.take()
    charges: dict[str, float | None] = {}
    with caplog.at_level(logging.DEBUG, logger="gql_api.stores.cosmos"):
        post = await service.create_post(ALICE, NewPost(content="x", tags=["a"]))
        assert trips.take() == 1
        charges["create"] = store.last_charge
        await service.get_post(post.id)
        assert trips.take() == 1
        charges["get"] = store.last_charge
        for _ in range(3):
            await service.create_post(BOB, NewPost(content="y", tags=["a"]))
        trips.take()
        for filters in ({}, {"author_id": "bob"}, {"tag": "a"}, {"tag": "a", "author_id": "bob"}):
            page = await service.list_posts(first=2, **filters)
            assert trips.take() == 1, filters
            await service.list_posts(first=2, after=page.end_cursor, **filters)
            assert trips.take() == 1, filters
        charges["page"] = store.last_charge
        await service.update_post(ALICE, post.id, PostEdit(content="z"))
        assert trips.take() == 2
        charges["update"] = store.last_charge
        await service.delete_post(ALICE, post.id)
        assert trips.take() == 2
        await service.update_profile(ALICE, "Alice")
        assert trips.take() == 1
        charges["profile"] = store.last_charge
        await service.load_profiles(["alice", "bob"])
        assert trips.take() == 1
    # Bounds from Cosmos DB's published costs of small items: a point read 1 RU, a write
    # about 5-10 RU, a page query a few RU. (The local server reports 1 RU for every
    # request, so here the bound shows that each charge is read and logged.)
    bounds = {"get": 2, "create": 15, "update": 20, "page": 20, "profile": 15}
    for operation, bound in bounds.items():
        charge = charges[operation]
        assert charge is not None and 0 < charge <= bound, (operation, charge)
    logged = [r.getMessage() for r in caplog.records if r.name == "gql_api.stores.cosmos"]
    for operation in ("create", "get", "page", "update", "delete", "profile", "profiles"):
        assert any(m.startswith(f"cosmos {operation}: ") and m.endswith(" RU") for m in logged)


async def test_provision_is_idempotent_and_inspect_says_all_is_well(
    counted: tuple[CosmosStore, RoundTrips],
) -> None:
    store, _ = counted
    assert "ready" in await store.provision()
    checks = await store.inspect()
    assert all(ok for ok, _ in checks), checks
    lines = [line for _, line in checks]
    assert f"database {store.database_name}: exists" in lines
    assert "container posts: partition key ['/id']" in lines
    assert "container posts: composite indexes present" in lines


async def test_inspect_names_what_is_missing(cosmos_url: str) -> None:
    store = CosmosStore(cosmos_url, key=COSMOS_KEY, database="never-made", verify_tls=False)
    await store.open()
    try:
        assert await store.inspect() == [
            (False, "database never-made: not found; fix: run `gql-api provision`")
        ]
        assert store._client is not None
        database = await store._client.create_database_if_not_exists("never-made")
        from azure.cosmos import PartitionKey

        await database.create_container_if_not_exists(
            "posts", partition_key=PartitionKey("/authorId")
        )
        failed = [line for ok, line in await store.inspect() if not ok]
        assert "container posts: partition key ['/authorId']; fix: recreate it with /id" in failed
        assert "container posts: composite indexes missing; fix: run `gql-api provision`" in failed
        assert "container profiles: not found; fix: run `gql-api provision`" in failed
    finally:
        await store.close()


async def test_an_unreachable_server_is_store_unavailable_in_time() -> None:
    store = CosmosStore(
        f"http://127.0.0.1:{free_port()}", key=COSMOS_KEY, verify_tls=False, timeout=1
    )
    await store.open()
    try:
        service = PostService(store, timeout=2)
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError):
            await service.get_post("0" * 32)  # an id the store is asked about
        with pytest.raises(StoreUnavailableError):
            await service.create_post(ALICE, NewPost(content="x"))
        assert time.monotonic() - started < 8
    finally:
        await store.close()


async def test_provision_and_doctor_from_the_command_line(cosmos_url: str) -> None:
    env = cli_env(
        CLOUD_PROVIDER="azure",  # the earlier service's setting selects this store
        GQL_API_COSMOS_URL=cosmos_url,
        GQL_API_COSMOS_KEY=COSMOS_KEY,
        GQL_API_COSMOS_DATABASE=f"cli{uuid.uuid4().hex[:8]}",
        GQL_API_COSMOS_VERIFY_TLS="false",
        GQL_API_DEV_SECRET="s" * 40,
    )
    before = await asyncio.to_thread(run_cli, ["doctor"], env)
    assert before.returncode == 1
    assert "not found; fix: run `gql-api provision`" in before.stdout
    provision = await asyncio.to_thread(run_cli, ["provision"], env)
    assert provision.returncode == 0, provision.stderr
    assert "containers posts and profiles ready" in provision.stdout
    after = await asyncio.to_thread(run_cli, ["doctor"], env)
    assert after.returncode == 0, after.stdout + after.stderr
    assert "ok    store cosmos: read, conditional write, page and delete work" in after.stdout


def changes_of(post: PostRecord) -> PostChanges:
    return PostChanges(
        content="edited",
        is_markdown=False,
        tags=(),
        image_keys=(),
        updated_at=post.created_at,
    )


async def test_a_missing_item_is_no_such_post(counted: tuple[CosmosStore, RoundTrips]) -> None:
    store, _ = counted
    post = await store.create(record())
    await store.delete(post)
    assert await store.get(post.id) is None
    with pytest.raises(NoSuchPost):
        await store.update(post, changes_of(post))
    with pytest.raises(NoSuchPost):
        await store.delete(post)


@pytest.mark.parametrize("gone", ["container", "database"])
async def test_a_point_read_or_write_in_a_missing_container_is_store_unavailable(
    counted: tuple[CosmosStore, RoundTrips], gone: str
) -> None:
    """Cosmos DB answers an item request whose container or database is gone with 404
    and sub-status 1003: the store is unavailable, not the post missing (a client told
    "no such post" may drop its copy)."""
    store, _ = counted
    post = await store.create(record(post_id=uuid.uuid4().hex))  # the SDK knows the container now
    assert store._client is not None
    database = store._client.get_database_client(store.database_name)
    if gone == "container":
        await database.delete_container(POSTS)
    else:
        await store._client.delete_database(store.database_name)
    with pytest.raises(DatabaseUnavailable, match="run `gql-api provision`"):
        await store.get(post.id)
    with pytest.raises(DatabaseUnavailable, match="run `gql-api provision`"):
        await store.update(post, changes_of(post))
    with pytest.raises(DatabaseUnavailable, match="run `gql-api provision`"):
        await store.delete(post)
    service = PostService(store, timeout=5)
    with pytest.raises(StoreUnavailableError):
        await service.get_post(post.id)


@pytest.mark.parametrize("missing", ["container", "database"])
async def test_a_fresh_client_on_a_missing_container_is_store_unavailable(
    cosmos_url: str, missing: str
) -> None:
    """A client that never saw the container reads its properties first; that read's 404
    (the container itself missing, or its database) is the store being unavailable too."""
    name = f"t{uuid.uuid4().hex}"
    store = CosmosStore(cosmos_url, key=COSMOS_KEY, database=name, verify_tls=False)
    await store.open()
    try:
        assert store._client is not None
        if missing == "container":  # the database alone: no containers in it
            await store._client.create_database_if_not_exists(name)
        post = record()
        with pytest.raises(DatabaseUnavailable, match="run `gql-api provision`"):
            await store.get(post.id)
        with pytest.raises(DatabaseUnavailable, match="run `gql-api provision`"):
            await store.update(post, changes_of(post))
        with pytest.raises(DatabaseUnavailable, match="run `gql-api provision`"):
            await store.delete(post)
    finally:
        await store.close()


def test_the_cosmos_store_needs_its_url() -> None:
    result = run_cli(["doctor"], cli_env(GQL_API_STORE="cosmos", GQL_API_DEV_SECRET="s" * 40))
    assert result.returncode == 2
    assert "GQL_API_COSMOS_URL is required" in result.stderr
