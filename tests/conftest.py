from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path

import httpx
import pytest

from gql_api.domain.service import PostService
from gql_api.stores.base import PostStore
from gql_api.stores.memory import MemoryStore
from gql_api.stores.sqlite import SqliteStore
from tests import servers
from tests.helpers import StepClock

# Every store joins this list; the contract suite runs against each one.
STORES = ["memory", "sqlite", "dynamodb", "firestore", "cosmos"]
# What needs a local server of its own: the stores and image providers that are one, and
# the fixtures that start one. Their tests are marked ``servers``; ``make check`` runs
# the rest (the fast tier), ``make test`` everything.
SERVER_PARAMS = {"dynamodb", "firestore", "cosmos", "s3", "azure", "gcs"}
SERVER_FIXTURES = {"moto_url", "cosmos_url", "firestore_host", "azurite_url", "gcs_url"}
# Modules slow by nature (a browser, packaging, fuzzing, live servers under load).
SLOW_MODULES = {
    "test_graphiql_browser",
    "test_package_lambda",
    "test_package_azure",
    "test_container_image",
    "test_fuzz",
    "test_schemathesis",
    "test_hardening",
    "test_server",
    "test_log_hygiene",
    "test_live_server",
    "test_live_instances",
    "test_live_fuzz",
    "test_cdn_cache",
    "test_trusted_clients",
    "test_properties_runs",
}


STARTED = pytest.StashKey[float]()


def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[STARTED] = time.monotonic()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failing test's report ends with the log of each local server it used: every one
    running, for a test of the local servers (marked servers or slow), else those it
    started itself."""
    report = yield
    if report.failed:
        uses_all = any(item.iter_markers("servers")) or any(item.iter_markers("slow"))
        since = 0.0 if uses_all else item.stash.get(STARTED, 0.0)
        report.sections.extend(servers.server_log_sections(since))
    return report


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        params = {str(v) for v in callspec.params.values()} if callspec is not None else set()
        if fixtures & SERVER_FIXTURES or params & SERVER_PARAMS:
            item.add_marker(pytest.mark.servers)
        module = getattr(getattr(item, "module", None), "__name__", "").rsplit(".", 1)[-1]
        if module in SLOW_MODULES or "reliability" in item.nodeid.split("/"):
            item.add_marker(pytest.mark.slow)


# The well-known key of Microsoft's emulator; the local server checks no key.
COSMOS_KEY = (
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="
)
DYNAMODB_TABLE = "gql-api-test"
FIRESTORE_PROJECT = "demo-gql-api"


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    # Credentials for the local server only; the endpoint is always the local one.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    with servers.moto_server() as url:
        yield url


@pytest.fixture(scope="session")
def cosmos_url() -> Iterator[str]:
    with servers.cosmos_server() as url:
        yield url


@pytest.fixture(scope="session")
def firestore_host() -> Iterator[str]:
    with servers.firestore_emulator() as host:
        os.environ["FIRESTORE_EMULATOR_HOST"] = host  # read by the SDK
        yield host
        del os.environ["FIRESTORE_EMULATOR_HOST"]


async def reset_firestore(host: str, project: str = FIRESTORE_PROJECT) -> None:
    url = f"http://{host}/emulator/v1/projects/{project}/databases/(default)/documents"
    async with httpx.AsyncClient() as http:
        (await http.delete(url)).raise_for_status()


async def open_store(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> PostStore:
    """A fresh, empty, provisioned, open store of this kind."""
    store: PostStore
    if name == "memory":
        store = MemoryStore()
    elif name == "sqlite":
        store = SqliteStore(tmp_path / "data" / "gql-api.db")
    elif name == "dynamodb":
        from gql_api.stores.dynamodb import DynamoDBStore

        url = request.getfixturevalue("moto_url")
        await asyncio.to_thread(servers.reset_moto, url)
        store = DynamoDBStore(DYNAMODB_TABLE, endpoint_url=url)
    elif name == "firestore":
        from gql_api.stores.firestore import FirestoreStore

        await reset_firestore(request.getfixturevalue("firestore_host"))
        store = FirestoreStore(FIRESTORE_PROJECT)
    elif name == "cosmos":
        from gql_api.stores.cosmos import CosmosStore

        url = request.getfixturevalue("cosmos_url")
        database = f"t{uuid.uuid4().hex}"  # a fresh database per test: nothing to reset
        store = CosmosStore(url, key=COSMOS_KEY, database=database, verify_tls=False)
    else:
        raise ValueError(name)
    await store.open()
    await store.provision()
    return store


async def closed_store(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> PostStore:
    """A fresh, empty, provisioned store, closed: for an app whose lifespan opens it."""
    store = await open_store(name, tmp_path, request)
    await store.close()
    return store


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A port that accepts connections and never answers: a database that hangs."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


@pytest.fixture(params=STORES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[PostStore]:
    opened = await open_store(request.param, tmp_path, request)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


@pytest.fixture
def service(store: PostStore, clock: StepClock) -> PostService:
    return PostService(store, timeout=5.0, clock=clock)
