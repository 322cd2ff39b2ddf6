"""The AWS Lambda entry points of the WebSocket API (API Gateway), which serves the
subscriptions on Lambda: ``gql_api.lambda_websocket.connect`` (``$connect``),
``disconnect`` (``$disconnect``) and ``default`` (``$default``: every graphql-transport-ws
message), stateless. Connections and subscriptions live in the connections table
(``stores.dynamodb_connections``); the fan-out function (``gql_api.lambda_fanout``) reads
the posts table's stream and sends each subscriber its events.

Messages go back through API Gateway's Management API (``PostToConnection``). API Gateway
cannot close a connection with a code of the protocol (4400, 4401, 4403, 4409, 4429): where
``gql-api serve`` would close with one, the connection is deleted (``DeleteConnection``),
which the client sees as a close without that code, and nothing else is sent. Every
operation gets the checks it gets over HTTP (``LiveOperations.start``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
import uuid
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar, cast

import orjson

from gql_api.app import Runtime, create_app
from gql_api.auth.identity import Identity
from gql_api.domain.live_feed import EventFilter, LiveFeed, Subscriber
from gql_api.execution.executor import request_error
from gql_api.execution.subscriptions import encoded
from gql_api.http.graphql_ws import (
    BAD_REQUEST,
    DUPLICATE_ID,
    FORBIDDEN,
    INTERNAL,
    PROTOCOL,
    TOO_MANY_INITS,
    UNAUTHORIZED,
    ProtocolClose,
    authorization_of,
    checked_subscribe,
    echo_payload,
    operation_id_of,
)
from gql_api.http.live import LiveLimits, LiveOperations, refusal
from gql_api.http.params import HttpError, check_query, check_shapes
from gql_api.logs import configure_logging
from gql_api.settings import SettingsError, load_settings
from gql_api.stores import Preparable, create_store
from gql_api.stores.base import ChangeFeed
from gql_api.stores.dynamodb_connections import ConnectionsTable, Subscription

log = logging.getLogger(__name__)

LOCAL_REGION = "us-east-1"  # for a local server when no region is configured
SEND_CONCURRENCY = 50  # PostToConnection calls under way at once (and pooled connections)
MAX_POST_BYTES = 128 * 1024  # what one PostToConnection may carry: API Gateway's quota
TOO_LARGE = orjson.dumps(
    {
        "errors": [
            request_error(
                "the event's response is over the 128 KB a WebSocket message may carry "
                "through API Gateway: select fewer fields",
                "RESPONSE_TOO_LARGE",
            )
        ],
        "data": None,
    }
)
T = TypeVar("T")

# The filters the subscriptions being started asked for (see _Filters).
_CHOSEN: contextvars.ContextVar[list[EventFilter]] = contextvars.ContextVar("chosen filters")


class _Filters(LiveFeed):
    """The live feed's stand-in on Lambda, where no process follows the stream (the fan-out
    function reads it): subscribing only reports the filter, normalized and checked by
    ``PostService.follow_posts`` as for ``gql-api serve``."""

    def __init__(self) -> None:
        super().__init__(cast(ChangeFeed, None), queue_size=1, timeout=1.0)

    async def subscribe(self, event_filter: EventFilter) -> Subscriber:
        chosen = _CHOSEN.get(None)
        if chosen is not None:
            chosen.append(event_filter)
        return Subscriber(self, event_filter, 1)


class Environment:
    """What an execution environment builds at init and keeps across invocations: the app's
    runtime (store, executor, authenticator), one event loop, one DynamoDB client for the
    connections table and one Management API client per endpoint."""

    def __init__(self) -> None:
        settings = load_settings()
        configure_logging(settings.log_level)
        if settings.websocket_table is None:
            raise SettingsError(
                "GQL_API_WEBSOCKET_TABLE is required by the WebSocket API's functions "
                "(the connections table of deploy/aws/template.yaml)"
            )
        store = create_store(settings)
        if isinstance(store, Preparable):
            store.prepare()
        app = create_app(settings, store=store, subscriptions=False)
        self.settings = settings
        self.runtime: Runtime = app.state.runtime
        self.runtime.endpoint.service.live = _Filters()
        limits = LiveLimits(max_subscriptions=settings.max_subscriptions_per_connection)
        self.operations = LiveOperations(self.runtime.endpoint, limits)
        self.loop = asyncio.new_event_loop()
        self.table: ConnectionsTable | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._clients: dict[str, Any] = {}  # Management API endpoint -> its client
        self._session: Any = None
        self._options: dict[str, Any] = {}

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run one invocation's work on the environment's loop (its clients are bound to it)."""
        return self.loop.run_until_complete(work)

    async def start(self) -> ConnectionsTable:
        if self.table is not None:
            return self.table
        import aioboto3
        from aiobotocore.config import AioConfig

        await self.runtime.start()
        session = aioboto3.Session()
        endpoint = self.settings.dynamodb_endpoint
        timeout = self.settings.store_timeout
        config = AioConfig(
            connect_timeout=min(timeout, 3.0),
            read_timeout=timeout,
            retries={"mode": "standard", "total_max_attempts": 3},
            max_pool_connections=SEND_CONCURRENCY,
        )
        region = session.region_name or (LOCAL_REGION if endpoint else None)
        self._session, self._options = session, {"region_name": region, "config": config}
        stack = contextlib.AsyncExitStack()
        client = await stack.enter_async_context(
            session.client("dynamodb", endpoint_url=endpoint, **self._options)
        )
        self._stack = stack
        self.table = ConnectionsTable(client, cast(str, self.settings.websocket_table))
        return self.table

    async def stop(self) -> None:
        """Close every client (tests; Lambda ends an environment without telling it)."""
        stack, self._stack, self.table = self._stack, None, None
        self._clients.clear()
        if stack is not None:
            await stack.aclose()
        await self.runtime.stop()

    def endpoint_of(self, request: Mapping[str, Any]) -> str:
        """The Management API of the connection's API: the setting, else the event's."""
        given = self.settings.websocket_endpoint
        if given is not None:
            return given.rstrip("/")
        return f"https://{request['domainName']}/{request['stage']}"

    async def _client(self, endpoint: str) -> Any:
        client = self._clients.get(endpoint)
        if client is None:
            assert self._stack is not None, "start() first"
            client = await self._stack.enter_async_context(
                self._session.client(
                    "apigatewaymanagementapi", endpoint_url=endpoint, **self._options
                )
            )
            self._clients[endpoint] = client
        return client

    async def send(self, endpoint: str, connection_id: str, data: bytes) -> bool:
        """Post ``data`` to the connection; False when it is gone (410)."""
        client = await self._client(endpoint)
        try:
            await client.post_to_connection(ConnectionId=connection_id, Data=data)
        except client.exceptions.GoneException:
            return False
        return True

    async def hang_up(self, endpoint: str, connection_id: str) -> None:
        client = await self._client(endpoint)
        with contextlib.suppress(client.exceptions.GoneException):
            await client.delete_connection(ConnectionId=connection_id)

    async def forget(self, connection_id: str) -> None:
        """A connection found gone: delete it and its subscriptions."""
        table = await self.start()
        removed = await table.remove(connection_id)
        log.info("websocket %s: gone, %d subscriptions removed", connection_id, removed)


def viewer_document(viewer: Identity | None) -> dict[str, Any] | None:
    if viewer is None:
        return None
    return {"userId": viewer.user_id, "isAdmin": viewer.is_admin, "nickname": viewer.nickname}


def identity_of(document: Mapping[str, Any] | None) -> Identity | None:
    if not document:
        return None
    return Identity(document["userId"], bool(document["isAdmin"]), document.get("nickname"))


class _Message:
    """One graphql-transport-ws message of a connection, handled as ``gql-api serve``
    handles it (``http.graphql_ws``), its state read from and written to the table."""

    def __init__(self, env: Environment, table: ConnectionsTable, event: Mapping[str, Any]):
        request = event["requestContext"]
        self.env, self.table = env, table
        self.connection_id: str = request["connectionId"]
        self.endpoint = env.endpoint_of(request)
        self.request_id = str(request.get("requestId") or uuid.uuid4().hex)
        self.address = (request.get("identity") or {}).get("sourceIp")

    def parse(self, event: Mapping[str, Any]) -> dict[str, Any]:
        raw = event.get("body")
        if event.get("isBase64Encoded") or not isinstance(raw, str):
            raise ProtocolClose(BAD_REQUEST, "Invalid message: send text frames of JSON")
        if len(raw) > self.env.settings.max_body_bytes:
            raise ProtocolClose(BAD_REQUEST, "Invalid message: too large")
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ProtocolClose(BAD_REQUEST, "Invalid message: not JSON") from None
        if not isinstance(parsed, dict) or not isinstance(parsed.get("type"), str):
            raise ProtocolClose(BAD_REQUEST, "Invalid message: an object with a type")
        return parsed

    async def handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "connection_init":
            await self._init(message.get("payload"))
        elif kind == "ping":
            await self.send({"type": "pong", **echo_payload(message)})
        elif kind == "pong":
            echo_payload(message)  # checked: an object or none
        elif kind == "subscribe":
            await self._subscribe(checked_subscribe(message))
        elif kind == "complete":
            await self.table.unsubscribe(self.connection_id, operation_id_of(message))
        else:
            raise ProtocolClose(BAD_REQUEST, f"Invalid message type {kind[:40]!r}")

    async def _init(self, payload: Any) -> None:
        if payload is not None and not isinstance(payload, dict):
            raise ProtocolClose(BAD_REQUEST, "Invalid message: connection_init payload")
        connection = await self.table.get(self.connection_id)
        if connection is None:
            raise ProtocolClose(BAD_REQUEST, "Unknown connection")
        if connection.acknowledged:
            raise ProtocolClose(TOO_MANY_INITS, "Too many initialisation requests")
        header = authorization_of(payload or {})
        endpoint = self.env.runtime.endpoint
        try:
            viewer = await endpoint.verify_authorization(header, self.request_id)
        except (HttpError, UnicodeError):  # UnicodeError: a lone surrogate in the token
            raise ProtocolClose(FORBIDDEN, "Forbidden") from None
        # Conditional: of two connection_init racing on two invocations, one is acknowledged.
        if not await self.table.acknowledge(self.connection_id, viewer_document(viewer)):
            raise ProtocolClose(TOO_MANY_INITS, "Too many initialisation requests")
        await self.send({"type": "connection_ack"})

    async def _subscribe(self, message: dict[str, Any]) -> None:
        connection = await self.table.get(self.connection_id)
        if connection is None or not connection.acknowledged:
            raise ProtocolClose(UNAUTHORIZED, "Unauthorized")
        operation_id = operation_id_of(message)
        most = self.env.operations.limits.max_subscriptions
        if await self.table.subscription_count(self.connection_id) >= most:
            text = f"at most {most} subscriptions at once on one connection: complete one first"
            errors = [request_error(text, "TOO_MANY_SUBSCRIPTIONS")]
            await self.send({"id": operation_id, "type": "error", "payload": errors})
            return
        viewer = identity_of(connection.viewer)
        chosen: list[EventFilter] = []
        reset = _CHOSEN.set(chosen)
        request_id = f"{self.request_id}:{operation_id[:64]}"
        try:
            params = self._params(message.get("payload"))
            started = await self.env.operations.start(params, viewer, self.address, request_id)
        except (HttpError, Exception) as error:  # noqa: BLE001 - refusal() re-raises the rest
            try:
                errors = refusal(error)
            except Exception:
                log.exception("websocket %s: operation failed to start", request_id)
                raise ProtocolClose(INTERNAL, "Internal server error") from None
            await self.send({"id": operation_id, "type": "error", "payload": errors})
            return
        finally:
            _CHOSEN.reset(reset)
        if isinstance(started, bytes):  # a query or a mutation: its one response
            await self.send_next(operation_id, started)
            await self.send({"id": operation_id, "type": "complete"})
            return
        await started.aclose()  # the stand-in's subscriber: nothing follows it
        if len(chosen) != 1:  # a subscription field that follows no posts: none is known
            log.error("websocket %s: the subscription chose %d filters", request_id, len(chosen))
            raise ProtocolClose(INTERNAL, "Internal server error")
        (event_filter,) = chosen
        subscription = Subscription(
            connection_id=self.connection_id,
            subscription_id=operation_id,
            query=params["query"],
            operation_name=params.get("operationName"),
            variables=params.get("variables"),
            viewer=connection.viewer,
            expires_at=connection.expires_at,
            tag=event_filter.tag,
            author_id=event_filter.author_id,
        )
        if not await self.table.subscribe(subscription):
            raise ProtocolClose(DUPLICATE_ID, f"Subscriber for {operation_id[:100]} already exists")
        log.info(
            "websocket %s: subscribed %s (tag %s, author %s)",
            self.connection_id,
            operation_id[:64],
            event_filter.tag,
            event_filter.author_id,
        )

    def _params(self, payload: Any) -> dict[str, Any]:
        """The operation's parameters, its query text resolved (a persisted query's hash):
        what the fan-out runs again for each event."""
        if not isinstance(payload, dict):
            raise HttpError(400, "BAD_REQUEST", "the operation must be a JSON object")
        params = self.env.runtime.endpoint.resolve_document(check_shapes(dict(payload)))
        params.pop("extensions", None)  # resolved: the hash has done its work
        params.pop("documentId", None)
        return check_query(params)

    async def send_next(self, operation_id: str, response: bytes) -> None:
        await self._post(message_frame(operation_id, "next", response))

    async def send(self, message: dict[str, Any]) -> None:
        await self._post(encoded(message))

    async def _post(self, data: bytes) -> None:
        if not await self.env.send(self.endpoint, self.connection_id, data):
            await self.env.forget(self.connection_id)

    async def close(self, closed: ProtocolClose) -> None:
        log.info(
            "websocket %s: closed (graphql-transport-ws would close with %d %s; API Gateway "
            "sends no such code)",
            self.connection_id,
            closed.code,
            closed.reason,
        )
        await self.env.hang_up(self.endpoint, self.connection_id)
        await self.table.remove(self.connection_id)


def _subprotocols(event: Mapping[str, Any]) -> list[str]:
    """The subprotocols the client offered (``Sec-WebSocket-Protocol``, in any case)."""
    offered: list[str] = []
    for holder in (event.get("multiValueHeaders") or {}, event.get("headers") or {}):
        for name, value in holder.items():
            if name.lower() == "sec-websocket-protocol":
                for line in value if isinstance(value, list) else [value]:
                    offered += [part.strip() for part in str(line).split(",")]
    return offered


async def _connect(event: Mapping[str, Any]) -> dict[str, Any]:
    request = event["requestContext"]
    if PROTOCOL not in _subprotocols(event):
        # Refused at the handshake: API Gateway answers the upgrade with this status, where
        # gql-api serve accepts and closes with 4406 (API Gateway sends no close code).
        log.info("websocket %s: refused, no %s subprotocol", request["connectionId"], PROTOCOL)
        return {"statusCode": 400, "body": f"Subprotocol not acceptable: offer {PROTOCOL}"}
    table = await environment.start()
    connected_at = int(request.get("connectedAt") or time.time() * 1000)
    await table.connect(request["connectionId"], connected_at)
    # API Gateway completes the handshake only with the chosen subprotocol echoed.
    return {"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": PROTOCOL}}


async def _disconnect(event: Mapping[str, Any]) -> dict[str, Any]:
    connection_id = event["requestContext"]["connectionId"]
    table = await environment.start()
    removed = await table.remove(connection_id)
    log.info("websocket %s: disconnected, %d subscriptions removed", connection_id, removed)
    return {"statusCode": 200}


async def _default(event: Mapping[str, Any]) -> dict[str, Any]:
    table = await environment.start()
    message = _Message(environment, table, event)
    try:
        await message.handle(message.parse(event))
    except ProtocolClose as closed:
        await message.close(closed)
    return {"statusCode": 200}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The three routes in one function (the template's): one role, and the environments
    ``$connect`` warmed serve the connection's messages."""
    route = event["requestContext"]["routeKey"]
    work = {"$connect": _connect, "$disconnect": _disconnect}.get(route, _default)
    return environment.run(work(event))


def connect(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return environment.run(_connect(event))


def disconnect(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return environment.run(_disconnect(event))


def default(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return environment.run(_default(event))


# Built at init (a bad setting fails the first invocation loudly); opened on first use.
environment = Environment()


def message_frame(operation_id: str, kind: str, payload: bytes) -> bytes:
    """A message about an operation; a ``next`` over API Gateway's quota carries an error."""
    frame = b'{"id":%s,"type":%s,"payload":%s}' % (encoded(operation_id), encoded(kind), payload)
    if len(frame) > MAX_POST_BYTES and kind == "next":
        return message_frame(operation_id, kind, TOO_LARGE)
    return frame
