"""HTTP caching (``http/caching.py``): an anonymous GET of a query without errors is
public with a strong ETag and answers 304 to it; everything else is private, no-store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from gql_api.app import create_app
from gql_api.http import caching
from gql_api.http.caching import PRIVATE, CachePolicy, matches
from gql_api.stores.memory import MemoryStore
from tests.http_layer.conftest import CREATE, gql, make_settings

FEED = "{ posts(first: 5) { edges { node { id content } } } }"
PUBLIC = "public, max-age=5, s-maxage=30"


async def get(client: httpx.AsyncClient, query: str, **headers: str) -> httpx.Response:
    return await client.get("/graphql", params={"query": query}, headers=headers)


async def test_an_anonymous_get_is_public_with_a_strong_etag(client: httpx.AsyncClient) -> None:
    answer = await get(client, FEED)
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == PUBLIC
    assert answer.headers["vary"].startswith("Accept, Authorization")
    etag = answer.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    again = await get(client, FEED)
    assert again.headers["etag"] == etag  # the same bytes, the same tag


@pytest.mark.parametrize(
    "if_none_match",
    ["{etag}", "W/{etag}", '"other", {etag}', "*"],
)
async def test_if_none_match_with_its_tag_answers_304_without_a_body(
    client: httpx.AsyncClient, if_none_match: str
) -> None:
    etag = (await get(client, FEED)).headers["etag"]
    answer = await get(client, FEED, **{"if-none-match": if_none_match.format(etag=etag)})
    assert answer.status_code == 304
    assert answer.content == b""
    assert answer.headers["etag"] == etag and answer.headers["cache-control"] == PUBLIC


async def test_a_write_changes_the_tag(
    client: httpx.AsyncClient, token: Callable[..., str]
) -> None:
    etag = (await get(client, FEED)).headers["etag"]
    await gql(client, CREATE, {"content": "new", "tags": []}, token=token())
    answer = await get(client, FEED, **{"if-none-match": etag})
    assert answer.status_code == 200 and answer.headers["etag"] != etag
    assert answer.json()["data"]["posts"]["edges"][0]["node"]["content"] == "new"


@pytest.mark.parametrize(
    "query",
    [
        "{ viewer { userId } }",
        "{ posts(first: 1) { edges { node { id } } } viewer { userId } }",
        "query { ...Me } fragment Me on Query { viewer { userId } }",
    ],
)
async def test_the_viewer_is_never_public(client: httpx.AsyncClient, query: str) -> None:
    answer = await get(client, query)
    assert answer.status_code == 200 and "errors" not in answer.json()
    assert answer.headers["cache-control"] == PRIVATE
    assert "etag" not in answer.headers


async def test_everything_else_is_private(
    client: httpx.AsyncClient, token: Callable[..., str]
) -> None:
    signed_in = await get(client, FEED, authorization=f"Bearer {token()}")
    posted = await gql(client, FEED)
    with_errors = await get(
        client, '{ post(id: "x") { id } posts(first: -1) { edges { cursor } } }'
    )
    mutation = await get(client, 'mutation { createPost(input: {content: "x"}) { id } }')
    refused = await get(client, "{ nope }")
    assert "errors" in with_errors.json() and mutation.status_code == 405
    for answer in (signed_in, posted, with_errors, mutation, refused):
        assert answer.headers["cache-control"] == PRIVATE, answer.request
        assert "etag" not in answer.headers
    stale = await get(client, FEED, authorization=f"Bearer {token()}", **{"if-none-match": "*"})
    assert stale.status_code == 200  # a private answer is never validated


@pytest.fixture
async def narrow_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(
        make_settings(tmp_path, cache_max_age=0, cache_s_maxage=60), store=MemoryStore()
    )
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


async def test_the_settings_and_the_hints_set_the_seconds(
    narrow_client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer = await get(narrow_client, FEED)
    assert answer.headers["cache-control"] == "public, max-age=0, s-maxage=60"
    monkeypatch.setitem(caching.CACHE_HINTS, "Limits", 7)  # a type: wherever it is selected
    limited = await get(narrow_client, "query L { limits { maxTags } }")
    assert limited.headers["cache-control"] == "public, max-age=0, s-maxage=7"


def test_the_policy_header() -> None:
    policy = CachePolicy(max_age=5, s_maxage=30)
    assert policy.header(1 << 31) == PUBLIC
    assert policy.header(10) == "public, max-age=5, s-maxage=10"
    assert policy.header(None) == PRIVATE
    assert policy.header(0) == PRIVATE
    assert CachePolicy(0, 0).header(100) == PRIVATE


@pytest.mark.parametrize(
    ("header", "matched"),
    [
        (None, False),
        ("", False),
        ('"a"', True),
        ('W/"a"', True),
        ('"b" , "a"', True),
        ('"b"', False),
    ],
)
def test_if_none_match_is_read_as_rfc_9110_says(header: Any, matched: bool) -> None:
    assert matches(header, '"a"') is matched
