from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gql_api.service import PostService
from gql_api.stores.base import PostStore
from gql_api.stores.memory import MemoryStore
from gql_api.stores.sqlite import SqliteStore
from tests.helpers import StepClock

# Every store joins this list; the contract suite runs against each one.
STORES = ["memory", "sqlite"]


async def open_store(name: str, tmp_path: Path) -> PostStore:
    store: PostStore
    if name == "memory":
        store = MemoryStore()
    elif name == "sqlite":
        store = SqliteStore(tmp_path / "data" / "gql-api.db")
    else:
        raise ValueError(name)
    await store.open()
    return store


@pytest.fixture(params=STORES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[PostStore]:
    opened = await open_store(request.param, tmp_path)
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
