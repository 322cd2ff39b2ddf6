"""Cosmos DB (NoSQL API) store, through ``azure.cosmos.aio``.

Containers ``posts`` and ``profiles``, partitioned on ``/id``: a read is a point read, a
page one keyset query (never ``OFFSET``), an update or delete conditional on the ETag
read, a delete a conditional patch into the post's tombstone (``cosmos_changes``: the
live feed). A 404 means "no such post" only for the item's own request: while the
database or container is missing, every call is ``DatabaseUnavailable``. Layout, indexing
policy, request charges and scale: README, "The Cosmos DB store".
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from gql_api.domain.records import (
    PostChange,
    PostChanges,
    PostRecord,
    ProfileRecord,
    apply_changes,
)
from gql_api.stores.base import (
    NoSuchPost,
    PageQuery,
    PostPage,
    is_storable_post_id,
    lost_race,
    opened,
    page_of,
    profile_document_id,
    storable_post,
    stored_post_id,
    translated,
    with_etag,
)
from gql_api.stores.cosmos_changes import (
    CODEC,
    DELETED,
    etag_of,
    follow,
    is_tombstone,
    owner_missing,
    post_record,
    recreate,
    tombstone,
    written,
)
from gql_api.stores.keyset import parse_position, position_of

if TYPE_CHECKING:
    from azure.cosmos.aio import ContainerProxy, CosmosClient, DatabaseProxy

log = logging.getLogger(__name__)

PARTITION_KEY = "/id"
POSTS = "posts"
PROFILES = "profiles"
COMPOSITE_INDEXES = [
    [{"path": "/createdUs", "order": "descending"}, {"path": "/id", "order": "descending"}],
    [
        {"path": "/authorId", "order": "ascending"},
        {"path": "/createdUs", "order": "descending"},
        {"path": "/id", "order": "descending"},
    ],
]
INDEXING_POLICY: dict[str, Any] = {
    "indexingMode": "consistent",
    "automatic": True,
    "includedPaths": [{"path": "/*"}],
    "excludedPaths": [
        {"path": "/content/?"},
        {"path": '/"_etag"/?'},
        {"path": "/prior/*"},  # a version carried for the live feed: never queried
    ],
    "compositeIndexes": COMPOSITE_INDEXES,
}


class CosmosStore:
    name = "cosmos"

    def __init__(
        self,
        url: str,
        *,
        key: str | None = None,
        database: str = "gql-api",
        verify_tls: bool = True,
        timeout: float = 5.0,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.url = url
        self.client_options = dict(client_options or {})  # extra CosmosClient keywords
        self.key = key
        self.database_name = database
        self.verify_tls = verify_tls
        self.timeout = timeout
        self.last_charge: float | None = None  # request charge of the last response (RU)
        self._client: CosmosClient | None = None
        self._credential: Any = None

    # --- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        from azure.cosmos.aio import CosmosClient

        if self.key is not None:
            credential: Any = self.key
        else:  # Entra ID: managed identity, workload identity, az login...
            from azure.identity.aio import DefaultAzureCredential

            credential = self._credential = DefaultAzureCredential()
        options: dict[str, Any] = {
            "retry_total": 3,
            "retry_backoff_max": max(1, int(self.timeout)),
            "connection_timeout": max(1, int(self.timeout)),
            "read_timeout": self.timeout,
        }
        if not self.verify_tls:  # a local server: self-signed, and its one endpoint only
            options.update(connection_verify=False, enable_endpoint_discovery=False)
        self._client = CosmosClient(
            self.url, credential=credential, **options, **self.client_options
        )

    async def close(self) -> None:
        client, self._client = self._client, None
        credential, self._credential = self._credential, None
        if client is not None:
            await client.close()
        if credential is not None:
            await credential.close()

    async def ping(self) -> None:
        async with self._calling() as database:
            await database.read()

    # --- posts -------------------------------------------------------------------------

    async def get(self, post_id: str) -> PostRecord | None:
        from azure.cosmos.exceptions import CosmosResourceNotFoundError

        if not is_storable_post_id(post_id):
            return None
        async with self._calling() as database:
            try:
                item = await database.get_container_client(POSTS).read_item(
                    post_id, partition_key=post_id, response_hook=self._charged("get")
                )
            except CosmosResourceNotFoundError as error:
                if owner_missing(error):
                    raise  # _calling: the database or the container is missing
                return None
        return None if is_tombstone(item) else post_record(item)

    async def create(self, post: PostRecord) -> PostRecord:
        from azure.cosmos.exceptions import CosmosResourceExistsError

        document = written(storable_post(post))
        async with self._calling() as database:
            posts = database.get_container_client(POSTS)
            try:
                item = await posts.create_item(document, response_hook=self._charged("create"))
            except CosmosResourceExistsError:  # a post, or the tombstone of one
                item = await recreate(posts, document, self._charged("create"))
        return post_record(item)

    async def update(self, current: PostRecord, changes: PostChanges) -> PostRecord:
        async with self._conditional(current) as (posts, condition, current):
            body = written(apply_changes(current, changes), replaced=current)
            item = await posts.replace_item(
                current.id, body, **condition, response_hook=self._charged("update")
            )
        return post_record(item)

    async def delete(self, current: PostRecord) -> None:
        async with self._conditional(current) as (posts, condition, current):
            await posts.patch_item(
                current.id,
                current.id,
                tombstone(),
                **condition,
                response_hook=self._charged("delete"),
            )

    async def list_posts(self, query: PageQuery) -> PostPage:
        conditions = [f"NOT IS_DEFINED(c.{DELETED})"]  # tombstones are no posts
        parameters: list[dict[str, Any]] = []
        if query.tag is not None:
            conditions.append("ARRAY_CONTAINS(c.tags, @tag)")
            parameters.append({"name": "@tag", "value": query.tag})
        if query.author_id is not None:
            conditions.append("c.authorId = @author")
            parameters.append({"name": "@author", "value": query.author_id})
        if query.after is not None:
            micros, post_id = parse_position(query.after)
            conditions.append("(c.createdUs < @created OR (c.createdUs = @created AND c.id < @id))")
            parameters += [{"name": "@created", "value": micros}, {"name": "@id", "value": post_id}]
        sql = (
            f"SELECT TOP {int(query.first) + 1} * FROM c WHERE {' AND '.join(conditions)} "
            "ORDER BY c.createdUs DESC, c.id DESC"
        )
        async with self._calling() as database:
            pages = database.get_container_client(POSTS).query_items(
                sql,
                parameters=parameters,
                max_item_count=query.first + 1,
                response_hook=self._charged("page"),
            )
            items = [item async for item in pages]
        return page_of([post_record(item) for item in items], query.first, position_of)

    async def get_profiles(self, user_ids: Sequence[str]) -> Mapping[str, ProfileRecord]:
        if not user_ids:
            return {}
        by_item = {profile_document_id(uid): uid for uid in user_ids}
        async with self._calling() as database:
            pages = database.get_container_client(PROFILES).query_items(
                "SELECT c.id, c.nickname, c.updatedUs FROM c WHERE ARRAY_CONTAINS(@ids, c.id)",
                parameters=[{"name": "@ids", "value": list(by_item)}],
                response_hook=self._charged("profiles"),
            )
            items = [item async for item in pages]
        return {
            by_item[item["id"]]: CODEC.profile_record(by_item[item["id"]], item) for item in items
        }

    async def put_profile(self, profile: ProfileRecord) -> ProfileRecord:
        body = {"id": profile_document_id(profile.user_id), **CODEC.profile(profile)}
        async with self._calling() as database:
            await database.get_container_client(PROFILES).upsert_item(
                body, response_hook=self._charged("profile")
            )
        return profile

    # --- provisioning and checks -------------------------------------------------------

    async def provision(self) -> str:
        from azure.cosmos import PartitionKey

        async with self._calling(existing=False) as database_name:
            assert self._client is not None
            database = await self._client.create_database_if_not_exists(database_name)
            for container_id in (POSTS, PROFILES):
                container = await database.create_container_if_not_exists(
                    container_id,
                    partition_key=PartitionKey(path=PARTITION_KEY),
                    indexing_policy=INDEXING_POLICY if container_id == POSTS else None,
                    default_ttl=-1 if container_id == POSTS else None,
                )
                if container_id == POSTS:
                    properties = await container.read()
                    if not _has_indexes(properties) or not _has_ttl(properties):
                        await database.replace_container(
                            container,
                            partition_key=PartitionKey(path=PARTITION_KEY),
                            indexing_policy=INDEXING_POLICY,
                            default_ttl=-1,  # on, no expiry but a tombstone's own ttl
                        )
        return f"database {database_name}: containers {POSTS} and {PROFILES} ready"

    async def inspect(self) -> list[tuple[bool, str]]:
        from azure.cosmos.exceptions import CosmosResourceNotFoundError

        fix = "run `gql-api provision`"
        checks: list[tuple[bool, str]] = []
        async with self._calling() as database:
            try:
                await database.read()
            except CosmosResourceNotFoundError:
                return [(False, f"database {self.database_name}: not found; fix: {fix}")]
            checks.append((True, f"database {self.database_name}: exists"))
            for container_id in (POSTS, PROFILES):
                try:
                    properties = await database.get_container_client(container_id).read()
                except CosmosResourceNotFoundError:
                    checks.append((False, f"container {container_id}: not found; fix: {fix}"))
                    continue
                paths = properties.get("partitionKey", {}).get("paths")
                checks.append(
                    (
                        paths == [PARTITION_KEY],
                        f"container {container_id}: partition key {paths}"
                        + (
                            ""
                            if paths == [PARTITION_KEY]
                            else f"; fix: recreate it with {PARTITION_KEY}"
                        ),
                    )
                )
                if container_id == POSTS:
                    ok = _has_indexes(properties)
                    checks.append(
                        (
                            ok,
                            f"container {POSTS}: composite indexes "
                            + ("present" if ok else f"missing; fix: {fix}"),
                        )
                    )
                    ok = _has_ttl(properties)
                    checks.append(
                        (
                            ok,
                            f"container {POSTS}: time to live "
                            + ("on (defaultTtl -1)" if ok else f"off; fix: {fix}"),
                        )
                    )
        return checks

    # --- internals ---------------------------------------------------------------------

    def _charged(self, operation: str) -> Any:
        def hook(headers: Mapping[str, str], _result: Any) -> None:
            charge = headers.get("x-ms-request-charge")
            self.last_charge = None if charge is None else float(charge)
            log.debug("cosmos %s: %s RU", operation, charge)

        return hook

    async def changes(self) -> AsyncIterator[PostChange]:
        """Every process's writes of posts from now: the change feed (``cosmos_changes``)."""
        return await follow(self)

    @asynccontextmanager
    async def _conditional(
        self, current: PostRecord
    ) -> AsyncIterator[tuple[ContainerProxy, dict[str, Any], PostRecord]]:
        """A write on the item as read (its ETag), with the record as read; else
        NoSuchPost or VersionConflict."""
        from azure.core import MatchConditions
        from azure.cosmos.exceptions import (
            CosmosAccessConditionFailedError,
            CosmosResourceNotFoundError,
        )

        stored_post_id(current.id)
        current = await with_etag(current, self.get)
        assert current.etag is not None
        condition = {
            "etag": etag_of(current.etag),
            "match_condition": MatchConditions.IfNotModified,
        }
        async with self._calling() as database:
            try:
                yield database.get_container_client(POSTS), condition, current
            except CosmosResourceNotFoundError as error:
                if owner_missing(error):
                    raise  # _calling: the database or the container is missing
                raise NoSuchPost(current.id) from None
            except CosmosAccessConditionFailedError:
                raise await lost_race(current.id, self.get) from None

    @asynccontextmanager
    async def _calling(self, *, existing: bool = True) -> AsyncIterator[Any]:
        """The database proxy (or, for provisioning, its name), SDK outages translated."""
        client = opened(self._client)
        target: DatabaseProxy | str = (
            client.get_database_client(self.database_name) if existing else self.database_name
        )
        with translated(self._outage):
            yield target

    def _outage(self, error: Exception) -> str | None:
        from azure.core.exceptions import (
            ClientAuthenticationError,
            ServiceRequestError,
            ServiceResponseError,
        )
        from azure.cosmos.exceptions import CosmosHttpResponseError

        if isinstance(
            error, ServiceRequestError | ServiceResponseError | ClientAuthenticationError
        ):
            return f"Cosmos DB unreachable: {error}"
        if not isinstance(error, CosmosHttpResponseError):
            return None
        if error.status_code in (401, 403, 408, 429, 449, 500, 503) or error.status_code is None:
            return f"Cosmos DB {error.status_code}: {error.message}"
        if error.status_code == 404:
            # A point read or write that finds no item handles its 404 itself; one that
            # gets here (a query, a create, the ping) means that the database or a
            # container is missing: not the client's fault, and not a crash.
            return (
                f"Cosmos DB: database {self.database_name} or one of its containers "
                "is missing; run `gql-api provision`"
            )
        return None


def _has_indexes(properties: Mapping[str, Any]) -> bool:
    present = properties.get("indexingPolicy", {}).get("compositeIndexes", [])
    return all(index in present for index in COMPOSITE_INDEXES)


def _has_ttl(properties: Mapping[str, Any]) -> bool:
    """Time to live on, with no expiry of its own: tombstones expire by their ``ttl``."""
    return properties.get("defaultTtl") == -1
