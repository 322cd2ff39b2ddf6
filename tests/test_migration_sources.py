"""The legacy sources of `gql-api migrate` against the local servers: every row once, in
one stable order, resumable after any page, counted, never written; an overlapping store
refused; an outage is ``SourceUnavailable``, promptly."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from gql_api.ops.migration.sources import (
    Kind,
    LegacyPage,
    LegacySource,
    SourceUnavailable,
    decode_position,
    encode_position,
)
from gql_api.settings import Settings
from tests import legacy_seed
from tests.conftest import COSMOS_KEY

SOURCES = ["dynamodb", "firestore", "cosmos"]
FIRESTORE_PROJECT = "demo-legacy"  # not the store tests' demo-gql-api
POSTS = legacy_seed.legacy_posts(250, seed=7)
PROFILES = legacy_seed.legacy_profiles()


@dataclass
class Legacy:
    source: LegacySource  # open, over the seeded data
    dump: Callable[[], Awaitable[list[dict[str, Any]]]]
    same: Settings  # a store writing where the source is
    elsewhere: Settings  # a store of the same cloud writing elsewhere


async def _reset_firestore(host: str) -> None:
    url = f"http://{host}/emulator/v1/projects/{FIRESTORE_PROJECT}/databases/(default)/documents"
    async with httpx.AsyncClient() as http:
        (await http.delete(url)).raise_for_status()


async def _legacy(name: str, request: pytest.FixtureRequest, posts: list[dict[str, Any]]) -> Legacy:
    source: LegacySource
    if name == "dynamodb":
        from gql_api.ops.migration.dynamodb_source import DynamoDBSource

        url, table = request.getfixturevalue("moto_url"), f"legacy-{uuid.uuid4().hex}"
        await legacy_seed.seed_dynamodb(url, table, posts, PROFILES)
        source = DynamoDBSource(table, endpoint_url=url)
        return Legacy(
            source,
            lambda: legacy_seed.dump_dynamodb(url, table),
            Settings(
                store="dynamodb",
                dynamodb_table=table,
                dynamodb_endpoint=url.replace("127.0.0.1", "localhost") + "/",
            ),
            Settings(store="dynamodb", dynamodb_table="gql-api", dynamodb_endpoint=url),
        )
    if name == "firestore":
        from gql_api.ops.migration.firestore_source import FirestoreSource

        await _reset_firestore(request.getfixturevalue("firestore_host"))
        await legacy_seed.seed_firestore(FIRESTORE_PROJECT, posts, PROFILES)
        source = FirestoreSource(FIRESTORE_PROJECT)
        return Legacy(
            source,
            lambda: legacy_seed.dump_firestore(FIRESTORE_PROJECT),
            Settings(store="firestore", firestore_project=FIRESTORE_PROJECT),
            Settings(
                store="firestore", firestore_project=FIRESTORE_PROJECT, firestore_prefix="gql_"
            ),
        )
    from gql_api.ops.migration.cosmos_source import CosmosSource

    url, database = request.getfixturevalue("cosmos_url"), f"legacy{uuid.uuid4().hex}"
    await legacy_seed.seed_cosmos(url, COSMOS_KEY, database, posts, PROFILES)
    source = CosmosSource(url, key=COSMOS_KEY, database=database, verify_tls=False)
    return Legacy(
        source,
        lambda: legacy_seed.dump_cosmos(url, COSMOS_KEY, database),
        Settings(store="cosmos", cosmos_url=url + "/", cosmos_database=database),
        Settings(store="cosmos", cosmos_url=url, cosmos_database="gql-api"),
    )


@pytest.fixture(params=SOURCES)
async def legacy(request: pytest.FixtureRequest) -> AsyncIterator[Legacy]:
    seeded = await _legacy(request.param, request, POSTS)
    await seeded.source.open()
    try:
        yield seeded
    finally:
        await seeded.source.close()


async def _read(source: LegacySource, kind: Kind, after: str | None, size: int) -> list[LegacyPage]:
    """Every page from ``after`` on."""
    pages = [await source.page(kind, after, size)]
    while (position := pages[-1].position) is not None:
        pages.append(await source.page(kind, position, size))
    return pages


def _key(kind: Kind, row: dict[str, Any]) -> str:
    return str(row["postId"] if kind is Kind.POSTS else row["userId"])


async def test_reads_every_row_once_in_a_stable_order_resumably_and_never_writes(
    legacy: Legacy,
) -> None:
    source = legacy.source
    before = await legacy.dump()

    pages = await _read(source, Kind.POSTS, None, 100)
    assert [len(p.rows) for p in pages] == [100, 100, 50]
    assert [p.position is None for p in pages] == [False, False, True]
    rows = [row for page in pages for row in page.rows]
    assert sorted(_key(Kind.POSTS, r.data) for r in rows) == sorted(p["postId"] for p in POSTS)
    assert len({r.ref for r in rows}) == len(rows)
    assert [r.ref for r in rows] == sorted(r.ref for r in rows)  # this layout's key order
    by_id = {p["postId"]: p for p in POSTS}
    for row in rows:  # as stored: plain values, no keys or system fields of the layout
        assert {k: v for k, v in row.data.items() if k != "id"} == by_id[row.data["postId"]]
    assert await source.count(Kind.POSTS) == len(POSTS)

    # The same order again, and a resumed read gives exactly the rest.
    assert [r.ref for p in await _read(source, Kind.POSTS, None, 100) for r in p.rows] == [
        r.ref for r in rows
    ]
    rest = await _read(source, Kind.POSTS, pages[0].position, 100)
    assert [r.ref for p in rest for r in p.rows] == [r.ref for r in rows[100:]]
    assert [
        r.ref for p in await _read(source, Kind.POSTS, pages[1].position, 7) for r in p.rows
    ] == [r.ref for r in rows[200:]]

    profiles = await _read(source, Kind.PROFILES, None, 4)
    assert [len(p.rows) for p in profiles] == [4, 4, 2]
    assert sorted(_key(Kind.PROFILES, r.data) for p in profiles for r in p.rows) == sorted(
        p["userId"] for p in PROFILES
    )
    assert await source.count(Kind.PROFILES) == len(PROFILES)
    exact = await _read(source, Kind.PROFILES, None, len(PROFILES))
    assert [(len(p.rows), p.position) for p in exact] == [(len(PROFILES), None)]

    assert await legacy.dump() == before  # reads only


async def test_refuses_a_position_it_did_not_make(legacy: Legacy) -> None:
    source = legacy.source
    first = (await _read(source, Kind.POSTS, None, 100))[0].position
    assert first is not None
    bogus = [
        "",
        "nonsense",
        "posts.",
        "posts.!!!",
        first + "x",
        first.replace("posts.", "profiles."),
    ]
    for position in bogus:
        with pytest.raises(ValueError, match=r"position|document id|item id"):
            await _read(source, Kind.POSTS, position, 10)


async def test_overlaps_names_the_place_and_the_setting(legacy: Legacy) -> None:
    reason = legacy.source.overlaps(legacy.same)
    assert reason is not None
    assert {
        "dynamodb": "GQL_API_DYNAMODB_TABLE",
        "firestore": "GQL_API_FIRESTORE_PREFIX",
        "cosmos": "GQL_API_COSMOS_DATABASE",
    }[legacy.source.name] in reason
    assert legacy.source.overlaps(legacy.elsewhere) is None
    assert legacy.source.overlaps(Settings(store="sqlite")) is None
    assert legacy.source.location


@pytest.mark.parametrize("name", SOURCES)
async def test_an_empty_source_gives_one_empty_last_page(
    name: str, request: pytest.FixtureRequest
) -> None:
    empty = await _legacy(name, request, [])
    await empty.source.open()
    try:
        assert await _read(empty.source, Kind.POSTS, None, 100) == [LegacyPage([], None)]
        assert await empty.source.count(Kind.POSTS) == 0
    finally:
        await empty.source.close()


async def test_values_come_back_plain(request: pytest.FixtureRequest) -> None:
    """DynamoDB's numbers and sets, Firestore's timestamps: as plain Python values."""
    from gql_api.ops.migration.dynamodb_source import DynamoDBSource
    from gql_api.ops.migration.firestore_source import FirestoreSource

    odd = {**POSTS[0], "tags": {"b", "a"}, "score": Decimal("2"), "ratio": Decimal("0.5")}
    url, table = request.getfixturevalue("moto_url"), f"legacy-{uuid.uuid4().hex}"
    await legacy_seed.seed_dynamodb(url, table, [odd, {"content": "no id, no time"}], [])
    dynamodb = DynamoDBSource(table, endpoint_url=url)
    await dynamodb.open()
    try:
        (page,) = await _read(dynamodb, Kind.POSTS, None, 10)
    finally:
        await dynamodb.close()
    assert [r.ref for r in page.rows][1] == "missing#1"
    data = page.rows[0].data
    assert (data["tags"], data["score"], data["ratio"]) == (["a", "b"], 2, Decimal("0.5"))
    assert type(data["score"]) is int

    await _reset_firestore(request.getfixturevalue("firestore_host"))
    moment = datetime.fromisoformat("2024-05-01T10:00:00.5+00:00")
    await legacy_seed.seed_firestore(FIRESTORE_PROJECT, [{"content": "x", "createdAt": moment}], [])
    firestore = FirestoreSource(FIRESTORE_PROJECT)
    await firestore.open()
    try:
        (page,) = await _read(firestore, Kind.POSTS, None, 10)
    finally:
        await firestore.close()
    (row,) = page.rows
    assert "postId" not in row.data  # as stored: the rules decide
    assert row.data["createdAt"] == moment and row.data["createdAt"].tzinfo is not None


def test_positions_round_trip_any_key() -> None:
    for key in ["2024-01-01T00:00:00Z#abc", "ü/ #?=+", "x" * 300]:
        assert decode_position(Kind.POSTS, encode_position(Kind.POSTS, key)) == key


def _unreachable(name: str, port: int) -> LegacySource:
    url = f"http://127.0.0.1:{port}"
    if name == "dynamodb":
        from gql_api.ops.migration.dynamodb_source import DynamoDBSource

        return DynamoDBSource("legacy", endpoint_url=url, timeout=0.5, max_attempts=0)
    if name == "firestore":
        from gql_api.ops.migration.firestore_source import FirestoreSource

        return FirestoreSource(FIRESTORE_PROJECT, timeout=1.0)
    from gql_api.ops.migration.cosmos_source import CosmosSource

    return CosmosSource(
        url, key=COSMOS_KEY, database="legacy", verify_tls=False, timeout=1.0, retry_total=0
    )


@pytest.mark.parametrize("name", SOURCES)
@pytest.mark.parametrize("hangs", [False, True], ids=["refused", "silent"])
async def test_a_server_that_is_not_there_is_unavailable_promptly(
    name: str, hangs: bool, silent_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers import free_port

    port = silent_port if hangs else free_port()  # nobody listens on a free port
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    # The Cosmos SDK retries its first call (reading the account) 3 times with growing
    # waits, whatever the client's timeouts: ~10 s against a silent port.
    monkeypatch.setenv("AZURE_COSMOS_HEALTH_CHECK_MAX_RETRIES", "0")
    source = _unreachable(name, port)
    await source.open()
    started = time.monotonic()
    try:
        with pytest.raises(SourceUnavailable):
            await _read(source, Kind.POSTS, None, 10)
        with pytest.raises(SourceUnavailable):
            await source.count(Kind.PROFILES)
    finally:
        await source.close()
    assert time.monotonic() - started < 6
