"""What the live transports (graphql-transport-ws, GraphQL over SSE) share: their bounds,
the connections this process holds, and starting an operation sent on one, with the same
checks as over HTTP (limits, cost, rate limits)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from graphql import OperationType

from gql_api.auth.identity import Identity
from gql_api.execution.executor import RequestError, request_error
from gql_api.execution.subscriptions import EventStream, encoded, open_stream
from gql_api.http.endpoint import GraphQLEndpoint
from gql_api.http.params import HttpError, check_query, check_shapes
from gql_api.resolvers.context import RequestContext


@dataclass(frozen=True, slots=True)
class LiveLimits:
    max_connections: int = 10_000  # per process, WebSocket and SSE together
    max_subscriptions: int = 20  # per connection
    keepalive: float = 15.0  # seconds between pings (WebSocket) or comments (SSE)
    idle_timeout: float = 300.0  # seconds a connection with no subscription stays open
    init_timeout: float = 10.0  # seconds a WebSocket has to send connection_init


class TooManyConnections(Exception):
    """The process holds as many live connections as it may."""


class LiveConnections:
    """The live connections of this process: counted against their limit, and closed
    cleanly, each by its transport, when the server stops."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._closers: dict[int, Callable[[], Awaitable[None]]] = {}
        self._ids = iter(range(1, 1 << 62))

    def __len__(self) -> int:
        return len(self._closers)

    def hold(self, close: Callable[[], Awaitable[None]]) -> int:
        """Count a connection in (``TooManyConnections`` when full); ``close`` ends it."""
        if len(self._closers) >= self.limit:
            raise TooManyConnections
        slot = next(self._ids)
        self._closers[slot] = close
        return slot

    def release(self, slot: int) -> None:
        self._closers.pop(slot, None)

    async def close_all(self) -> None:
        closers = list(self._closers.values())
        self._closers.clear()
        for close in closers:
            with contextlib.suppress(Exception):
                await close()


class LiveOperations:
    """Start the operations sent on live connections."""

    def __init__(self, endpoint: GraphQLEndpoint, limits: LiveLimits) -> None:
        self.endpoint = endpoint
        self.limits = limits
        self.connections = LiveConnections(limits.max_connections)

    async def start(
        self,
        params: Any,
        viewer: Identity | None,
        address: str | None,
        request_id: str,
        *,
        allow_mutations: bool = True,
    ) -> EventStream | bytes:
        """A subscription's stream of responses, or a query's or mutation's one response
        (JSON). ``RequestError`` or ``HttpError`` when it cannot run."""
        if not isinstance(params, dict):
            raise HttpError(400, "BAD_REQUEST", "the operation must be a JSON object")
        params = check_query(self.endpoint.resolve_document(check_shapes(dict(params))))
        executor = self.endpoint.executor
        prepared = executor.prepare(params["query"], params.get("operationName"))
        if prepared.operation is OperationType.MUTATION and not allow_mutations:
            raise HttpError(
                405,
                "METHOD_NOT_ALLOWED",
                "only queries may be sent with GET: send mutations with POST",
                {"Allow": "POST"},
            )
        self.endpoint.admit(prepared, params, viewer, address)
        service = self.endpoint.service

        def new_context() -> RequestContext:
            return RequestContext(service=service, viewer=viewer, request_id=request_id)

        variables = params.get("variables")
        if prepared.operation is OperationType.SUBSCRIPTION:
            viewer_key = None if viewer is None else (viewer.user_id, viewer.is_admin)
            return await open_stream(
                executor,
                prepared,
                variables=variables,
                context=new_context(),
                new_context=new_context,
                viewer_key=viewer_key,
                request_id=request_id,
            )
        body = await executor.execute(
            prepared,
            variables=variables,
            operation_name=params.get("operationName"),
            context=new_context(),
            request_id=request_id,
        )
        return encoded(body)


def refusal(error: Exception) -> list[dict[str, Any]]:
    """The GraphQL errors of an operation that could not start."""
    if isinstance(error, RequestError):
        return error.errors
    if isinstance(error, HttpError):
        return [request_error(error.message, error.code)]
    raise error


async def first_of(*waits: Awaitable[Any]) -> None:
    """Wait until the first of ``waits`` is done (raising what it raised); cancel the rest."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
    for task in done:
        task.result()
