"""Subscriptions on AWS Lambda: the WebSocket API's handlers, driven with API Gateway's
WebSocket events, and the fan-out, driven with the stream records moto's DynamoDB Streams
holds of writes made through the DynamoDB store. moto runs in this process (one request
at a time, as tests/moto_serial.py) so that the test can play API Gateway's part: its
Management API backend is where the test reads what was posted to each connection, and
where the test says which connections are open (moto's own answers every id; API Gateway
answers 410 GoneException for a connection it does not hold)."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import threading
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
from moto.apigatewaymanagementapi.models import Connection, apigatewaymanagementapi_backends
from moto.core.exceptions import JsonRESTError
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

from gql_api.auth.dev import mint_dev_token
from gql_api.domain.records import PostChanges, PostRecord, ProfileRecord
from gql_api.execution.executor import Executor
from gql_api.settings import Settings
from gql_api.stores.dynamodb import DynamoDBStore
from gql_api.stores.dynamodb_connections import TTL_ATTRIBUTE, table_definition
from tests.servers import reset_moto

pytestmark = pytest.mark.servers

POSTS, CONNECTIONS = "gql-api-ws-posts", "gql-api-ws-connections"
NOW_MS = int(time.time() * 1000)  # when the test's connections connected
SECRET = "websocket-test-secret-0123456789abcdef"
EVENTS = "subscription Feed($tag: String, $author: ID) { postEvents(tag: $tag, authorId: $author) { kind postId version post { content author { userId } } } }"  # noqa: E501


class GoneException(JsonRESTError):
    code = 410

    def __init__(self, connection_id: str) -> None:
        super().__init__("GoneException", f"connection {connection_id} is gone")


class OpenConnections(dict[str, Connection]):
    """API Gateway's connections: posting to one it does not hold answers 410."""

    def __missing__(self, connection_id: str) -> Connection:
        raise GoneException(connection_id)


class ApiGateway:
    """The test's API Gateway: which connections are open, and what each received."""

    def __init__(self) -> None:
        self.backend = apigatewaymanagementapi_backends["123456789012"]["us-east-1"]
        self.backend.connections = OpenConnections()
        self.held: dict[str, Connection] = {}  # every connection opened, closed ones too

    def open(self, connection_id: str) -> None:
        # moto keys a connection by its id as the URL spells it (percent-encoded).
        connection = Connection()
        self.backend.connections[urllib.parse.quote(connection_id, safe="")] = connection
        self.held[connection_id] = connection

    def drop(self, connection_id: str) -> None:
        """The connection ends without a $disconnect (API Gateway's is best effort)."""
        del self.backend.connections[urllib.parse.quote(connection_id, safe="")]

    def is_open(self, connection_id: str) -> bool:
        return urllib.parse.quote(connection_id, safe="") in self.backend.connections

    def received(self, connection_id: str) -> list[dict[str, Any]]:
        """The messages posted to the connection (moto appends their bytes)."""
        raw, decoder, messages = self.held[connection_id].data.decode(), json.JSONDecoder(), []
        while raw:
            message, end = decoder.raw_decode(raw)
            messages.append(message)
            raw = raw[end:]
        return messages


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server("127.0.0.1", 0, app, False, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


@pytest.fixture
def aws(moto: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any, ApiGateway]]:
    """Fresh tables, the two entry points as a fresh execution environment loads them, and
    the test's API Gateway."""
    reset_moto(moto)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "GQL_API_STORE": "dynamodb",
        "GQL_API_DYNAMODB_ENDPOINT": moto,
        "GQL_API_DYNAMODB_TABLE": POSTS,
        "GQL_API_WEBSOCKET_TABLE": CONNECTIONS,
        "GQL_API_WEBSOCKET_ENDPOINT": moto,
        "GQL_API_DEV_SECRET": SECRET,
        "GQL_API_MAX_SUBSCRIPTIONS_PER_CONNECTION": "3",
    }.items():
        monkeypatch.setenv(name, value)
    asyncio.run(_provision(moto))
    client = boto3.client("dynamodb", endpoint_url=moto)
    client.create_table(**table_definition(CONNECTIONS))
    client.update_time_to_live(
        TableName=CONNECTIONS,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
    )
    import gql_api.lambda_fanout as fanout
    import gql_api.lambda_websocket as websocket

    websocket = importlib.reload(websocket)
    fanout = importlib.reload(fanout)
    yield websocket, fanout, ApiGateway()
    websocket.environment.run(websocket.environment.stop())
    websocket.environment.loop.close()


async def _provision(url: str) -> None:
    store = DynamoDBStore(POSTS, endpoint_url=url)
    await store.open()
    try:
        await store.provision()
    finally:
        await store.close()


def token(user_id: str) -> str:
    return mint_dev_token(Settings(dev_secret=SECRET), SECRET, user_id=user_id)


def request(route: str, connection_id: str, kind: str) -> dict[str, Any]:
    return {
        "routeKey": route,
        "eventType": kind,
        "messageDirection": "IN",
        "extendedRequestId": "Pf0aBGkJoAMFa0w=",
        "requestTime": datetime.now(UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "requestTimeEpoch": NOW_MS,
        "connectedAt": NOW_MS,
        "stage": "prod",
        "identity": {"sourceIp": "203.0.113.7", "userAgent": "Mozilla/5.0"},
        "requestId": f"req-{kind}-{connection_id}",
        "domainName": "abcdef1234.execute-api.us-east-1.amazonaws.com",
        "connectionId": connection_id,
        "apiId": "abcdef1234",
    }


def connect_event(connection_id: str, protocols: str | None) -> dict[str, Any]:
    headers = {
        "Host": "abcdef1234.execute-api.us-east-1.amazonaws.com",
        "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
        "X-Forwarded-For": "203.0.113.7",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
    }
    if protocols is not None:
        headers["Sec-WebSocket-Protocol"] = protocols
    return {
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "requestContext": request("$connect", connection_id, "CONNECT"),
        "isBase64Encoded": False,
    }


def message_event(connection_id: str, message: Any) -> dict[str, Any]:
    context = {**request("$default", connection_id, "MESSAGE"), "messageId": "Pf0aCc0vIAMCJ2g="}
    body = message if isinstance(message, str) else json.dumps(message)
    return {"requestContext": context, "body": body, "isBase64Encoded": False}


def disconnect_event(connection_id: str) -> dict[str, Any]:
    context = request("$disconnect", connection_id, "DISCONNECT")
    context |= {"disconnectStatusCode": 1000, "disconnectReason": "Client closed"}
    return {"headers": {"Host": context["domainName"]}, "requestContext": context}


def items() -> list[dict[str, Any]]:
    client = boto3.client("dynamodb", endpoint_url=os.environ["GQL_API_DYNAMODB_ENDPOINT"])
    found: list[dict[str, Any]] = client.scan(TableName=CONNECTIONS)["Items"]
    return found  # a test may scan; the code never does


def keys() -> set[tuple[str, str]]:
    return {(item["pk"]["S"], item["sk"]["S"]) for item in items()}


def signed_in(websocket: Any, gateway: ApiGateway, connection_id: str, user: str | None) -> None:
    """A connection opened and acknowledged (as ``user``, else anonymous)."""
    gateway.open(connection_id)
    answer = websocket.connect(connect_event(connection_id, "graphql-transport-ws"), None)
    assert answer["statusCode"] == 200
    payload = {"Authorization": f"Bearer {token(user)}"} if user else {}
    init = {"type": "connection_init", "payload": payload}
    websocket.default(message_event(connection_id, init), None)
    assert gateway.received(connection_id)[-1] == {"type": "connection_ack"}


def subscribe(websocket: Any, connection_id: str, operation_id: str, **variables: Any) -> None:
    payload = {"query": EVENTS, "variables": variables}
    message = {"id": operation_id, "type": "subscribe", "payload": payload}
    websocket.default(message_event(connection_id, message), None)


# --- the routes ------------------------------------------------------------------------


def test_connect_needs_the_subprotocol_and_echoes_it(aws: Any) -> None:
    websocket, _, _ = aws
    for refused in (None, "graphql-ws", "chat, graphql-transport"):
        answer = websocket.connect(connect_event("refused=", refused), None)
        assert answer["statusCode"] == 400, refused
    assert keys() == set()
    answer = websocket.connect(
        connect_event("L0SM9cOFvHcCIhw=", "graphql-ws, graphql-transport-ws"), None
    )
    assert answer == {
        "statusCode": 200,
        "headers": {"Sec-WebSocket-Protocol": "graphql-transport-ws"},
    }
    (item,) = items()
    assert (item["pk"]["S"], item["sk"]["S"]) == ("CONN#L0SM9cOFvHcCIhw=", "CONN")
    # API Gateway closes a connection after 2 hours: it expires a little after that.
    lifetime = int(item[TTL_ATTRIBUTE]["N"]) - NOW_MS // 1000
    assert 2 * 3600 < lifetime <= 2 * 3600 + 30 * 60


def test_connection_init_signs_in_once_and_ping_is_answered(aws: Any) -> None:
    websocket, _, gateway = aws
    signed_in(websocket, gateway, "ada=", "ada")
    (item,) = items()
    assert json.loads(item["viewer"]["S"])["userId"] == "ada"
    websocket.default(message_event("ada=", {"type": "ping", "payload": {"n": 1}}), None)
    assert gateway.received("ada=")[-1] == {"type": "pong", "payload": {"n": 1}}
    # A second connection_init is the protocol's 4429: the connection is deleted.
    websocket.default(message_event("ada=", {"type": "connection_init"}), None)
    assert not gateway.is_open("ada=")
    assert keys() == set()


def test_a_tampered_token_is_refused_without_a_word(aws: Any) -> None:
    websocket, _, gateway = aws
    gateway.open("mallory=")
    websocket.connect(connect_event("mallory=", "graphql-transport-ws"), None)
    forged = token("ada")[:-4] + ("AAAA" if not token("ada").endswith("AAAA") else "BBBB")
    init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {forged}"}}
    websocket.default(message_event("mallory=", init), None)
    # 4403 Forbidden cannot be sent through API Gateway: nothing is, the connection is deleted.
    assert gateway.received("mallory=") == []
    assert not gateway.is_open("mallory=")
    assert keys() == set()


@pytest.mark.parametrize(
    "message",
    [
        {"type": "ping", "payload": "not an object"},
        {"type": "pong", "payload": 5},
        {"id": "1", "type": "subscribe"},
        {"id": "1", "type": "subscribe", "payload": {"query": 5}},
    ],
)
def test_a_message_of_the_wrong_shape_closes(aws: Any, message: dict[str, Any]) -> None:
    websocket, _, gateway = aws
    signed_in(websocket, gateway, "odd=", None)
    websocket.default(message_event("odd=", message), None)  # 4400, as gql-api serve
    assert gateway.received("odd=") == [{"type": "connection_ack"}]
    assert not gateway.is_open("odd=")


def test_a_token_with_a_lone_surrogate_is_refused(aws: Any) -> None:
    websocket, _, gateway = aws
    gateway.open("odd=")
    websocket.connect(connect_event("odd=", "graphql-transport-ws"), None)
    init = {"type": "connection_init", "payload": {"Authorization": "Bearer \ud800"}}
    websocket.default(message_event("odd=", init), None)
    assert gateway.received("odd=") == [] and not gateway.is_open("odd=")


def test_a_response_over_api_gateways_quota_is_sent_as_an_error(aws: Any) -> None:
    websocket, _, _ = aws
    message_frame, limit = websocket.message_frame, websocket.MAX_POST_BYTES
    fits = message_frame("1", "next", b'{"data":{"x":"%s"}}' % (b"y" * 1000))
    assert json.loads(fits)["payload"]["data"]["x"] == "y" * 1000
    huge = message_frame("\ud800", "next", b'{"data":{"x":"%s"}}' % (b"y" * limit))
    assert len(huge) < 1000
    message = json.loads(huge)
    assert message["id"] == "\ud800" and message["payload"]["data"] is None
    assert message["payload"]["errors"][0]["extensions"]["code"] == "RESPONSE_TOO_LARGE"


def test_subscribing_before_connection_init_closes(aws: Any) -> None:
    websocket, _, gateway = aws
    gateway.open("early=")
    websocket.connect(connect_event("early=", "graphql-transport-ws"), None)
    subscribe(websocket, "early=", "s1")
    assert gateway.received("early=") == [] and not gateway.is_open("early=")
    assert keys() == set()


def test_subscriptions_are_filed_under_their_normalized_filter(aws: Any) -> None:
    websocket, _, gateway = aws
    signed_in(websocket, gateway, "c1=", "ada")
    subscribe(websocket, "c1=", "everything")
    # Fullwidth "AWS", spaced: NFKC, trimmed and lower-cased as for posts, it is "aws".
    subscribe(websocket, "c1=", "tagged", tag="  \uff21\uff37\uff33 ")
    subscribe(websocket, "c1=", "both", tag="Aws", author="bob")
    by_key = {(i["pk"]["S"], i["sk"]["S"]): i for i in items()}
    assert set(by_key) == {
        ("CONN#c1=", "CONN"),
        ("all", "c1=#everything"),
        ("tag#aws", "c1=#tagged"),
        ("tag#aws", "c1=#both"),
        ("CONN#c1=", "SUB#everything"),
        ("CONN#c1=", "SUB#tagged"),
        ("CONN#c1=", "SUB#both"),
    }
    assert by_key[("tag#aws", "c1=#both")]["authorId"] == {"S": "bob"}
    assert gateway.received("c1=") == [{"type": "connection_ack"}]  # subscribing says nothing
    subscribe(websocket, "c1=", "fourth")  # GQL_API_MAX_SUBSCRIPTIONS_PER_CONNECTION=3
    (refused,) = gateway.received("c1=")[1:]
    assert (refused["id"], refused["type"]) == ("fourth", "error")
    assert refused["payload"][0]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"


def test_bad_subscriptions_get_an_error_and_are_not_stored(aws: Any) -> None:
    websocket, _, gateway = aws
    signed_in(websocket, gateway, "c1=", None)
    subscribe(websocket, "c1=", "empty-tag", tag="   ")
    bad = {"id": "bad-doc", "type": "subscribe", "payload": {"query": "subscription { nope }"}}
    websocket.default(message_event("c1=", bad), None)
    empty_tag, bad_doc = gateway.received("c1=")[1:]
    assert empty_tag["id"] == "empty-tag" and empty_tag["type"] == "error"
    assert empty_tag["payload"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "tag must not be empty" in empty_tag["payload"][0]["message"]
    assert bad_doc["id"] == "bad-doc" and bad_doc["type"] == "error"
    assert bad_doc["payload"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert keys() == {("CONN#c1=", "CONN")}
    subscribe(websocket, "c1=", "twice")
    subscribe(websocket, "c1=", "twice")  # the protocol's 4409: the connection is deleted
    assert not gateway.is_open("c1=") and keys() == set()


def test_queries_and_mutations_are_answered_at_once(aws: Any) -> None:
    websocket, _, gateway = aws
    signed_in(websocket, gateway, "c1=", "ada")
    create = 'mutation { createPost(input: {content: "over the socket"}) { content authorId } }'
    websocket.default(
        message_event("c1=", {"id": "m", "type": "subscribe", "payload": {"query": create}}), None
    )
    assert gateway.received("c1=")[1:] == [
        {
            "id": "m",
            "type": "next",
            "payload": {"data": {"createPost": {"content": "over the socket", "authorId": "ada"}}},
        },
        {"id": "m", "type": "complete"},
    ]
    assert keys() == {("CONN#c1=", "CONN")}  # nothing to keep


def test_complete_and_disconnect_remove_what_they_end(aws: Any) -> None:
    websocket, _, gateway = aws
    signed_in(websocket, gateway, "c1=", None)
    signed_in(websocket, gateway, "c2=", None)
    for connection_id in ("c1=", "c2="):
        subscribe(websocket, connection_id, "a", tag="aws")
        subscribe(websocket, connection_id, "b")
    websocket.default(message_event("c1=", {"id": "a", "type": "complete"}), None)
    assert ("tag#aws", "c1=#a") not in keys() and ("CONN#c1=", "SUB#a") not in keys()
    assert ("all", "c1=#b") in keys()
    # Through the one handler of the three routes, as the template deploys it.
    assert websocket.handler(disconnect_event("c1="), None) == {"statusCode": 200}
    assert not any("c1=" in pk or "c1=" in sk for pk, sk in keys())
    assert ("all", "c2=#b") in keys() and ("tag#aws", "c2=#a") in keys()


# --- the fan-out -----------------------------------------------------------------------


async def _write_posts(url: str) -> None:
    """Two posts created, one edited, the other deleted, a profile stored: through the
    store, as the HTTP function writes them."""
    store = DynamoDBStore(POSTS, endpoint_url=url)
    await store.open()
    try:
        now = datetime.now(UTC).replace(microsecond=0)

        def post(post_id: str, author: str, tag: str) -> PostRecord:
            return PostRecord(
                id=post_id * 32,
                author_id=author,
                content=f"on {tag}",
                is_markdown=False,
                tags=(tag,),
                image_keys=(),
                created_at=now,
                updated_at=None,
                version=1,
            )

        on_aws = await store.create(post("a", "ada", "aws"))
        on_gcp = await store.create(post("b", "bob", "gcp"))
        edit = PostChanges("on aws, edited", False, ("aws",), (), now + timedelta(seconds=1))
        await store.update(on_aws, edit)
        await store.delete(on_gcp)
        await store.put_profile(ProfileRecord("ada", "Ada", now))
    finally:
        await store.close()


def stream_event(url: str) -> dict[str, Any]:
    """Every record of the posts table's stream, read through moto's DynamoDB Streams API,
    as Lambda's event source mapping hands them to the function."""
    arn = boto3.client("dynamodb", endpoint_url=url).describe_table(TableName=POSTS)["Table"][
        "LatestStreamArn"
    ]
    streams = boto3.client("dynamodbstreams", endpoint_url=url)
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records += streams.get_records(ShardIterator=iterator)["Records"]
    wrapped = []
    for record in records:
        data = dict(record["dynamodb"])
        when = data.get("ApproximateCreationDateTime")
        if isinstance(when, datetime):  # boto3 parses it; Lambda's event holds epoch seconds
            data["ApproximateCreationDateTime"] = int(when.timestamp())
        wrapped.append(
            {
                "eventID": record["eventID"],
                "eventName": record["eventName"],
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": data,
                "eventSourceARN": arn,
            }
        )
    return {"Records": wrapped}


class Context:
    aws_request_id = "fanout-1"


def test_the_fan_out_sends_each_subscriber_its_events_once_per_group(
    aws: Any, moto: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    websocket, fanout, gateway = aws
    executions: list[Any] = []
    original = Executor.execute_event

    async def counted(self: Executor, *args: Any, **kwargs: Any) -> dict[str, Any]:
        executions.append(args[1])  # the event
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(Executor, "execute_event", counted)
    for connection_id, user in [("anon1=", None), ("anon2=", None), ("gone=", None)]:
        signed_in(websocket, gateway, connection_id, user)
        subscribe(websocket, connection_id, "all")
    signed_in(websocket, gateway, "tagged=", None)
    subscribe(websocket, "tagged=", "t", tag="AWS")
    signed_in(websocket, gateway, "bobs=", "ada")
    subscribe(websocket, "bobs=", "b", author="bob")
    signed_in(websocket, gateway, "both=", None)
    subscribe(websocket, "both=", "x", tag="aws", author="bob")  # no post is both
    gateway.drop("gone=")  # its $disconnect never came

    asyncio.run(_write_posts(moto))
    event = stream_event(moto)
    assert len(event["Records"]) > 4  # tag entries and the profile too: not posts' records
    answer = fanout.fanout(event, Context())
    assert answer == {"changes": 4, "executions": 8, "sent": 12}

    def events(connection_id: str) -> list[tuple[str, str, int, str | None]]:
        found = []
        for message in gateway.received(connection_id)[1:]:
            assert message["type"] == "next", message
            data = message["payload"]["data"]["postEvents"]
            post = data["post"]
            found.append(
                (data["kind"], data["postId"][0], data["version"], post and post["content"])
            )
        return found

    everything = [
        ("CREATED", "a", 1, "on aws"),
        ("CREATED", "b", 1, "on gcp"),
        ("UPDATED", "a", 2, "on aws, edited"),
        ("DELETED", "b", 1, None),
    ]
    assert events("anon1=") == events("anon2=") == everything
    assert events("tagged=") == [everything[0], everything[2]]
    assert events("bobs=") == [everything[1], everything[3]]
    assert events("both=") == []
    first = gateway.received("anon1=")[1]
    assert first["id"] == "all"
    assert first["payload"]["data"]["postEvents"]["post"]["author"] == {"userId": "ada"}
    # One execution per change for each group: anon1, anon2 (and gone) share one.
    assert len(executions) == 8
    # The stale connection answered 410 once: it and its subscription are gone.
    assert gateway.received("gone=") == [{"type": "connection_ack"}]
    assert not any("gone=" in pk or "gone=" in sk for pk, sk in keys())
    assert ("all", "anon1=#all") in keys()


def test_a_document_no_longer_valid_ends_its_subscription(aws: Any, moto: str) -> None:
    websocket, fanout, gateway = aws
    signed_in(websocket, gateway, "old=", None)
    subscribe(websocket, "old=", "s")
    client = boto3.client("dynamodb", endpoint_url=moto)
    stale = "subscription { postEvents { removedField } }"  # as if stored by an older schema
    client.update_item(
        TableName=CONNECTIONS,
        Key={"pk": {"S": "all"}, "sk": {"S": "old=#s"}},
        UpdateExpression="SET #q = :q",
        ExpressionAttributeNames={"#q": "query"},
        ExpressionAttributeValues={":q": {"S": stale}},
    )
    asyncio.run(_write_posts(moto))
    fanout.fanout(stream_event(moto), Context())
    (error,) = gateway.received("old=")[1:]
    assert (error["id"], error["type"]) == ("s", "error")
    assert error["payload"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert keys() == {("CONN#old=", "CONN")}
