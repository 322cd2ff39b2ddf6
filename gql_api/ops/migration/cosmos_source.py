"""The earlier service's Cosmos DB containers, read through ``azure.cosmos.aio`` (never written).

Containers ``posts`` (partition key ``/postId``, item id = postId) and ``profiles``
(``/userId``, item id = userId). A page is one cross-partition keyset query ordered by
``c.id`` (a single path, which the default indexing policy serves; never ``OFFSET``); its
position is the last id read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
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
    from azure.cosmos.aio import ContainerProxy, CosmosClient

SYSTEM_FIELDS = {"_rid", "_self", "_etag", "_attachments", "_ts"}  # Cosmos DB's, not the post's
TRANSIENT = {408, 429, 449, 500, 503}  # timeout, throttled, retry-with, server trouble
NOT_IN_AN_ID = set("/\\?#")  # what Cosmos DB never allows in an item id


class CosmosSource:
    name = "cosmos"

    def __init__(
        self,
        url: str,
        *,
        key: str | None,
        database: str,
        posts_container: str = "posts",
        profiles_container: str = "profiles",
        verify_tls: bool = True,
        timeout: float = 10.0,
        retry_total: int = 9,
    ) -> None:
        self.url = url
        self.key = key
        self.database = database
        self.containers = {Kind.POSTS: posts_container, Kind.PROFILES: profiles_container}
        self.verify_tls = verify_tls
        self.timeout = timeout
        self.retry_total = retry_total  # the SDK's retries of throttled and failed requests
        self._client: CosmosClient | None = None
        self._credential: Any = None  # Entra ID's, when no key is given: closed with the client

    @property
    def location(self) -> str:
        posts, profiles = self.containers.values()
        return (
            f"cosmos {normal_url(self.url)} database {self.database} containers {posts}, {profiles}"
        )

    def overlaps(self, settings: Settings) -> str | None:
        from gql_api.stores.cosmos import POSTS, PROFILES  # the store's own container names

        if settings.store != "cosmos" or settings.cosmos_url is None:
            return None
        if normal_url(settings.cosmos_url) != normal_url(self.url):
            return None
        if settings.cosmos_database != self.database:
            return None
        shared = sorted({POSTS, PROFILES} & set(self.containers.values()))
        if not shared:
            return None
        return (
            f"gql-api's Cosmos DB store would write into the legacy container(s) "
            f"{', '.join(shared)} of database {self.database} ({normal_url(self.url)}); set "
            "GQL_API_COSMOS_DATABASE to another database"
        )

    async def open(self) -> None:
        from azure.cosmos.aio import CosmosClient

        options: dict[str, Any] = {
            "retry_total": self.retry_total,
            "retry_backoff_max": max(1, int(self.timeout)),
            "connection_timeout": max(1, int(self.timeout)),
            "read_timeout": self.timeout,
            "timeout": self.timeout,  # each operation's, its retries included
        }
        if not self.verify_tls:  # a local server: self-signed, and its one endpoint only
            options.update(connection_verify=False, enable_endpoint_discovery=False)
        credential: Any = self.key
        if credential is None:  # Entra ID: managed identity, workload identity, az login...
            from azure.identity.aio import DefaultAzureCredential

            credential = self._credential = DefaultAzureCredential()
        self._client = CosmosClient(self.url, credential=credential, **options)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()
        credential, self._credential = self._credential, None
        if credential is not None:
            await credential.close()

    async def count(self, kind: Kind) -> int:
        with self._reading(kind) as container:
            counts: AsyncIterator[Any] = container.query_items("SELECT VALUE COUNT(1) FROM c")
            # One value; summed all the same, in case a partial count per range comes back.
            return sum([int(value) async for value in counts])

    async def page(self, kind: Kind, after: str | None, size: int) -> LegacyPage:
        last = None if after is None else _item_id(decode_position(kind, after))
        # One item past the page (TOP size + 1): the last page knows it is the last.
        where, parameters = ("", []) if last is None else ("WHERE c.id > @after ", [last])
        sql = f"SELECT TOP {int(size) + 1} * FROM c {where}ORDER BY c.id"  # noqa: S608 - an int, a fixed clause
        with self._reading(kind) as container:
            found = container.query_items(
                sql,
                parameters=[{"name": "@after", "value": v} for v in parameters],
                max_item_count=size + 1,
            )
            items = [item async for item in found]
        return page_of(kind, [LegacyRow(str(item["id"]), _plain(item)) for item in items], size)

    @contextmanager
    def _reading(self, kind: Kind) -> Iterator[ContainerProxy]:
        """The container of ``kind``; throttling and outages become ``SourceUnavailable``."""
        from azure.core.exceptions import ServiceRequestError, ServiceResponseError
        from azure.cosmos.exceptions import CosmosClientTimeoutError, CosmosHttpResponseError

        if self._client is None:
            raise SourceUnavailable("the Cosmos DB source is not open")
        database = self._client.get_database_client(self.database)
        try:
            yield database.get_container_client(self.containers[kind])
        except CosmosHttpResponseError as error:
            if error.status_code is None or error.status_code in TRANSIENT:
                raise SourceUnavailable(
                    f"Cosmos DB {error.status_code}: {error.message}"
                ) from error
            raise
        except (
            ServiceRequestError,
            ServiceResponseError,
            CosmosClientTimeoutError,
            TimeoutError,
        ) as error:
            raise SourceUnavailable(f"Cosmos DB unreachable: {error}") from error


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in item.items() if name not in SYSTEM_FIELDS}


def _item_id(value: str) -> str:
    """A decoded position, checked to be an id Cosmos DB can hold."""
    if len(value) > 255 or NOT_IN_AN_ID & set(value):
        raise ValueError(f"not a Cosmos DB item id: {value!r}")
    return value
