"""GraphQL over WebSocket on ``/graphql``: the graphql-transport-ws protocol (the
graphql-ws library's; Apollo Client's GraphQLWsLink and urql speak it).

A connection signs in once, in ``connection_init`` (``{"Authorization": "Bearer ..."}``,
also under ``headers``), validated as the HTTP header is; without it, it is anonymous.
Every operation then gets the same limits as over HTTP. The close codes are the
protocol's; beyond it, a subscriber whose queue filled, or that has not shown it read
what it was sent, is closed with 1013 (try again later), a connection idle for too long
with 1000; when the server stops, uvicorn closes every connection with 1012 (service
restart), and any left with 1001.

A client shows what it read by answering the server's pings: each ping carries a nonce
(graphql-ws echoes it in its pong), and a pong proves every byte sent before its ping
read. The kernel would otherwise take megabytes for a client that reads nothing before
a send ever blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import uuid
from collections import deque
from collections.abc import Mapping
from typing import Any

from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from gql_api.auth.identity import Identity
from gql_api.domain.live_feed import SubscriberTooSlow
from gql_api.execution.subscriptions import EventStream, encoded
from gql_api.http.live import LiveOperations, TooManyConnections, first_of, refusal
from gql_api.http.params import HttpError
from gql_api.http.rate_limits import client_address

log = logging.getLogger(__name__)

PROTOCOL = "graphql-transport-ws"
# The protocol's close codes, and the WebSocket standard's.
BAD_REQUEST, UNAUTHORIZED, FORBIDDEN, NOT_ACCEPTABLE = 4400, 4401, 4403, 4406
INIT_TIMEOUT, DUPLICATE_ID, TOO_MANY_INITS, INTERNAL = 4408, 4409, 4429, 4500
NORMAL, GOING_AWAY, TRY_AGAIN_LATER = 1000, 1001, 1013
MAX_MESSAGE_BYTES = 1024 * 1024  # what one message may hold (GQL_API_MAX_BODY_BYTES's kin)
MAX_REASON_BYTES = 123  # a close frame's reason, by the WebSocket standard


class ReadReceipts:
    """The bytes sent to a client and how many of them it has shown it read. It is
    stalled when over the bound unread and its oldest unanswered ping is older than the
    grace: a burst sent faster than a pong can come back is no stall."""

    def __init__(self, max_unread: int, grace: float) -> None:
        self.max_unread, self.grace = max_unread, grace
        self.sent = 0
        self.read = 0
        # Unanswered pings: (nonce, bytes sent before it, when).
        self._pings: deque[tuple[str, int, float]] = deque()

    @property
    def unread(self) -> int:
        return self.sent - self.read

    def stalled(self) -> bool:
        if self.unread <= self.max_unread or not self._pings:
            return False
        return asyncio.get_running_loop().time() - self._pings[0][2] > self.grace

    def wants_ping(self) -> bool:
        """A ping is due when a quarter of the bound went out since the last one: a
        reading client's pong then comes back long before the bound is reached."""
        last = self._pings[-1][1] if self._pings else self.read
        return self.sent - last > self.max_unread // 4

    def ping(self) -> dict[str, Any]:
        nonce = secrets.token_urlsafe(9)
        if len(self._pings) < 64:  # a client that answers none is judged by the oldest
            self._pings.append((nonce, self.sent, asyncio.get_running_loop().time()))
        return {"type": "ping", "payload": {"nonce": nonce}}

    def pong(self, payload: Any) -> None:
        """A pong answers the ping whose nonce it echoes, or, without one, the oldest."""
        nonce = payload.get("nonce") if isinstance(payload, dict) else None
        while self._pings:
            sent_nonce, mark, _ = self._pings.popleft()
            self.read = max(self.read, mark)
            if nonce is None or sent_nonce == nonce:
                return


class ProtocolClose(Exception):
    """The connection is to be closed with this code and reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


class GraphQLWebSocket:
    """One ASGI app for every WebSocket connection to ``/graphql``."""

    def __init__(
        self, operations: LiveOperations, *, max_message_bytes: int, max_unread_bytes: int
    ) -> None:
        self.operations = operations
        self.max_message_bytes = max_message_bytes
        self.max_unread_bytes = max_unread_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        if PROTOCOL not in websocket.scope.get("subprotocols", []):
            await websocket.accept()
            await websocket.close(NOT_ACCEPTABLE, "Subprotocol not acceptable")
            return
        await websocket.accept(subprotocol=PROTOCOL)
        connection = _Connection(self, websocket)
        try:
            slot = self.operations.connections.hold(connection.shut_down)
        except TooManyConnections:
            await websocket.close(TRY_AGAIN_LATER, "too many connections: try again later")
            return
        try:
            await connection.serve()
        finally:
            self.operations.connections.release(slot)


class _Connection:
    def __init__(self, app: GraphQLWebSocket, websocket: WebSocket) -> None:
        self.app = app
        self.limits = app.operations.limits
        self.websocket = websocket
        self.viewer: Identity | None = None
        self.acknowledged = False
        self.request_id = uuid.uuid4().hex
        self.running: dict[str, asyncio.Task[None]] = {}
        self._sending = asyncio.Lock()
        self.receipts = ReadReceipts(app.max_unread_bytes, self.limits.keepalive)
        self._closing: ProtocolClose | None = None
        self._done = asyncio.Event()
        self._closed = asyncio.Event()  # set once the server closed it: stop receiving
        headers = websocket.headers
        peer = websocket.client.host if websocket.client is not None else None
        self.address = client_address(
            headers.get("x-forwarded-for", ""), peer, app.operations.endpoint.trusted_proxies
        )

    async def serve(self) -> None:
        pinger = asyncio.ensure_future(self._ping())
        try:
            await first_of(self._receive_all(), self._closed.wait())
        except ProtocolClose as closed:
            await self._close(closed.code, closed.reason)
        except WebSocketDisconnect:
            pass
        finally:
            pinger.cancel()
            for task in list(self.running.values()):
                task.cancel()
            await asyncio.gather(*self.running.values(), return_exceptions=True)
            self._done.set()

    async def shut_down(self) -> None:
        """The server stops: close with 1001 and wait for the connection's end."""
        self._closing = ProtocolClose(GOING_AWAY, "the server is shutting down")
        await self._close(GOING_AWAY, "the server is shutting down")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await self._done.wait()

    async def _receive_all(self) -> None:
        started = asyncio.get_running_loop().time()
        while True:
            timeout = self._receive_timeout(started)
            try:
                async with asyncio.timeout(timeout):
                    message = await self.websocket.receive()
            except TimeoutError:
                if not self.acknowledged:
                    raise ProtocolClose(INIT_TIMEOUT, "Connection initialisation timeout") from None
                if not self.running:
                    raise ProtocolClose(NORMAL, "idle: no subscription") from None
                started = asyncio.get_running_loop().time()
                continue
            if message["type"] == "websocket.disconnect":
                return
            if self._closing is not None:
                raise self._closing
            await self._handle(self._parse(message))
            started = asyncio.get_running_loop().time()

    def _receive_timeout(self, started: float) -> float:
        elapsed = asyncio.get_running_loop().time() - started
        limit = self.limits.init_timeout if not self.acknowledged else self.limits.idle_timeout
        return max(0.0, limit - elapsed)

    def _parse(self, message: Mapping[str, Any]) -> dict[str, Any]:
        raw = message.get("text")
        if raw is None:
            raise ProtocolClose(BAD_REQUEST, "Invalid message: send text frames of JSON")
        if len(raw) > self.app.max_message_bytes:
            raise ProtocolClose(
                BAD_REQUEST, f"Invalid message: over {self.app.max_message_bytes} bytes"
            )
        try:
            parsed = json.loads(raw)
        except (ValueError, RecursionError):
            raise ProtocolClose(BAD_REQUEST, "Invalid message: not JSON") from None
        if not isinstance(parsed, dict) or not isinstance(parsed.get("type"), str):
            raise ProtocolClose(BAD_REQUEST, "Invalid message: an object with a type")
        return parsed

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "connection_init":
            await self._init(message.get("payload"))
        elif kind == "ping":
            await self._send({"type": "pong", **echo_payload(message)})
        elif kind == "pong":
            self.receipts.pong(echo_payload(message).get("payload"))
        elif kind == "subscribe":
            await self._subscribe(checked_subscribe(message))
        elif kind == "complete":
            task = self.running.pop(operation_id_of(message), None)
            if task is not None:
                task.cancel()
        else:
            raise ProtocolClose(BAD_REQUEST, f"Invalid message type {kind[:40]!r}")

    async def _init(self, payload: Any) -> None:
        if self.acknowledged:
            raise ProtocolClose(TOO_MANY_INITS, "Too many initialisation requests")
        if payload is not None and not isinstance(payload, dict):
            raise ProtocolClose(BAD_REQUEST, "Invalid message: connection_init payload")
        header = authorization_of(payload or {})
        try:
            self.viewer = await self.app.operations.endpoint.verify_authorization(
                header, self.request_id
            )
        except (HttpError, UnicodeError):  # UnicodeError: a lone surrogate in the token
            raise ProtocolClose(FORBIDDEN, "Forbidden") from None
        self.acknowledged = True
        await self._send({"type": "connection_ack"})

    async def _subscribe(self, message: dict[str, Any]) -> None:
        if not self.acknowledged:
            raise ProtocolClose(UNAUTHORIZED, "Unauthorized")
        operation_id = operation_id_of(message)
        if operation_id in self.running:
            raise ProtocolClose(DUPLICATE_ID, f"Subscriber for {operation_id[:100]} already exists")
        if len(self.running) >= self.limits.max_subscriptions:
            await self._error(
                operation_id,
                f"at most {self.limits.max_subscriptions} operations at once on one "
                "connection: complete one first",
                "TOO_MANY_SUBSCRIPTIONS",
            )
            return
        task = asyncio.ensure_future(self._run(operation_id, message.get("payload")))
        self.running[operation_id] = task
        task.add_done_callback(lambda _: self._forget(operation_id, task))

    def _forget(self, operation_id: str, task: asyncio.Task[None]) -> None:
        if self.running.get(operation_id) is task:
            del self.running[operation_id]

    async def _run(self, operation_id: str, payload: Any) -> None:
        request_id = f"{self.request_id}:{operation_id[:64]}"
        try:
            started = await self.app.operations.start(
                payload, self.viewer, self.address, request_id
            )
        except (HttpError, Exception) as error:  # noqa: BLE001 - refusal() re-raises the rest
            try:
                errors = refusal(error)
            except Exception:
                log.exception("websocket %s: operation failed to start", request_id)
                await self._close(INTERNAL, "Internal server error")
                return
            await self._send({"id": operation_id, "type": "error", "payload": errors})
            return
        try:
            if isinstance(started, bytes):
                await self._next(operation_id, started)
            else:
                await self._stream(operation_id, started)
        except SubscriberTooSlow:
            log.info("websocket %s: subscriber too slow, closed", request_id)
            await self._close(TRY_AGAIN_LATER, "subscriber too slow: events were dropped")
            return
        await self._send({"id": operation_id, "type": "complete"})

    async def _stream(self, operation_id: str, stream: EventStream) -> None:
        try:
            async for response in stream:
                await self._next(operation_id, response)
        finally:
            await stream.aclose()

    async def _next(self, operation_id: str, response: bytes) -> None:
        frame = b'{"id":%s,"type":"next","payload":%s}' % (encoded(operation_id), response)
        try:
            # A client that stopped reading holds the send: it is as slow as a full queue.
            async with asyncio.timeout(self.limits.keepalive):
                async with self._sending:
                    await self.websocket.send_text(frame.decode())
        except TimeoutError:
            raise SubscriberTooSlow from None
        self.receipts.sent += len(frame)
        if self.receipts.stalled():
            raise SubscriberTooSlow
        if self.receipts.wants_ping():
            await self._send(self.receipts.ping())

    async def _error(self, operation_id: str, message: str, code: str) -> None:
        errors = [{"message": message, "extensions": {"code": code}}]
        await self._send({"id": operation_id, "type": "error", "payload": errors})

    async def _send(self, message: dict[str, Any]) -> None:
        if self.websocket.application_state is not WebSocketState.CONNECTED:
            return
        text = encoded(message).decode()
        async with self._sending:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                await self.websocket.send_text(text)
        self.receipts.sent += len(text)

    async def _ping(self) -> None:
        while True:
            await asyncio.sleep(self.limits.keepalive)
            if self.receipts.stalled():  # nothing is being sent, and it still has not read
                log.info("websocket %s: client stalled, closed", self.request_id)
                await self._close(TRY_AGAIN_LATER, "subscriber too slow: events were dropped")
                return
            await self._send(self.receipts.ping())

    async def _close(self, code: int, reason: str) -> None:
        reason = reason.encode()[:MAX_REASON_BYTES].decode(errors="ignore")
        if self.websocket.application_state is WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):  # a client that reads nothing gets no more
                    await self.websocket.close(code, reason)
        self._closed.set()


def operation_id_of(message: Mapping[str, Any]) -> str:
    operation_id = message.get("id")
    if not isinstance(operation_id, str) or not operation_id:
        raise ProtocolClose(BAD_REQUEST, "Invalid message: an id (a non-empty string) is required")
    return operation_id


def echo_payload(message: dict[str, Any]) -> dict[str, Any]:
    """A ping's or pong's payload, to echo: an object, or none (anything else: 4400)."""
    payload = message.get("payload")
    if payload is None:
        return {}
    if not isinstance(payload, dict):
        raise ProtocolClose(
            BAD_REQUEST, f"Invalid message: a {message['type']} payload is an object"
        )
    return {"payload": payload}


# A subscribe message's payload: each field and the types it may have (None: absent).
_SUBSCRIBE_FIELDS: dict[str, tuple[type, ...]] = {
    "query": (str,),
    "operationName": (str, type(None)),
    "variables": (dict, type(None)),
    "extensions": (dict, type(None)),
}


def checked_subscribe(message: dict[str, Any]) -> dict[str, Any]:
    """A subscribe message of the protocol's shape; any other is invalid (4400)."""
    operation_id_of(message)
    payload = message.get("payload")
    if not isinstance(payload, dict):
        raise ProtocolClose(BAD_REQUEST, "Invalid message: subscribe needs a payload object")
    for field, types in _SUBSCRIBE_FIELDS.items():
        if not isinstance(payload.get(field), types):
            raise ProtocolClose(BAD_REQUEST, f"Invalid message: subscribe payload's {field}")
    return message


def authorization_of(payload: dict[str, Any]) -> str | None:
    """The ``Authorization`` value of a connection_init payload, wherever clients put it."""
    for holder in (payload, payload.get("headers")):
        if isinstance(holder, dict):
            for name in ("Authorization", "authorization"):
                value = holder.get(name)
                if isinstance(value, str):
                    return value
    return None
