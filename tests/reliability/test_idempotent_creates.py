"""createPost retried across a timeout stores each post once (idempotency keys).

The store's answer to a create is lost (the write is stored, then the call outlives
the store timeout: the client gets STORE_UNAVAILABLE), or the write itself never
happens; either way the client retries with the same idempotencyKey until it gets a
post. Afterwards the feed holds each post exactly once, under the id the retry answered.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gql_api.app import create_app
from gql_api.domain.records import PostRecord
from gql_api.stores.base import PostStore
from tests.conftest import STORES, closed_store
from tests.reliability.conftest import error_codes, gql, settings_for, token_for

POSTS = 9
STORE_TIMEOUT = 1.0
SCENARIO_SECONDS = 120
CREATE = """
mutation Create($content: String!, $key: String) {
  createPost(input: {content: $content, tags: ["retry"]}, idempotencyKey: $key) { id content }
}"""
FEED = """
query Feed($after: String) {
  posts(first: 100, after: $after, tag: "retry") {
    nodes { id content } pageInfo { hasNextPage endCursor }
  }
}"""


class FlakyCreates:
    """A real store whose next creates fail as a network would: ``lost`` ones are stored
    and then never answered, ``dropped`` ones hang before anything is stored."""

    def __init__(self, inner: PostStore) -> None:
        self.inner = inner
        self.name = inner.name
        self.lost = 0
        self.dropped = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def create(self, post: PostRecord) -> PostRecord:
        if self.dropped:
            self.dropped -= 1
            await asyncio.sleep(3600)  # cut by the store timeout: nothing was stored
        stored = await self.inner.create(post)
        if self.lost:
            self.lost -= 1
            await asyncio.sleep(3600)  # cut by the store timeout: stored, not answered
        return stored


@pytest.fixture(params=STORES)
async def flaky(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[FlakyCreates, httpx.AsyncClient]]:
    store = FlakyCreates(await closed_store(request.param, tmp_path, request))
    settings = settings_for(tmp_path, store_timeout=STORE_TIMEOUT)
    app = create_app(settings, store=store)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield store, client


async def feed(client: httpx.AsyncClient) -> list[dict[str, str]]:
    nodes: list[dict[str, str]] = []
    after = None
    while True:
        page = (await gql(client, FEED, {"after": after}))["data"]["posts"]
        nodes += page["nodes"]
        if not page["pageInfo"]["hasNextPage"]:
            return nodes
        after = page["pageInfo"]["endCursor"]


async def test_retried_creates_store_each_post_once(
    flaky: tuple[FlakyCreates, httpx.AsyncClient],
) -> None:
    store, client = flaky
    token = token_for("retrier")
    answered: dict[str, str] = {}
    failures = 0
    async with asyncio.timeout(SCENARIO_SECONDS):
        for number in range(POSTS):
            content, key = f"post {number}", str(uuid.uuid4())
            if number % 3 == 0:
                store.lost = 1
            elif number % 3 == 1:
                store.dropped = 1
            for _ in range(3):
                body = await gql(client, CREATE, {"content": content, "key": key}, token=token)
                if body.get("data") and body["data"]["createPost"]:
                    answered[content] = body["data"]["createPost"]["id"]
                    break
                assert error_codes(body) == ["STORE_UNAVAILABLE"], body
                failures += 1
    assert failures == POSTS - POSTS // 3  # every lost or dropped answer was seen
    stored = await feed(client)
    assert sorted(n["content"] for n in stored) == sorted(answered)  # each exactly once
    assert {n["content"]: n["id"] for n in stored} == answered


async def test_a_retry_running_beside_the_first_answers_the_same_post(
    flaky: tuple[FlakyCreates, httpx.AsyncClient],
) -> None:
    _, client = flaky
    token = token_for("impatient")
    variables = {"content": "only once", "key": "same-key-0001"}
    async with asyncio.timeout(SCENARIO_SECONDS):
        bodies = await asyncio.gather(
            *(gql(client, CREATE, variables, token=token) for _ in range(6))
        )
    ids = {body["data"]["createPost"]["id"] for body in bodies}
    assert len(ids) == 1, bodies
    assert [n["id"] for n in await feed(client)] == list(ids)
