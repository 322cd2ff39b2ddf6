"""The AWS Lambda entry point of the fan-out: ``gql_api.lambda_fanout.fanout``, triggered
by the posts table's stream (an event source mapping, batches of records in order per
shard). For each post's change it finds the subscriptions it matches in the connections
table (a Query on ``all``, on each of the post's ``tag#<tag>`` and on ``author#<id>``),
runs each distinct selection once (subscribers of the same document, operation, variables
and viewer share its response, as on ``gql-api serve``) and posts the ``next`` message to
every subscriber's connection, at most ``SEND_CONCURRENCY`` calls at once. A connection
that answers 410 (gone) is removed with its subscriptions.

A batch that fails (the table or the stream cannot be read) is retried by Lambda: its
subscribers may then see an event twice (at least once, as the live feed's events are).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any, TypeVar

import orjson

from gql_api.domain.records import PostChange
from gql_api.execution.executor import RequestError
from gql_api.execution.subscriptions import encoded
from gql_api.lambda_websocket import (
    SEND_CONCURRENCY,
    Environment,
    environment,
    identity_of,
    message_frame,
)
from gql_api.resolvers.context import RequestContext
from gql_api.schema.types import PostEvent
from gql_api.settings import SettingsError
from gql_api.stores.dynamodb_connections import Subscription
from gql_api.stores.dynamodb_streams import change_of

log = logging.getLogger(__name__)
T = TypeVar("T")

GroupKey = tuple[str, str | None, str, str]


def group_key(subscription: Subscription) -> GroupKey:
    """Subscribers whose responses to an event are the same (``open_stream``'s share key)."""
    return (
        subscription.query,
        subscription.operation_name,
        json.dumps(subscription.variables, sort_keys=True, default=str),
        json.dumps(subscription.viewer, sort_keys=True),
    )


class FanOut:
    """One batch of stream records delivered to their subscribers."""

    def __init__(self, env: Environment, endpoint: str, request_id: str) -> None:
        self.env = env
        self.endpoint = endpoint
        self.request_id = request_id
        self.executions = 0
        self.sent = 0
        self.gone: set[str] = set()
        self._sending = asyncio.Semaphore(SEND_CONCURRENCY)

    async def deliver(self, change: PostChange) -> None:
        """Send ``change`` to every subscription it matches."""
        table = await self.env.start()
        groups: dict[GroupKey, list[Subscription]] = {}
        for subscription in await table.matching(change.post):
            if subscription.connection_id not in self.gone:
                groups.setdefault(group_key(subscription), []).append(subscription)
        event = PostEvent.of(change.kind, change.post, {})
        responses = await self._bounded(
            self._respond(members[0], event) for members in groups.values()
        )
        frames: list[tuple[Subscription, bytes]] = []
        finished: list[Subscription] = []
        for members, (kind, response) in zip(groups.values(), responses, strict=True):
            for subscription in members:
                frames.append(
                    (subscription, message_frame(subscription.subscription_id, kind, response))
                )
                if kind == "error":
                    finished.append(subscription)
        sent = await self._bounded(self._send(s, frame) for s, frame in frames)
        self.sent += sum(sent)
        for subscription in finished:  # an error ends a subscription (graphql-transport-ws)
            await table.unsubscribe(subscription.connection_id, subscription.subscription_id)

    async def _respond(self, subscription: Subscription, event: PostEvent) -> tuple[str, bytes]:
        """The group's response to ``event``: ("next", its JSON) or ("error", the errors)."""
        executor = self.env.runtime.endpoint.executor
        viewer = identity_of(subscription.viewer)
        context = RequestContext(
            service=self.env.runtime.endpoint.service, viewer=viewer, request_id=self.request_id
        )
        try:
            prepared = executor.prepare(subscription.query, subscription.operation_name)
            built = executor.build(prepared, subscription.variables, context)
            self.executions += 1
            body = await executor.execute_event(built, event, context, self.request_id)
        except RequestError as error:  # a document this deployment no longer accepts
            return "error", orjson.dumps(error.errors)
        return "next", encoded(body)

    async def _send(self, subscription: Subscription, frame: bytes) -> bool:
        connection_id = subscription.connection_id
        if connection_id in self.gone:
            return False
        try:
            delivered = await self.env.send(self.endpoint, connection_id, frame)
        except Exception as error:  # noqa: BLE001 - one subscriber's failure is not the batch's
            log.warning(
                "fanout %s: sending to %s failed: %r", self.request_id, connection_id, error
            )
            return False
        if not delivered and connection_id not in self.gone:
            self.gone.add(connection_id)
            await self.env.forget(connection_id)
        return delivered

    async def _bounded(self, works: Iterable[Awaitable[T]]) -> list[T]:
        async def one(work: Awaitable[T]) -> T:
            async with self._sending:
                return await work

        return list(await asyncio.gather(*map(one, works)))


async def _fan_out(records: Iterable[Mapping[str, Any]], request_id: str) -> dict[str, Any]:
    started = time.perf_counter()
    endpoint = environment.settings.websocket_endpoint
    assert endpoint is not None  # checked at init
    batch = FanOut(environment, endpoint.rstrip("/"), request_id)
    changes = [change for change in map(change_of, records) if change is not None]
    for change in changes:  # one after another: each post's events in version order
        await batch.deliver(change)
    log.info(
        "fanout %s: %d changes, %d executions, %d messages sent, %d connections gone",
        request_id,
        len(changes),
        batch.executions,
        batch.sent,
        len(batch.gone),
        extra={"duration_ms": round(1000 * (time.perf_counter() - started), 2)},
    )
    return {"changes": len(changes), "executions": batch.executions, "sent": batch.sent}


def fanout(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request_id = str(getattr(context, "aws_request_id", None) or uuid.uuid4().hex)
    return environment.run(_fan_out(event.get("Records", []), request_id))


if environment.settings.websocket_endpoint is None:
    raise SettingsError(
        "GQL_API_WEBSOCKET_ENDPOINT is required by the fan-out function: the WebSocket API's "
        "Management API, https://<api id>.execute-api.<region>.amazonaws.com/<stage>"
    )
