"""GraphQL over Server-Sent Events on ``/graphql``, in the graphql-sse protocol's
"distinct connections" mode: a request that accepts ``text/event-stream`` (POST, or GET
for queries and subscriptions) is answered by a stream of ``next`` events, then
``complete``.

It signs in with the ``Authorization`` header and is checked as any request is; a
refusal before the stream starts is the usual JSON error. A comment every keep-alive
interval holds the connection open through proxies; a subscriber whose queue filled,
or whose send blocks that long (it reads nothing), has its stream ended.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from gql_api.auth.identity import Identity
from gql_api.domain.live_feed import SubscriberTooSlow
from gql_api.execution.subscriptions import EventStream
from gql_api.http.live import LiveOperations, TooManyConnections
from gql_api.http.params import EVENT_STREAM, HttpError
from gql_api.http.rate_limits import client_address

log = logging.getLogger(__name__)

COMPLETE = b"event: complete\ndata:\n\n"
KEEPALIVE = b":\n\n"


def _event(response: bytes) -> bytes:
    return b"event: next\ndata: " + response + b"\n\n"


class _Stalled(Exception):
    """A send to the client blocked for longer than the keep-alive interval."""


class _HeldStream(StreamingResponse):
    """A stream that gives its connection's place back however it ends (cancelled before
    its first byte included), and ends when a send blocks past ``send_timeout``."""

    def __init__(
        self, content: AsyncIterator[bytes], release: Any, send_timeout: float, **kwargs: Any
    ) -> None:
        super().__init__(content, **kwargs)
        self._release = release
        self._send_timeout = send_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def timed_send(message: Message) -> None:
            try:
                async with asyncio.timeout(self._send_timeout):
                    await send(message)
            except TimeoutError:
                raise _Stalled from None

        try:
            await super().__call__(scope, receive, timed_send)
        except* _Stalled:
            # The response is left unfinished: the server closes the connection.
            log.info("sse: client stalled (a send blocked %ss), stream ended", self._send_timeout)
        finally:
            self._release()


class GraphQLOverSSE:
    def __init__(self, operations: LiveOperations) -> None:
        self.operations = operations

    async def respond(
        self, request: Request, params: dict[str, Any], viewer: Identity | None, request_id: str
    ) -> Response:
        connections = self.operations.connections
        stop = asyncio.Event()

        async def shut_down() -> None:
            stop.set()

        try:
            slot = connections.hold(shut_down)
        except TooManyConnections:
            raise HttpError(
                503,
                "TOO_MANY_CONNECTIONS",
                "the server holds as many live connections as it may: try again later",
                {"Retry-After": "5"},
            ) from None
        try:
            address = client_address(
                request.headers.get("x-forwarded-for", ""),
                request.client.host if request.client is not None else None,
                self.operations.endpoint.trusted_proxies,
            )
            started = await self.operations.start(
                params, viewer, address, request_id, allow_mutations=request.method == "POST"
            )
        except BaseException:
            connections.release(slot)
            raise
        body = self._single(started) if isinstance(started, bytes) else self._stream(started, stop)
        return _HeldStream(
            body,
            lambda: connections.release(slot),
            self.operations.limits.keepalive,
            media_type=f"{EVENT_STREAM}; charset=utf-8",
            headers={
                "X-Request-Id": request_id,
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # nginx: pass each event on as it comes
            },
        )

    async def _single(self, response: bytes) -> AsyncIterator[bytes]:
        yield _event(response)
        yield COMPLETE

    async def _stream(self, stream: EventStream, stop: asyncio.Event) -> AsyncIterator[bytes]:
        keepalive = self.operations.limits.keepalive
        pending: asyncio.Future[Any] | None = None
        stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        try:
            yield KEEPALIVE  # the headers and a first byte now: the client knows it is live
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(anext(stream))
                done, _ = await asyncio.wait(
                    [pending, stopping], timeout=keepalive, return_when=asyncio.FIRST_COMPLETED
                )
                if stopping in done:
                    return  # the server stops: the stream ends, without complete
                if pending not in done:
                    yield KEEPALIVE
                    continue
                try:
                    response = pending.result()
                except StopAsyncIteration:
                    break
                pending = None
                yield _event(response)
            yield COMPLETE
        except SubscriberTooSlow:
            log.info("sse %s: subscriber too slow, stream ended", stream.request_id)
        finally:
            stopping.cancel()
            if pending is not None:
                pending.cancel()
            await stream.aclose()
