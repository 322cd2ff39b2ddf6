"""An outside attack on the live transports of a real `gql-api serve`, with tools this
project did not write.

1. hypothesis draws sequences of graphql-transport-ws messages, sent by the `websockets`
   client: the protocol's own (connection_init with and without a token, with bad
   tokens; subscribe with generated ids, documents and variables; complete, ping, pong),
   and malformed ones (not JSON, binary frames, fields of the wrong type, huge and
   duplicate ids, unknown types, subscribe before init, a second init, fragmented
   frames, a client's close). A model of the protocol
   (https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md) and of the README
   says what each one must bring: only the close codes the README names, always with a
   close frame; well-formed messages, about running operations only; every error with a
   documented ``extensions.code``. After each example /healthz answers and a fresh
   subscription (and every live one of the example) gets the event of a post created
   over HTTP. ``KNOWN`` holds the defects found, each as its least sequence.
2. hypothesis-graphql draws subscription documents from the schema, subscribed over
   WebSocket and sent as GraphQL over SSE: nothing 5xx, every error coded, never
   INTERNAL_SERVER_ERROR.
3. The server's log holds no traceback.

Each reaction is awaited at most ``DEADLINE`` seconds, so nothing hangs; the examples
are derandomized (the same every run). About 30 s when the server passes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Iterator
from typing import Any

import graphql
import httpx
import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, queries

from gql_api.schema.root import sdl
from tests.live_fuzz.frames import GOOD_QUERY, MISSING, Frame, opening, sequences, subscribe
from tests.live_fuzz.model import Expect
from tests.live_fuzz.server import (
    DEADLINE,
    FRESH,
    INIT_TIMEOUT,
    MAX_SUBSCRIPTIONS,
    PROBE_POST,
    PROTOCOL,
    Server,
    assert_no_traceback,
    log_size,
    start_server,
)
from tests.live_fuzz.session import (
    PING,
    Session,
    check_errors,
    connect,
    play,
    pong_back,
    probe,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with start_server(tmp_path_factory.mktemp("live-fuzz")) as running:
        yield running


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


# -- 1. sequences of graphql-transport-ws messages --------------------------------------

SEQUENCES = 60


def test_generated_message_sequences(server: Server) -> None:
    since = log_size(server)

    @fuzz_settings(SEQUENCES)
    @given(sequence=sequences(server))
    def run(sequence: list[Frame]) -> None:
        asyncio.run(play(server, sequence))

    run()
    assert_no_traceback(server, since)


def init(payload: Any = MISSING) -> Frame:
    return Frame("message", {"type": "connection_init", "payload": payload})


def stream(operation_id: Any) -> Frame:
    return subscribe(operation_id, {"query": FRESH}, "stream", True)


LIMITS = {"query": GOOD_QUERY}
# The defects the fuzz found, each as the least sequence that shows it (the fuzz itself
# reports the first it meets, shrunk): what the server should do is in each name.
KNOWN = {
    # A close reason is at most 123 bytes (RFC 6455 5.5): the server's "Subscriber for
    # <id> already exists" and "Invalid message type <type>" outgrow it, the close frame
    # cannot be sent, and the connection is dropped (the client sees 1006).
    "duplicate id of 100 characters: 4409": [init(), stream("x" * 100), stream("x" * 100)],
    "unknown type of 40 non-ASCII characters: 4400": [Frame("message", {"type": "\u65e5" * 40})],
    # A ping's payload is echoed in its pong by orjson, which refuses integers past 64
    # bits and lone surrogates: the ASGI app raises, uvicorn logs a traceback and drops
    # the connection without a close frame.
    "ping payload with an integer past 64 bits: pong": [
        Frame("message", {"type": "ping", "payload": {"n": 2**64}})
    ],
    "ping payload with a lone surrogate: pong or 4400": [
        Frame("message", {"type": "ping", "payload": {"s": "\ud800"}})
    ],
    # The same for an operation id: its answer's task dies ("Task exception was never
    # retrieved" in the log) and the client hears nothing of the operation.
    "subscribe id with a lone surrogate: answered or 4400": [
        init(),
        subscribe("\ud800", LIMITS, "finite"),
    ],
    # PyJWT encodes the token: UnicodeEncodeError, a traceback, a dropped connection.
    "token with a lone surrogate: 4403 or 4400": [init({"Authorization": "Bearer \ud800"})],
    # The protocol: a ping's or pong's payload is an object or null, a subscribe's an
    # object with a string query (variables and extensions objects, operationName a
    # string); any other message is invalid, "an immediate socket closure with 4400".
    # The server answers such a ping, ignores such a pong, and sends the subscribe an
    # error (BAD_REQUEST) instead.
    "ping payload that is no object: 4400": [Frame("message", {"type": "ping", "payload": "x"})],
    "pong payload that is no object: 4400": [Frame("message", {"type": "pong", "payload": 5})],
    "subscribe without a payload: 4400": [init(), subscribe("1", MISSING, "malformed")],
    "subscribe whose query is no string: 4400": [init(), subscribe("1", {"query": 5}, "malformed")],
    "subscribe whose variables are no object: 4400": [
        init(),
        subscribe("1", {"query": GOOD_QUERY, "variables": [1]}, "malformed"),
    ],
}


@pytest.mark.parametrize("name", list(KNOWN))
def test_known_sequences(server: Server, name: str) -> None:
    since = log_size(server)
    asyncio.run(play(server, KNOWN[name]))
    assert_no_traceback(server, since)


async def closed_with(ws: websockets.ClientConnection) -> int | None:
    """The code the server closes ``ws`` with (1006: dropped, without a close frame)."""
    async with asyncio.timeout(INIT_TIMEOUT + DEADLINE):
        await ws.wait_closed()
    return ws.close_code


def test_the_timeouts_and_the_subprotocol(server: Server) -> None:
    """No connection_init within GQL_API_SUBSCRIPTION_INIT_TIMEOUT: 4408; without the
    graphql-transport-ws subprotocol: 4406."""

    async def run() -> None:
        async with websockets.connect(server.ws_url, subprotocols=[PROTOCOL]) as ws:
            assert await closed_with(ws) == 4408
        async with websockets.connect(server.ws_url) as ws:
            assert await closed_with(ws) == 4406
        await probe(server, None)

    since = log_size(server)
    asyncio.run(run())
    assert_no_traceback(server, since)


# -- 2. subscription documents from the schema (hypothesis-graphql) ---------------------


def subscriptions(mode: Mode) -> st.SearchStrategy[str]:
    """Subscription operations of the schema. hypothesis-graphql 0.13 draws queries and
    mutations only: it draws them here from a schema whose query type is the
    Subscription type, printed as subscriptions."""
    schema = graphql.build_schema(sdl())
    assert schema.subscription_type is not None
    rooted = graphql.GraphQLSchema(query=schema.subscription_type)

    def as_subscription(document: graphql.DocumentNode) -> str:
        definitions = tuple(
            dataclasses.replace(d, operation=graphql.OperationType.SUBSCRIPTION)
            if isinstance(d, graphql.OperationDefinitionNode)
            else d
            for d in document.definitions
        )
        return graphql.print_ast(dataclasses.replace(document, definitions=definitions))

    return queries(rooted, print_ast=as_subscription, mode=mode)


DOCUMENTS = st.one_of(subscriptions(Mode.POSITIVE), subscriptions(Mode.NEGATIVE))
WS_EXAMPLES = 25
SSE_EXAMPLES = 150


async def subscribe_documents(server: Server, documents: list[str], signed_in: bool) -> None:
    """The documents subscribed at once on one connection: each is refused with a coded
    error, or runs (at most MAX_SUBSCRIPTIONS at once, then TOO_MANY_SUBSCRIPTIONS);
    nothing closes the connection, and no id is spoken of after its error."""
    async with asyncio.timeout(60):
        session = Session(await connect(server))
        try:
            session.model.inited = True
            await session.send(opening(server, "user" if signed_in else "anonymous")[0])
            await session.react(Expect(reply="connection_ack"))
            ids = [f"g{i}" for i in range(len(documents))]
            for operation_id, document in zip(ids, documents, strict=True):
                await session.send(subscribe(operation_id, {"query": document}, "finite"))
            refused: set[str] = set()
            quiet_until = time.monotonic() + 0.3  # errors come at once; 0.3 s without one
            while len(refused) < len(ids):
                try:
                    async with asyncio.timeout(max(0.0, quiet_until - time.monotonic())):
                        raw = await session.ws.recv()
                except TimeoutError:
                    break
                except websockets.ConnectionClosed as closed:
                    raise session.closed(closed, frozenset()) from None
                session.log.append(f"< {str(raw)[:300]}")
                if await pong_back(session.ws, raw):
                    continue
                message = json.loads(raw)
                operation_id = message.get("id")
                assert operation_id in ids and operation_id not in refused, session.fail("id")
                if message["type"] == "next":  # an event of a post made before: checked
                    session.model.streams[operation_id] = True
                    session.check(raw)
                    continue
                assert message["type"] == "error", session.fail("a subscription completed")
                session.model.pending = operation_id
                session.check(raw)
                refused.add(operation_id)
                quiet_until = time.monotonic() + 0.3
            running = len(ids) - len(refused)
            assert running <= MAX_SUBSCRIPTIONS, session.fail(f"{running} running at once")
            await session.send(PING)
            await session.react(Expect(reply="pong"))
            await probe(server, None)
        finally:
            await session.ws.close()


def test_generated_subscriptions_over_websocket(server: Server) -> None:
    since = log_size(server)

    @fuzz_settings(WS_EXAMPLES)
    @given(documents=st.lists(DOCUMENTS, min_size=1, max_size=6), signed_in=st.booleans())
    def run(documents: list[str], signed_in: bool) -> None:
        asyncio.run(subscribe_documents(server, documents, signed_in))

    run()
    assert_no_traceback(server, since)


async def sse_request(
    http: httpx.AsyncClient, document: str, method: str, token: str | None
) -> None:
    """A GraphQL-over-SSE request: a refusal is a coded JSON error under 500; a stream
    starts at once (a comment, or events whose errors are coded)."""
    headers = {"accept": "text/event-stream"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    if method == "GET":
        request = http.build_request("GET", "/graphql", params={"query": document}, headers=headers)
    else:
        request = http.build_request("POST", "/graphql", json={"query": document}, headers=headers)
    context = f"{method} {document[:500]!r}"
    async with asyncio.timeout(DEADLINE):
        response = await http.send(request, stream=True)
        try:
            assert response.status_code < 500, context
            if response.headers.get("content-type", "").startswith("text/event-stream"):
                assert response.status_code == 200, context
                buffer = b""
                async for chunk in response.aiter_bytes():
                    buffer += chunk
                    if b"\n\n" in buffer:
                        break
                for event in buffer.split(b"\n\n")[:-1]:
                    if event.startswith(b":"):
                        continue
                    lines = dict(line.split(b": ", 1) for line in event.split(b"\n"))
                    assert lines[b"event"] == b"next", context
                    payload = json.loads(lines[b"data"])
                    if "errors" in payload:
                        check_errors(payload["errors"], context)
            else:
                body = json.loads(await response.aread())
                check_errors(body.get("errors"), context)
        finally:
            await response.aclose()


async def sse_event(server: Server) -> None:
    """A fresh SSE subscription gets the event of a post created over HTTP."""
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=DEADLINE) as http,
        http.stream(
            "POST", "/graphql", json={"query": FRESH}, headers={"accept": "text/event-stream"}
        ) as response,
    ):
        assert response.status_code == 200
        chunks = response.aiter_bytes()
        assert (await anext(chunks)).startswith(b":")  # started: subscribed
        created = await http.post(
            "/graphql",
            json={"query": PROBE_POST},
            headers={"authorization": f"Bearer {server.token}"},
        )
        post_id = created.json()["data"]["createPost"]["id"]
        async with asyncio.timeout(DEADLINE):
            buffer = b""
            while post_id.encode() not in buffer:
                buffer += await anext(chunks)


def test_generated_subscriptions_over_sse(server: Server) -> None:
    since = log_size(server)

    async def run_one(document: str, method: str, signed_in: bool) -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=DEADLINE) as http:
            await sse_request(http, document, method, server.token if signed_in else None)
            health = await http.get("/healthz")
            assert health.status_code == 200

    @fuzz_settings(SSE_EXAMPLES)
    @given(document=DOCUMENTS, method=st.sampled_from(["POST", "GET"]), signed_in=st.booleans())
    def run(document: str, method: str, signed_in: bool) -> None:
        asyncio.run(run_one(document, method, signed_in))

    run()
    asyncio.run(sse_event(server))
    asyncio.run(probe(server, None))
    assert_no_traceback(server, since)


# -- 3. the log -------------------------------------------------------------------------


def test_the_server_log_has_no_traceback(server: Server) -> None:
    assert_no_traceback(server)
