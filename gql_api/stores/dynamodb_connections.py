"""The WebSocket connections of API Gateway (``gql_api.lambda_websocket``) and their
subscriptions, in a DynamoDB table of their own, each item expiring with its connection.

Items (key ``pk``, ``sk``):

- a connection: ``CONN#<connection id>`` / ``CONN``: when it connected, whether
  ``connection_init`` was acknowledged, and as whom (the viewer);
- a subscription, filed under its filter so that a post's change finds the subscriptions
  it matches with one Query per partition, never a scan: ``all``, ``tag#<tag>`` or
  ``author#<user id>`` / ``<connection id>#<subscription id>`` (a filter of a tag and an
  author is filed under the tag, the narrower of a change's partitions, and the author
  checked after reading);
- its pointer under the connection, ``CONN#<connection id>`` / ``SUB#<subscription id>``,
  naming the subscription's partition: ``$disconnect`` and ``complete`` find what to delete
  with one consistent Query or GetItem (a GSI would be read eventually consistent).

Every item has ``expiresAt`` (the table's TTL): API Gateway closes a connection after 2
hours at most, and ``$disconnect`` is best effort, so what it missed expires on its own.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gql_api.domain.records import PostRecord

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

# API Gateway's most a connection lasts (2 hours), and a margin for clocks and retries.
CONNECTION_SECONDS = 2 * 3600
TTL_MARGIN_SECONDS = 15 * 60
TTL_ATTRIBUTE = "expiresAt"
BATCH_WRITE = 25  # BatchWriteItem's most requests at a time
BATCH_ATTEMPTS = 5

_CONNECTION = "CONN"


def table_definition(table: str) -> dict[str, Any]:
    """The ``CreateTable`` request of the connections table (its TTL is set apart)."""
    return {
        "TableName": table,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
    }


@dataclass(frozen=True, slots=True)
class Connection:
    connection_id: str
    connected_at: int  # milliseconds since the epoch, as API Gateway reports it
    expires_at: int  # seconds since the epoch
    acknowledged: bool = False
    viewer: dict[str, Any] | None = None  # the identity connection_init signed in as


@dataclass(frozen=True, slots=True)
class Subscription:
    connection_id: str
    subscription_id: str
    query: str
    operation_name: str | None
    variables: dict[str, Any] | None
    viewer: dict[str, Any] | None
    expires_at: int
    tag: str | None = None  # the filter, normalized
    author_id: str | None = None

    @property
    def partition(self) -> str:
        if self.tag is not None:
            return f"tag#{self.tag}"
        if self.author_id is not None:
            return f"author#{self.author_id}"
        return "all"

    def matches(self, post: PostRecord) -> bool:
        return (self.tag is None or self.tag in post.tags) and (
            self.author_id is None or self.author_id == post.author_id
        )


def partitions_of(post: PostRecord) -> list[str]:
    """The partitions whose subscriptions a change of ``post`` may match."""
    return ["all", *(f"tag#{tag}" for tag in post.tags), f"author#{post.author_id}"]


def expiry(connected_at_ms: int) -> int:
    return connected_at_ms // 1000 + CONNECTION_SECONDS + TTL_MARGIN_SECONDS


class ConnectionsTable:
    """The table's items, through a DynamoDB client the caller opened (and closes)."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self.client = client
        self.table = table

    async def connect(self, connection_id: str, connected_at_ms: int) -> Connection:
        connection = Connection(connection_id, connected_at_ms, expiry(connected_at_ms))
        item = {
            **_connection_key(connection_id),
            "connectedAt": {"N": str(connected_at_ms)},
            "acknowledged": {"BOOL": False},
            TTL_ATTRIBUTE: {"N": str(connection.expires_at)},
        }
        await self.client.put_item(TableName=self.table, Item=item)
        return connection

    async def get(self, connection_id: str) -> Connection | None:
        """The connection, unless unknown or expired (TTL deletes items late)."""
        answer = await self.client.get_item(
            TableName=self.table, Key=_connection_key(connection_id), ConsistentRead=True
        )
        item = answer.get("Item")
        if item is None or int(item[TTL_ATTRIBUTE]["N"]) <= time.time():
            return None
        viewer = item.get("viewer")
        return Connection(
            connection_id,
            int(item["connectedAt"]["N"]),
            int(item[TTL_ATTRIBUTE]["N"]),
            item["acknowledged"]["BOOL"],
            None if viewer is None else json.loads(viewer["S"]),
        )

    async def acknowledge(self, connection_id: str, viewer: dict[str, Any] | None) -> bool:
        """Record connection_init's viewer; False when already acknowledged (or unknown)."""
        client = self.client
        update = "SET acknowledged = :yes" + (", viewer = :viewer" if viewer else "")
        values: dict[str, Any] = {":yes": {"BOOL": True}, ":no": {"BOOL": False}}
        if viewer:
            values[":viewer"] = {"S": json.dumps(viewer, sort_keys=True)}
        try:
            await client.update_item(
                TableName=self.table,
                Key=_connection_key(connection_id),
                UpdateExpression=update,
                ConditionExpression="attribute_exists(pk) AND acknowledged = :no",
                ExpressionAttributeValues=values,
            )
        except client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    async def subscription_count(self, connection_id: str) -> int:
        answer = await self.client.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :sub)",
            ExpressionAttributeValues={
                ":pk": {"S": f"{_CONNECTION}#{connection_id}"},
                ":sub": {"S": "SUB#"},
            },
            Select="COUNT",
            ConsistentRead=True,
        )
        return int(answer.get("Count", 0))

    async def subscribe(self, subscription: Subscription) -> bool:
        """Store ``subscription`` and its pointer; False when its id is already in use."""
        client = self.client
        pointer = {
            **_pointer_key(subscription.connection_id, subscription.subscription_id),
            "partition": {"S": subscription.partition},
            TTL_ATTRIBUTE: {"N": str(subscription.expires_at)},
        }
        try:
            await client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": pointer,
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {"Put": {"TableName": self.table, "Item": _subscription_item(subscription)}},
                ]
            )
        except client.exceptions.TransactionCanceledException as error:
            reasons = error.response.get("CancellationReasons", [])
            if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                return False
            raise
        return True

    async def unsubscribe(self, connection_id: str, subscription_id: str) -> bool:
        """Delete a subscription and its pointer; False when there was none."""
        key = _pointer_key(connection_id, subscription_id)
        answer = await self.client.get_item(TableName=self.table, Key=key, ConsistentRead=True)
        item = answer.get("Item")
        if item is None:
            return False
        await self._delete([key, _subscription_key(item["partition"]["S"], connection_id, key)])
        return True

    async def remove(self, connection_id: str) -> int:
        """Delete the connection and all its subscriptions; how many subscriptions it had."""
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": f"{_CONNECTION}#{connection_id}"}},
            "ConsistentRead": True,
        }
        keys: list[dict[str, Any]] = []
        subscriptions = 0
        while True:
            answer = await self.client.query(**request)
            for item in answer.get("Items", []):
                key = {"pk": item["pk"], "sk": item["sk"]}
                keys.append(key)
                if "partition" in item:
                    subscriptions += 1
                    keys.append(_subscription_key(item["partition"]["S"], connection_id, key))
            last = answer.get("LastEvaluatedKey")
            if not last:
                break
            request["ExclusiveStartKey"] = last
        await self._delete(keys)
        return subscriptions

    async def matching(self, post: PostRecord) -> list[Subscription]:
        """The live subscriptions a change of ``post`` matches: one Query per partition."""
        found = await asyncio.gather(*map(self._partition, partitions_of(post)))
        now = time.time()
        return [
            subscription
            for partition in found
            for subscription in partition
            if subscription.expires_at > now and subscription.matches(post)
        ]

    async def _partition(self, partition: str) -> list[Subscription]:
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": partition}},
        }
        subscriptions: list[Subscription] = []
        while True:  # more than one page only past 1 MB of subscriptions
            answer = await self.client.query(**request)
            subscriptions += map(_subscription_of, answer.get("Items", []))
            last = answer.get("LastEvaluatedKey")
            if not last:
                return subscriptions
            request["ExclusiveStartKey"] = last

    async def _delete(self, keys: Sequence[dict[str, Any]]) -> None:
        for start in range(0, len(keys), BATCH_WRITE):
            pending: dict[str, Any] = {
                self.table: [
                    {"DeleteRequest": {"Key": k}} for k in keys[start : start + BATCH_WRITE]
                ]
            }
            for attempt in range(BATCH_ATTEMPTS):
                answer = await self.client.batch_write_item(RequestItems=pending)
                pending = dict(answer.get("UnprocessedItems") or {})
                if not pending:
                    break
                await asyncio.sleep(0.05 * 2**attempt)  # throttled: back off, then the rest
            # Still throttled: the items expire with their TTL anyway.


def _connection_key(connection_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"{_CONNECTION}#{connection_id}"}, "sk": {"S": _CONNECTION}}


def _pointer_key(connection_id: str, subscription_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"{_CONNECTION}#{connection_id}"}, "sk": {"S": f"SUB#{subscription_id}"}}


def _subscription_key(
    partition: str, connection_id: str, pointer: dict[str, Any]
) -> dict[str, Any]:
    subscription_id = pointer["sk"]["S"].removeprefix("SUB#")
    return {"pk": {"S": partition}, "sk": {"S": f"{connection_id}#{subscription_id}"}}


def _subscription_item(subscription: Subscription) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pk": {"S": subscription.partition},
        "sk": {"S": f"{subscription.connection_id}#{subscription.subscription_id}"},
        "connectionId": {"S": subscription.connection_id},
        "subscriptionId": {"S": subscription.subscription_id},
        "query": {"S": subscription.query},
        TTL_ATTRIBUTE: {"N": str(subscription.expires_at)},
    }
    optional = {
        "operationName": subscription.operation_name,
        "tag": subscription.tag,
        "authorId": subscription.author_id,
    }
    item.update({name: {"S": value} for name, value in optional.items() if value is not None})
    for name, document in (("variables", subscription.variables), ("viewer", subscription.viewer)):
        if document:  # JSON: variables hold any JSON value, which attribute values would not
            item[name] = {"S": json.dumps(document, sort_keys=True)}
    return item


def _subscription_of(item: dict[str, Any]) -> Subscription:
    def text(name: str) -> str | None:
        value = item.get(name)
        return None if value is None else str(value["S"])

    def document(name: str) -> dict[str, Any] | None:
        value = text(name)
        return None if value is None else dict(json.loads(value))

    return Subscription(
        connection_id=item["connectionId"]["S"],
        subscription_id=item["subscriptionId"]["S"],
        query=item["query"]["S"],
        operation_name=text("operationName"),
        variables=document("variables"),
        viewer=document("viewer"),
        expires_at=int(item[TTL_ATTRIBUTE]["N"]),
        tag=text("tag"),
        author_id=text("authorId"),
    )
