"""GraphQL over SSE on /graphql (``http/sse.py``), distinct connections mode, through the
app behind a real uvicorn on 127.0.0.1: streams of next events then complete, sign-in by
header, refusals before the stream as JSON, keep-alive comments, and the limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from gql_api.app import create_app
from gql_api.auth.dev import mint_dev_token
from gql_api.stores.memory import MemoryStore
from tests.helpers import DEV_SECRET, free_port
from tests.http_layer.conftest import make_settings

EVENTS = 'subscription { postEvents(tag: "news") { kind postId post { content } } }'
CREATE = 'mutation { createPost(input: {content: "hi", tags: ["news"]}) { id } }'
STREAM = {"accept": "text/event-stream"}
Serve = Callable[..., Any]


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Serve]:
    servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(**values: Any) -> str:
        app = create_app(make_settings(tmp_path, **values), store=MemoryStore())
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
        task = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110 - uvicorn says so by this flag only
            await asyncio.sleep(0.01)
        servers.append((server, task))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, task in servers:
        server.should_exit = True
        await task


def token(tmp_path: Path) -> str:
    return mint_dev_token(make_settings(tmp_path), DEV_SECRET, user_id="alice")


async def events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, Any]]:
    """(event, data) of each event, ":" for a comment."""
    kind, data = "", ""
    async for line in lines:
        if line.startswith(":"):
            yield ":", None
        elif line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data:"):
            data = line[5:].strip()
        elif line == "" and kind:
            yield kind, orjson.loads(data) if data else None
            kind, data = "", ""


async def test_a_subscription_streams_writes(serve: Serve, tmp_path: Path) -> None:
    url = await serve()
    async with (
        httpx.AsyncClient(base_url=url, timeout=5) as http,
        http.stream("POST", "/graphql", json={"query": EVENTS}, headers=STREAM) as r,
    ):
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"] == "no-cache"
        stream = events(r.aiter_lines())
        assert await anext(stream) == (":", None)  # live before any write
        auth = {"authorization": f"Bearer {token(tmp_path)}"}
        await http.post("/graphql", json={"query": CREATE.replace("news", "x")}, headers=auth)
        created = await http.post("/graphql", json={"query": CREATE}, headers=auth)
        post_id = created.json()["data"]["createPost"]["id"]
        async with asyncio.timeout(2):
            kind, data = await anext(stream)
        assert kind == "next"
        assert data["data"]["postEvents"] == {
            "kind": "CREATED",
            "postId": post_id,
            "post": {"content": "hi"},
        }


async def test_a_query_streams_one_result_then_complete(serve: Serve) -> None:
    url = await serve()
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        response = await http.get(
            "/graphql", params={"query": "{ limits { maxTags } }"}, headers=STREAM
        )
        assert response.status_code == 200
        found = [e async for e in events(_lines(response.text))]
        assert found == [("next", {"data": {"limits": {"maxTags": 10}}}), ("complete", None)]


async def _lines(text: str) -> AsyncIterator[str]:
    for line in text.split("\n"):
        yield line


@pytest.mark.parametrize(
    ("request_args", "status", "code"),
    [
        ({"json": {"query": "subscription { nope }"}}, 200, "GRAPHQL_VALIDATION_FAILED"),
        ({"json": {"query": 'subscription { postEvents(tag: " ") { kind } }'}}, 200, None),
        ({"json": {"query": EVENTS}, "headers": {"authorization": "Bearer x.y.z"}}, 401, None),
        ({"content": b"{", "headers": {"content-type": "application/json"}}, 400, None),
    ],
)
async def test_refusals_before_the_stream_are_json(
    serve: Serve, request_args: dict[str, Any], status: int, code: str | None
) -> None:
    url = await serve()
    headers = {**STREAM, **request_args.pop("headers", {})}
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        response = await http.post("/graphql", headers=headers, **request_args)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == code or (code is None and error["extensions"]["code"])


async def test_a_mutation_over_get_is_refused(serve: Serve) -> None:
    url = await serve()
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        response = await http.get("/graphql", params={"query": CREATE}, headers=STREAM)
    assert response.status_code == 405


async def test_an_idle_stream_carries_keepalive_comments(serve: Serve) -> None:
    url = await serve(subscription_keepalive=1)
    async with (
        httpx.AsyncClient(base_url=url, timeout=5) as http,
        http.stream("POST", "/graphql", json={"query": EVENTS}, headers=STREAM) as r,
    ):
        stream = events(r.aiter_lines())
        async with asyncio.timeout(3.5):
            assert [await anext(stream) for _ in range(3)] == [(":", None)] * 3


async def test_connections_per_process_are_bounded(serve: Serve) -> None:
    url = await serve(max_subscription_connections=1)
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        async with http.stream("POST", "/graphql", json={"query": EVENTS}, headers=STREAM) as r:
            await anext(r.aiter_lines())
            refused = await http.post("/graphql", json={"query": EVENTS}, headers=STREAM)
            assert refused.status_code == 503
            assert refused.json()["errors"][0]["extensions"]["code"] == "TOO_MANY_CONNECTIONS"
        async with asyncio.timeout(2):  # the place is given back when the stream ends
            while True:
                again = await http.get(
                    "/graphql", params={"query": "{ limits { maxTags } }"}, headers=STREAM
                )
                if again.status_code == 200:
                    break
                await asyncio.sleep(0.05)


async def test_json_first_in_accept_is_answered_as_json(serve: Serve) -> None:
    url = await serve()
    accept = {"accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        response = await http.post(
            "/graphql", json={"query": "{ limits { maxTags } }"}, headers=accept
        )
    assert response.headers["content-type"].startswith("application/json")
