"""What only the Firestore store promises: round trips, indexes, provision, doctor, outages."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from gql_api.domain.records import PostChanges
from gql_api.domain.service import NewPost, PostEdit, PostService
from gql_api.errors import StoreUnavailableError
from gql_api.stores.base import VersionConflict
from gql_api.stores.firestore import FirestoreStore, indexes_document
from tests.conftest import FIRESTORE_PROJECT, reset_firestore
from tests.helpers import ALICE, BOB, StepClock, cli_env, run_cli

ROOT = Path(__file__).resolve().parent.parent
RPCS = (
    "batch_get_documents",
    "run_query",
    "commit",
    "begin_transaction",
    "rollback",
    "get_document",
)


@pytest.fixture
async def firestore(firestore_host: str) -> AsyncIterator[FirestoreStore]:
    await reset_firestore(firestore_host)
    store = FirestoreStore(FIRESTORE_PROJECT)
    await store.open()
    yield store
    await store.close()


class RoundTrips:
    """Counts the RPCs the SDK sends, by method, at its generated (GAPIC) client."""

    def __init__(self, store: FirestoreStore) -> None:
        assert store._client is not None
        api = store._client._firestore_api
        self.calls: Counter[str] = Counter()
        for name in RPCS:
            setattr(api, name, self._counted(name, getattr(api, name)))

    def _counted(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return method(*args, **kwargs)

        return call

    def take(self) -> Counter[str]:
        taken, self.calls = self.calls, Counter()
        return taken


async def test_round_trips_of_each_operation(firestore: FirestoreStore) -> None:
    service = PostService(firestore, timeout=5, clock=StepClock())
    trips = RoundTrips(firestore)
    post = await service.create_post(ALICE, NewPost(content="x", tags=["a"]))
    assert trips.take() == {"commit": 1}
    await service.get_post(post.id)
    assert trips.take() == {"batch_get_documents": 1}
    for _ in range(3):
        await service.create_post(BOB, NewPost(content="y", tags=["a"]))
    trips.take()
    for filters in ({}, {"author_id": "bob"}, {"tag": "a"}, {"tag": "a", "author_id": "bob"}):
        page = await service.list_posts(first=2, **filters)
        assert trips.take() == {"run_query": 1}, filters
        await service.list_posts(first=2, after=page.end_cursor, **filters)
        assert trips.take() == {"run_query": 1}, filters
    await service.update_post(ALICE, post.id, PostEdit(content="z"))
    assert trips.take() == {"batch_get_documents": 1, "commit": 1}
    await service.delete_post(ALICE, post.id)
    assert trips.take() == {"batch_get_documents": 1, "commit": 1}
    await service.update_profile(ALICE, "Alice")
    assert trips.take() == {"commit": 1}
    await service.load_profiles(["alice", "bob"])
    assert trips.take() == {"batch_get_documents": 1}


def test_committed_indexes_file_is_what_the_queries_need() -> None:
    committed = json.loads((ROOT / "firestore.indexes.json").read_text())
    assert committed == indexes_document()
    shapes = [[f["fieldPath"] for f in index["fields"]] for index in committed["indexes"]]
    assert shapes == [
        ["createdAt", "id"],
        ["authorId", "createdAt", "id"],
        ["tags", "createdAt", "id"],
        ["tags", "authorId", "createdAt", "id"],
    ]


async def test_inspect_runs_every_query_shape(firestore: FirestoreStore) -> None:
    checks = await firestore.inspect()
    assert [ok for ok, _ in checks] == [True] * 4
    assert [line.split(" (")[0] for _, line in checks] == [
        "index feed",
        "index author",
        "index tag",
        "index tagAuthor",
    ]


async def test_provision_on_the_emulator_says_no_index_is_needed(
    firestore: FirestoreStore,
) -> None:
    assert "emulator" in await firestore.provision()


async def test_a_server_that_never_answers_is_store_unavailable_in_time(
    silent_port: int, firestore_host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{silent_port}")
    store = FirestoreStore(FIRESTORE_PROJECT, timeout=1)
    await store.open()
    try:
        service = PostService(store, timeout=1)
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError):
            await service.get_post("0" * 32)  # an id the store is asked about
        with pytest.raises(StoreUnavailableError):
            await service.create_post(ALICE, NewPost(content="x"))
        assert time.monotonic() - started < 5
    finally:
        await store.close()


async def test_provision_and_doctor_on_the_emulator(firestore_host: str) -> None:
    env = cli_env(
        CLOUD_PROVIDER="gcp",  # the earlier service's setting selects this store
        GQL_API_FIRESTORE_PROJECT="demo-gql-api-cli",
        GQL_API_FIRESTORE_PREFIX="cli_",
        GQL_API_DEV_SECRET="s" * 40,
        FIRESTORE_EMULATOR_HOST=firestore_host,
    )
    provision = await asyncio.to_thread(run_cli, ["provision"], env)
    assert provision.returncode == 0, provision.stderr
    assert provision.stdout.startswith("provision firestore: emulator")
    doctor = await asyncio.to_thread(run_cli, ["doctor"], env)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    lines = doctor.stdout.splitlines()
    assert sum(line.startswith("ok    index ") for line in lines) == 4
    assert "ok    store firestore: read, conditional write, page and delete work" in lines


async def test_a_write_from_a_stale_read_loses_with_the_current_version(
    firestore: FirestoreStore,
) -> None:
    service = PostService(firestore, timeout=5, clock=StepClock())
    post = await service.create_post(ALICE, NewPost(content="v1"))
    stale = await firestore.get(post.id)
    assert stale is not None and stale.etag is not None
    await service.update_post(ALICE, post.id, PostEdit(content="v2"))
    changes = PostChanges("lost", False, (), (), StepClock()())
    with pytest.raises(VersionConflict) as raised:
        await firestore.update(stale, changes)
    assert raised.value.current_version == 2
