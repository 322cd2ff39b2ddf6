"""graphql-transport-ws on /graphql (``http/graphql_ws.py``), through the real ASGI app and
Starlette's WebSocket test client: the protocol's messages and close codes, sign-in in
connection_init, the limits, and subscriptions delivered."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from gql_api.app import create_app
from gql_api.auth.dev import mint_dev_token
from gql_api.http.graphql_ws import ReadReceipts
from gql_api.stores.memory import MemoryStore
from tests.helpers import DEV_SECRET
from tests.http_layer.conftest import make_settings

PROTOCOL = "graphql-transport-ws"
EVENTS = "subscription { postEvents { kind postId post { content author { userId } } } }"
CREATE = 'mutation { createPost(input: {content: "hi", tags: ["news"]}) { id } }'
Session = Any  # starlette's WebSocketTestSession


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(**values: Any) -> TestClient:
        settings = make_settings(tmp_path, **values)
        client = TestClient(create_app(settings, store=MemoryStore())).__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


def token(tmp_path: Path, user: str = "alice") -> str:
    return mint_dev_token(make_settings(tmp_path), DEV_SECRET, user_id=user)


def connect(client: TestClient) -> Any:
    return client.websocket_connect("/graphql", subprotocols=[PROTOCOL])


def init(ws: Session, payload: dict[str, Any] | None = None) -> None:
    ws.send_json({"type": "connection_init", **({"payload": payload} if payload else {})})
    assert ws.receive_json() == {"type": "connection_ack"}


def closed_with(ws: Session) -> int:
    """The close code, after whatever messages came before it."""
    while True:
        try:
            ws.receive_json()
        except WebSocketDisconnect as closed:
            return closed.code


def test_the_handshake_picks_the_protocol(client: TestClient) -> None:
    with connect(client) as ws:
        assert ws.accepted_subprotocol == PROTOCOL
        init(ws)


def test_another_subprotocol_is_refused_with_4406(client: TestClient) -> None:
    with client.websocket_connect("/graphql", subprotocols=["graphql-ws"]) as ws:
        assert closed_with(ws) == 4406


def test_a_subscription_delivers_writes(client: TestClient, tmp_path: Path) -> None:
    with connect(client) as ws:
        init(ws)
        ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": EVENTS}})
        ws.send_json({"type": "ping"})  # answered once the subscription is under way
        assert ws.receive_json() == {"type": "pong"}
        created = client.post(
            "/graphql",
            json={"query": CREATE},
            headers={"authorization": f"Bearer {token(tmp_path)}"},
        ).json()["data"]["createPost"]
        message = ws.receive_json()
        assert message["id"] == "1" and message["type"] == "next"
        assert message["payload"]["data"]["postEvents"] == {
            "kind": "CREATED",
            "postId": created["id"],
            "post": {"content": "hi", "author": {"userId": "alice"}},
        }
        ws.send_json({"id": "1", "type": "complete"})
        ws.send_json({"type": "ping", "payload": {"n": 1}})
        assert ws.receive_json() == {"type": "pong", "payload": {"n": 1}}


def test_queries_and_mutations_answer_once_then_complete(
    client: TestClient, tmp_path: Path
) -> None:
    with connect(client) as ws:
        init(ws, {"Authorization": f"Bearer {token(tmp_path)}"})
        ws.send_json({"id": "m", "type": "subscribe", "payload": {"query": CREATE}})
        first = ws.receive_json()
        assert first["type"] == "next" and first["payload"]["data"]["createPost"]["id"]
        assert ws.receive_json() == {"id": "m", "type": "complete"}
        query = "{ viewer { userId } }"
        ws.send_json({"id": "q", "type": "subscribe", "payload": {"query": query}})
        assert ws.receive_json()["payload"] == {"data": {"viewer": {"userId": "alice"}}}


def test_sign_in_may_sit_under_headers(client: TestClient, tmp_path: Path) -> None:
    with connect(client) as ws:
        init(ws, {"headers": {"authorization": f"Bearer {token(tmp_path, 'bob')}"}})
        query = "{ viewer { userId } }"
        ws.send_json({"id": "q", "type": "subscribe", "payload": {"query": query}})
        assert ws.receive_json()["payload"] == {"data": {"viewer": {"userId": "bob"}}}


def test_a_tampered_token_is_refused_with_4403(client: TestClient, tmp_path: Path) -> None:
    good = token(tmp_path)
    tampered = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    with connect(client) as ws:
        ws.send_json(
            {"type": "connection_init", "payload": {"Authorization": f"Bearer {tampered}"}}
        )
        assert closed_with(ws) == 4403


@pytest.mark.parametrize(
    ("messages", "code"),
    [
        ([{"id": "1", "type": "subscribe", "payload": {"query": EVENTS}}], 4401),
        ([{"type": "connection_init"}, {"type": "connection_init"}], 4429),
        (["not json"], 4400),
        ([[1, 2]], 4400),
        ([{"type": "connection_init"}, {"type": "wat"}], 4400),
        ([{"type": "connection_init"}, {"type": "subscribe", "payload": {}}], 4400),
    ],
)
def test_protocol_errors_close_with_their_codes(
    client: TestClient, messages: list[Any], code: int
) -> None:
    with connect(client) as ws:
        for message in messages:
            ws.send_text(message if isinstance(message, str) else json.dumps(message))
        assert closed_with(ws) == code


def test_a_duplicate_id_closes_with_4409(client: TestClient) -> None:
    with connect(client) as ws:
        init(ws)
        for _ in range(2):
            ws.send_json({"id": "same", "type": "subscribe", "payload": {"query": EVENTS}})
        assert closed_with(ws) == 4409


def test_no_connection_init_in_time_closes_with_4408(
    make_client: Callable[..., TestClient],
) -> None:
    with connect(make_client(subscription_init_timeout=0.2)) as ws:
        assert closed_with(ws) == 4408


def test_an_idle_connection_is_closed(make_client: Callable[..., TestClient]) -> None:
    with connect(make_client(subscription_idle_timeout=1)) as ws:
        init(ws)
        assert closed_with(ws) == 1000


def test_subscriptions_per_connection_are_bounded(
    make_client: Callable[..., TestClient],
) -> None:
    with connect(make_client(max_subscriptions_per_connection=2)) as ws:
        init(ws)
        for n in range(3):
            ws.send_json({"id": str(n), "type": "subscribe", "payload": {"query": EVENTS}})
        refused = ws.receive_json()
        assert (refused["id"], refused["type"]) == ("2", "error")
        assert refused["payload"][0]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"
        ws.send_json({"id": "0", "type": "complete"})  # room for one more
        ws.send_json(
            {"id": "3", "type": "subscribe", "payload": {"query": "{ limits { maxPageSize } }"}}
        )
        assert ws.receive_json()["payload"]["data"]["limits"]
        assert ws.receive_json() == {"id": "3", "type": "complete"}
        ws.send_json({"id": "1", "type": "complete"})
        ws.send_json({"type": "ping"})
        assert ws.receive_json() == {"type": "pong"}


def test_connections_per_process_are_bounded(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_subscription_connections=1)
    with connect(client) as first:
        init(first)
        with connect(client) as second:
            assert closed_with(second) == 1013


def test_query_limits_hold_for_subscriptions(make_client: Callable[..., TestClient]) -> None:
    deep = "subscription { postEvents { post { author { userId } } } }"
    with connect(make_client(max_depth=3)) as ws:
        init(ws)
        ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": deep}})
        refused = ws.receive_json()
        assert refused["type"] == "error"
        assert refused["payload"][0]["extensions"]["code"] == "QUERY_TOO_DEEP"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"query": 'subscription { postEvents(tag: "a b") { kind } }'}, "BAD_USER_INPUT"),
        ({"query": "subscription { nope }"}, "GRAPHQL_VALIDATION_FAILED"),
    ],
)
def test_an_operation_that_cannot_start_gets_an_error_message(
    client: TestClient, payload: Any, code: str
) -> None:
    with connect(client) as ws:
        init(ws)
        ws.send_json({"id": "1", "type": "subscribe", "payload": payload})
        refused = ws.receive_json()
        assert (refused["id"], refused["type"]) == ("1", "error")
        assert refused["payload"][0]["extensions"]["code"] == code
        ws.send_json({"type": "ping"})  # the connection carries on
        assert ws.receive_json() == {"type": "pong"}


@pytest.mark.parametrize(
    "payload",
    [
        {"query": "subscription { postEvents { kind } }", "variables": [1]},
        "a string",
        None,
        {"query": 5},
        {"query": "subscription { postEvents { kind } }", "operationName": 1},
    ],
)
def test_a_subscribe_of_the_wrong_shape_closes_with_4400(client: TestClient, payload: Any) -> None:
    """The protocol's rule for a message not of its format: an immediate close, 4400."""
    with connect(client) as ws:
        init(ws)
        ws.send_json({"id": "1", "type": "subscribe", "payload": payload})
        assert closed_with(ws) == 4400


async def test_a_pong_shows_read_what_was_sent_before_its_ping() -> None:
    receipts = ReadReceipts(max_unread=100, grace=0.0)
    receipts.sent = 50
    first = receipts.ping()["payload"]["nonce"]
    receipts.sent = 120
    second = receipts.ping()["payload"]["nonce"]
    receipts.sent = 300
    assert receipts.unread == 300 and receipts.stalled()  # nothing answered, past the grace
    receipts.pong({"nonce": "forged"})  # not one of its pings: proves nothing past them all
    assert receipts.read == 120
    receipts.sent = 400
    third = receipts.ping()["payload"]["nonce"]
    assert len({first, second, third}) == 3
    receipts.pong(None)  # a client that echoes nothing answers its oldest ping
    assert receipts.read == 400 and not receipts.stalled()


async def test_a_burst_within_the_grace_is_no_stall() -> None:
    receipts = ReadReceipts(max_unread=100, grace=60.0)
    receipts.ping()
    receipts.sent = 10_000
    assert not receipts.stalled()  # its pong has not had the time to come back
    receipts.pong({"nonce": "x"})
    assert receipts.read == 0  # the mark of a ping sent before anything
