"""A subscription's responses: its source stream opened once (the resolver subscribes),
then its selection run over each event.

Subscribers that sent the same document, operation and variables, as the same viewer,
get the same response to an event: it is made once, by whichever asks first, and the
others await it (``PostEvent.shared``). A thousand anonymous subscribers of one feed
query cost one execution and one serialization per event, not a thousand.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from graphql import ExecutionResult
from graphql.execution import create_source_event_stream
from graphql.execution.executor import Executor as GraphQLExecutor

from gql_api.execution.executor import Executor, Prepared, RequestError, field_error, shape_error


def encoded(body: Any) -> bytes:
    try:
        return orjson.dumps(body)
    except TypeError:  # a lone surrogate echoed from the request: escape it
        return json.dumps(body, separators=(",", ":")).encode()


class EventStream:
    """The responses of one subscription, each the JSON of an execution result."""

    def __init__(
        self,
        executor: Executor,
        built: GraphQLExecutor[Any],
        source: AsyncIterator[Any],
        new_context: Callable[[], Any],
        share_key: tuple[Any, ...],
        request_id: str,
    ) -> None:
        self._executor = executor
        self._built = built
        self._source = source
        self._new_context = new_context
        self._share_key = share_key
        self.request_id = request_id

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> bytes:
        event = await anext(self._source)  # StopAsyncIteration ends the stream
        shared: dict[Any, Any] | None = getattr(event, "shared", None)
        if shared is None:
            return await self._respond(event)
        made = shared.get(self._share_key)
        if made is None:
            made = shared[self._share_key] = asyncio.ensure_future(self._respond(event))
        return await asyncio.shield(made)  # one subscriber leaving cancels no other's

    async def _respond(self, event: Any) -> bytes:
        body = await self._executor.execute_event(
            self._built, event, self._new_context(), self.request_id
        )
        return encoded(body)

    async def aclose(self) -> None:
        close = getattr(self._source, "aclose", None)
        if close is not None:
            await close()


async def open_stream(
    executor: Executor,
    prepared: Prepared,
    *,
    variables: dict[str, Any] | None,
    context: Any,
    new_context: Callable[[], Any],
    viewer_key: Any,
    request_id: str,
) -> EventStream:
    """Subscribe: run the subscription's resolver in ``context``; each event then runs in a
    context of its own (``new_context``). ``RequestError`` when it cannot start (bad
    variables, a bad filter, no change feed): the errors, and no stream."""
    built = executor.build(prepared, variables, context)
    outcome = create_source_event_stream(built)
    stream = await outcome if asyncio.iscoroutine(outcome) else outcome
    if isinstance(stream, ExecutionResult):
        errors = stream.errors or []
        raise RequestError(
            [
                field_error(e, request_id) if e.path else shape_error(e, "BAD_REQUEST")
                for e in errors
            ]
        )
    share_key = (
        prepared.query,
        prepared.name,
        json.dumps(variables, sort_keys=True, default=str),
        viewer_key,
    )
    return EventStream(executor, built, aiter(stream), new_context, share_key, request_id)  # type: ignore[arg-type]
