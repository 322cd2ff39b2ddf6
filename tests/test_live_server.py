"""Subscriptions on a real `gql-api serve`, driven by the `websockets` library's client: a
tampered token is refused, a WebSocket outlives the head timeout, SIGTERM closes every
connection cleanly, and a client that reads nothing is closed while one that reads (the
graphql-ws npm client) gets far more than the unread bound."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from gql_api.auth.dev import mint_dev_token
from gql_api.settings import Settings
from tests import servers
from tests.helpers import DEV_SECRET, NO_RATE_LIMITS, cli_env
from tests.test_live_instances import EVENTS as TAGGED_EVENTS
from tests.test_live_instances import Subscriber

EVENTS = "subscription { postEvents { kind postId post { content } } }"
PROTOCOL = websockets.Subprotocol("graphql-transport-ws")
UNREAD_BOUND = 65_536  # bytes a client may be sent without showing it read them
BIG_POSTS = 30  # of 9,000 characters each: four times the bound
CREATE = "mutation($c: String!, $t: [String!]) { createPost(input: {content: $c, tags: $t}) {id} }"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    env = cli_env(
        GQL_API_DEV_SECRET=DEV_SECRET,
        GQL_API_SQLITE_PATH=str(tmp_path / "gql-api.db"),
        GQL_API_SUBSCRIPTION_QUEUE="50",
        GQL_API_SUBSCRIPTION_KEEPALIVE="1",
        GQL_API_HEAD_TIMEOUT="1",
        GQL_API_SUBSCRIPTION_MAX_UNREAD_BYTES=str(UNREAD_BOUND),
        **NO_RATE_LIMITS,
    )
    with servers.gql_api_server(env) as (url, process):
        yield url, process


def token(tmp_path: Path, user: str = "alice") -> str:
    settings = Settings(dev_secret=DEV_SECRET, sqlite_path=tmp_path / "x.db")
    return mint_dev_token(settings, DEV_SECRET, user_id=user)


async def subscribe(url: str, query: str = EVENTS, **options: Any) -> websockets.ClientConnection:
    ws = await websockets.connect(
        url.replace("http://", "ws://") + "/graphql", subprotocols=[PROTOCOL], **options
    )
    await ws.send(json.dumps({"type": "connection_init"}))
    assert json.loads(await ws.recv()) == {"type": "connection_ack"}
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
    return ws


async def next_event(ws: websockets.ClientConnection) -> dict[str, Any]:
    while True:
        async with asyncio.timeout(5):
            message = json.loads(await ws.recv())
        if message["type"] == "next":
            event: dict[str, Any] = message["payload"]["data"]["postEvents"]
            return event


async def test_a_tampered_token_is_refused(server: tuple[str, Any], tmp_path: Path) -> None:
    url, _ = server
    good = token(tmp_path)
    header, payload, signature = good.split(".")
    claims = json.loads(_unb64(payload))
    claims["sub"] = "mallory"
    forged = ".".join([header, _b64(json.dumps(claims).encode()), signature])
    async with websockets.connect(
        url.replace("http://", "ws://") + "/graphql", subprotocols=[PROTOCOL]
    ) as ws:
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {forged}"}}
        await ws.send(json.dumps(init))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    async with httpx.AsyncClient(timeout=10) as http:  # and over SSE, 401
        refused = await http.post(
            f"{url}/graphql",
            json={"query": EVENTS},
            headers={"accept": "text/event-stream", "authorization": f"Bearer {forged}"},
        )
    assert refused.status_code == 401
    assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_websocket_outlives_the_head_timeout(server: tuple[str, Any]) -> None:
    url, _ = server
    ws = await subscribe(url)
    await asyncio.sleep(2.5)  # GQL_API_HEAD_TIMEOUT is 1 s: HTTP's bound, not the socket's
    await ws.send(json.dumps({"type": "ping"}))
    while (message := json.loads(await ws.recv()))["type"] != "pong":
        assert message["type"] == "ping"  # the server's keep-alive, every second
    await ws.close()


async def test_sigterm_closes_every_connection_cleanly(server: tuple[str, Any]) -> None:
    url, process = server
    connections = [await subscribe(url) for _ in range(3)]
    process.send_signal(signal.SIGTERM)
    for ws in connections:
        async with asyncio.timeout(10):
            await ws.wait_closed()
        # 1012 (service restart) from uvicorn's shutdown, or 1001 from the app's: a clean
        # close a client reconnects after, never a dropped connection (1006).
        assert ws.close_code in (1001, 1012), ws.close_code
    await asyncio.to_thread(process.wait, 15)  # and the process ends (test_shutdown: how)


async def read_until_closed(ws: websockets.ClientConnection) -> tuple[int, int | None]:
    """Everything the server sent, to its close frame: the events and the close code."""
    events = 0
    async with asyncio.timeout(20):  # pings would keep a connection left open reading on
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                message = json.loads(await ws.recv())
                events += message["type"] == "next"
    return events, ws.close_code


async def create_big_posts(url: str, tmp_path: Path, pause: float = 0.0) -> None:
    headers = {"Authorization": f"Bearer {token(tmp_path)}"}
    async with httpx.AsyncClient(timeout=10, headers=headers) as http:
        for number in range(BIG_POSTS):
            variables = {"c": f"{number} " + "x" * 9000, "t": ["Live"]}
            body = {"query": CREATE, "variables": variables}
            answer = await http.post(f"{url}/graphql", json=body)
            assert "errors" not in answer.json(), answer.json()
            await asyncio.sleep(pause)


async def test_a_client_that_reads_nothing_is_closed_once_over_the_unread_bound(
    server: tuple[str, Any], tmp_path: Path
) -> None:
    url, _ = server
    # A small receive buffer and a one-message queue: the client takes almost nothing
    # off the socket, and never answers the server's pings.
    raw = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])))
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    ws = await subscribe(url, sock=raw, max_queue=1)
    keeping_up = Subscriber("ws", url, None, BIG_POSTS)  # graphql-ws, reading all along
    try:
        await asyncio.sleep(1)  # both subscriptions are in place before the writes
        # Over 3 s: past the grace (GQL_API_SUBSCRIPTION_KEEPALIVE) a ping has for its pong.
        await create_big_posts(url, tmp_path, pause=0.1)
        events, code = await read_until_closed(ws)
        assert code == 1013
        assert 0 < events < BIG_POSTS  # it got what fit in the bound, then was closed
        # The other subscriber carried on: every post, in order.
        contents = [
            (await asyncio.to_thread(keeping_up.next_event, 10))["post"]["content"]
            for _ in range(BIG_POSTS)
        ]
        assert [int(content.split()[0]) for content in contents] == list(range(BIG_POSTS))
    finally:
        keeping_up.stop()


def test_a_client_that_answers_pings_gets_more_than_the_unread_bound(
    server: tuple[str, Any], tmp_path: Path
) -> None:
    url, _ = server
    subscriber = Subscriber("ws", url, None, BIG_POSTS)
    try:
        time.sleep(1)  # graphql-ws connects and subscribes
        asyncio.run(create_big_posts(url, tmp_path, pause=0.1))  # 3 s: past the grace
        contents = [subscriber.next_event(timeout=10)["post"]["content"] for _ in range(BIG_POSTS)]
    finally:
        subscriber.stop()
    assert [int(content.split()[0]) for content in contents] == list(range(BIG_POSTS))
    assert TAGGED_EVENTS.startswith('subscription { postEvents(tag: "Live")')


def _unb64(part: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _b64(raw: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def test_an_sse_client_that_reads_nothing_gives_its_place_back(tmp_path: Path) -> None:
    env = cli_env(
        GQL_API_DEV_SECRET=DEV_SECRET,
        GQL_API_SQLITE_PATH=str(tmp_path / "gql-api.db"),
        GQL_API_SUBSCRIPTION_KEEPALIVE="1",
        GQL_API_MAX_SUBSCRIPTION_CONNECTIONS="1",
        **NO_RATE_LIMITS,
    )
    with servers.gql_api_server(env) as (url, _):
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        raw.connect(("127.0.0.1", int(url.rsplit(":", 1)[1])))
        body = json.dumps({"query": EVENTS}).encode()
        head = (
            "POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        raw.sendall(head.encode() + body)
        assert raw.recv(12) == b"HTTP/1.1 200"  # its stream is open; it reads no more
        async with httpx.AsyncClient(timeout=10) as http:
            sse = {"accept": "text/event-stream"}
            full = await http.post(f"{url}/graphql", json={"query": EVENTS}, headers=sse)
            assert full.status_code == 503  # the one place is the stalled client's
            # Until the kernel's buffers fill, its sends go through; then one blocks.
            posts = 0
            while posts < 1500:
                await create_big_posts(url, tmp_path)
                posts += BIG_POSTS
                await asyncio.sleep(1.5)  # past GQL_API_SUBSCRIPTION_KEEPALIVE: a send blocked
                async with http.stream(
                    "POST", f"{url}/graphql", json={"query": EVENTS}, headers=sse
                ) as again:
                    if again.status_code == 200:
                        break
            assert again.status_code == 200, posts
        raw.close()
