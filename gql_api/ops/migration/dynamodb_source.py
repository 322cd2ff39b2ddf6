"""The earlier service's DynamoDB table, read through aioboto3 (never written).

One table keyed ``PK``/``SK``: posts at ``PK="POSTS"`` with ``SK="<createdAt>#<postId>"``,
profiles at ``PK="PROFILES"`` with ``SK=<userId>``. A page is one Query on the partition
(never a Scan), ascending ``SK``, strongly consistent; its position is its last ``SK``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from gql_api.ops.migration.sources import (
    Kind,
    LegacyPage,
    LegacyRow,
    SourceUnavailable,
    decode_position,
    normal_url,
    page_of,
)
from gql_api.settings import Settings

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

PARTITIONS = {Kind.POSTS: "POSTS", Kind.PROFILES: "PROFILES"}
KEYS = ("PK", "SK")  # the layout's key attributes: not fields of a post or a profile
LOCAL_REGION = "us-east-1"  # for a local server when no region is configured
THROTTLED = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
}


class DynamoDBSource:
    name = "dynamodb"

    def __init__(
        self,
        table: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        timeout: float = 10.0,
        max_attempts: int = 3,
    ) -> None:
        self.table = table
        self.endpoint_url = endpoint_url
        self.region = region
        self.timeout = timeout
        self.max_attempts = max_attempts  # botocore's retries after the first attempt
        self._client: DynamoDBClient | None = None
        self._stack: contextlib.AsyncExitStack | None = None

    @property
    def location(self) -> str:
        return f"dynamodb table {self.table} at {_endpoint(self.endpoint_url, self._region())}"

    def overlaps(self, settings: Settings) -> str | None:
        if settings.store != "dynamodb" or settings.dynamodb_table != self.table:
            return None
        here = _endpoint(self.endpoint_url, self._region())
        target = settings.dynamodb_endpoint
        if here != _endpoint(target, _configured_region(target)):
            return None
        return (
            f"gql-api's DynamoDB store would write into the legacy table {self.table} "
            f"({here}); set GQL_API_DYNAMODB_TABLE to another table (when it is unset, "
            "the legacy POSTS_TABLE_NAME is used in its place)"
        )

    async def open(self) -> None:
        import aioboto3
        from aiobotocore.config import AioConfig

        region = self._region()
        if region is None:
            raise SourceUnavailable("no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION)")
        config = AioConfig(
            connect_timeout=self.timeout,
            read_timeout=self.timeout,
            retries={"mode": "adaptive", "max_attempts": self.max_attempts},
        )
        stack = contextlib.AsyncExitStack()
        client = aioboto3.Session().client(
            "dynamodb", region_name=region, endpoint_url=self.endpoint_url, config=config
        )
        self._client = await stack.enter_async_context(client)
        self._stack = stack

    async def close(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    async def count(self, kind: Kind) -> int:
        request = self._request(kind, Select="COUNT")
        total = 0
        with self._reading() as client:
            while True:  # one Query counts at most 1 MB of items
                answer = await client.query(**request)
                total += answer.get("Count", 0)
                if not (last := answer.get("LastEvaluatedKey")):
                    return total
                request["ExclusiveStartKey"] = last

    async def page(self, kind: Kind, after: str | None, size: int) -> LegacyPage:
        key = None if after is None else decode_position(kind, after)
        if key is not None and len(key.encode()) > 1024:  # longer than any sort key
            raise ValueError(f"not a DynamoDB sort key: {key[:40]!r}...")
        items = await self._read(kind, key, size + 1)
        rows = [
            LegacyRow(item["SK"]["S"], {k: _plain(v) for k, v in item.items() if k not in KEYS})
            for item in items
        ]
        return page_of(kind, rows, size)

    # --- internals ---------------------------------------------------------------------

    def _region(self) -> str | None:
        return self.region or _configured_region(self.endpoint_url)

    def _request(self, kind: Kind, **extra: Any) -> dict[str, Any]:
        return {
            "TableName": self.table,
            "KeyConditionExpression": "#pk = :pk",
            "ExpressionAttributeNames": {"#pk": "PK"},
            "ExpressionAttributeValues": {":pk": {"S": PARTITIONS[kind]}},
            "ConsistentRead": True,
            **extra,
        }

    async def _read(self, kind: Kind, after: str | None, limit: int) -> list[dict[str, Any]]:
        request = self._request(kind, ScanIndexForward=True)
        if after is not None:
            request["ExclusiveStartKey"] = {"PK": {"S": PARTITIONS[kind]}, "SK": {"S": after}}
        items: list[dict[str, Any]] = []
        with self._reading() as client:
            while len(items) < limit:  # more than one Query only when 1 MB came first
                answer = await client.query(**request, Limit=limit - len(items))
                items += answer.get("Items", [])
                if not (last := answer.get("LastEvaluatedKey")):
                    break
                request["ExclusiveStartKey"] = last
        return items

    @contextlib.contextmanager
    def _reading(self) -> Iterator[DynamoDBClient]:
        """The open client; throttling and outages become ``SourceUnavailable``."""
        from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

        if self._client is None:
            raise SourceUnavailable("the DynamoDB source is not open")
        try:
            yield self._client
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in THROTTLED:
                raise SourceUnavailable(f"DynamoDB {code}: {error}") from error
            raise
        except (ConnectionError, HTTPClientError, TimeoutError) as error:
            raise SourceUnavailable(f"DynamoDB unreachable: {error}") from error


def _configured_region(endpoint_url: str | None) -> str | None:
    """The region a client finds by itself (environment, config file), as the store does."""
    import botocore.session

    found: str | None = botocore.session.get_session().get_config_variable("region")
    return found or (LOCAL_REGION if endpoint_url is not None else None)


def _endpoint(url: str | None, region: str | None) -> str:
    """An endpoint, spelt one way (AWS's own when None), to tell two tables apart."""
    if url is None:
        return f"AWS ({region or 'default region'})"
    return normal_url(url)


def _plain(attribute: Mapping[str, Any]) -> Any:
    """A DynamoDB attribute value as plain Python (sets as sorted lists)."""
    ((kind, raw),) = attribute.items()
    if kind == "N":
        number = Decimal(raw)
        return int(number) if number == number.to_integral_value() else number
    if kind in ("SS", "BS"):
        return sorted(raw)
    if kind == "NS":
        return sorted(_plain({"N": entry}) for entry in raw)
    if kind == "L":
        return [_plain(entry) for entry in raw]
    if kind == "M":
        return {name: _plain(value) for name, value in raw.items()}
    if kind == "NULL":
        return None
    return raw  # S, BOOL, B
