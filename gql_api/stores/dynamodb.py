"""DynamoDB store: one table, four global secondary indexes, aioboto3's async client.

Posts, their tag entries and profiles share the table; every read is a key lookup or
one key range, every write one transaction. The item layout, the indexes and what
happens at a million posts and a thousand writes a second: README, "The DynamoDB
store" (and ``table_definition``, which `gql-api provision` and the SAM template share).
The change feed reads the table's stream: ``dynamodb_streams``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gql_api.domain.records import PostChange, PostChanges, PostRecord, ProfileRecord, apply_changes
from gql_api.stores.base import (
    AlreadyExists,
    DatabaseUnavailable,
    NoSuchPost,
    PageQuery,
    PostPage,
    VersionConflict,
    is_storable_post_id,
    lost_race,
    opened,
    storable_post,
    stored_post_id,
    translated,
)
from gql_api.stores.dynamodb_table import (
    CODEC,
    FIX,
    INDEXES,
    SORT_KEY,
    STREAM,
    compare,
    id_of,
    outage,
    plain,
    post_key,
    profile_key,
    record_of,
    sort_key,
    table_definition,
    tag_item,
    tag_key,
    typed,
)
from gql_api.stores.keyset import parse_position, position_of, to_micros

if TYPE_CHECKING:
    import aioboto3
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_dynamodb.type_defs import WaiterConfigTypeDef

log = logging.getLogger(__name__)

LOCAL_REGION = "us-east-1"  # for local servers when no region is configured
BATCH_GET_ATTEMPTS = 5


class DynamoDBStore:
    name = "dynamodb"

    def __init__(
        self,
        table: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        timeout: float = 5.0,
        feed_shards: int = 1,
    ) -> None:
        self.table = table
        self.endpoint_url = endpoint_url
        self.region = region
        self.timeout = timeout
        self.feed_shards = feed_shards
        self._client: DynamoDBClient | None = None
        self._exit_stack: contextlib.AsyncExitStack | None = None
        self._session: aioboto3.Session | None = None
        self._options: dict[str, Any] = {}  # region, endpoint, config: for both clients
        self._streams: Any = None  # the streams client (no stubs of it among the dev dependencies)
        self._streams_lock = asyncio.Lock()

    # --- lifecycle ---------------------------------------------------------------------

    def prepare(self) -> None:
        """Import the SDK and load DynamoDB's model and endpoint data, opening nothing.

        Lambda calls this in the init phase, which runs at full CPU and which a
        SnapStart snapshot captures, so the first request only makes the client (a few
        milliseconds). No connection is opened and no credential is read: both come
        with the client, after any snapshot restore.
        """
        if self._session is not None:
            return
        import aioboto3

        session = aioboto3.Session()
        loader = session._session.get_component("data_loader")  # botocore's own loader
        loader.load_service_model("dynamodb", "service-2")
        loader.load_service_model("dynamodb", "endpoint-rule-set-1")
        for name in ("endpoints", "partitions", "_retry", "sdk-default-configuration"):
            loader.load_data(name)
        self._session = session

    async def open(self) -> None:
        from aiobotocore.config import AioConfig

        self.prepare()
        session = self._session
        assert session is not None  # made by prepare()
        region = self.region or session.region_name
        if region is None:
            if self.endpoint_url is None:
                raise DatabaseUnavailable("no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION)")
            region = LOCAL_REGION
        config = AioConfig(
            connect_timeout=min(self.timeout, 3.0),
            read_timeout=self.timeout,
            retries={"mode": "standard", "total_max_attempts": 3},
            max_pool_connections=50,
        )
        self._options = dict(region_name=region, endpoint_url=self.endpoint_url, config=config)
        stack = contextlib.AsyncExitStack()
        self._client = await stack.enter_async_context(session.client("dynamodb", **self._options))
        self._exit_stack = stack

    async def close(self) -> None:
        stack, self._exit_stack, self._client = self._exit_stack, None, None
        self._streams = None
        if stack is not None:
            await stack.aclose()

    async def ping(self) -> None:
        # A data-plane read (DescribeTable is rate-limited per account): half a read unit.
        async with self._calling() as client:
            await client.get_item(TableName=self.table, Key=post_key("healthz-probe"))

    # --- posts -------------------------------------------------------------------------

    async def get(self, post_id: str) -> PostRecord | None:
        if not is_storable_post_id(post_id):
            return None
        async with self._calling() as client:
            answer = await client.get_item(
                TableName=self.table, Key=post_key(post_id), ConsistentRead=True
            )
        item = answer.get("Item")
        return None if item is None else record_of(item)

    async def create(self, post: PostRecord) -> PostRecord:
        writes: list[Any] = [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": self._post_item(storable_post(post)),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        ]
        writes += [{"Put": {"TableName": self.table, "Item": tag_item(post, t)}} for t in post.tags]
        await self._transact(writes, post.id, creating=True)
        return post

    async def update(self, current: PostRecord, changes: PostChanges) -> PostRecord:
        updated = apply_changes(current, changes)
        fields = typed(CODEC.changed(updated))
        writes: list[Any] = [
            {
                "Update": {
                    "TableName": self.table,
                    "Key": post_key(stored_post_id(current.id)),
                    # Placeholders for every name: none can collide with a reserved word.
                    "UpdateExpression": "SET " + ", ".join(f"#{n} = :{n}" for n in fields),
                    "ConditionExpression": "#version = :read",
                    "ExpressionAttributeNames": {f"#{name}": name for name in fields},
                    "ExpressionAttributeValues": {
                        **{f":{name}": value for name, value in fields.items()},
                        ":read": {"N": str(current.version)},
                    },
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            }
        ]
        removed = [t for t in current.tags if t not in changes.tags]
        added = [t for t in changes.tags if t not in current.tags]
        writes += [
            {"Delete": {"TableName": self.table, "Key": tag_key(current.id, t)}} for t in removed
        ]
        writes += [{"Put": {"TableName": self.table, "Item": tag_item(updated, t)}} for t in added]
        await self._transact(writes, current.id)
        return updated

    async def delete(self, current: PostRecord) -> None:
        writes: list[Any] = [
            {
                "Delete": {
                    "TableName": self.table,
                    "Key": post_key(stored_post_id(current.id)),
                    "ConditionExpression": "version = :read",
                    "ExpressionAttributeValues": {":read": {"N": str(current.version)}},
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            }
        ]
        writes += [
            {"Delete": {"TableName": self.table, "Key": tag_key(current.id, t)}}
            for t in current.tags
        ]
        await self._transact(writes, current.id)

    async def list_posts(self, query: PageQuery) -> PostPage:
        after = None
        if query.after is not None:
            micros, post_id = parse_position(query.after)
            after = sort_key(micros, post_id)
        limit = query.first + 1
        if query.tag is not None:
            if query.author_id is None:
                index, key = "tag", f"TAG#{query.tag}"
            else:
                index, key = "tagAuthor", f"TAG#{query.tag} {query.author_id}"
            entries = await self._query(index, key, after, limit)
            posts = await self._batch_get([id_of(e) for e in entries[: query.first]])
            has_next = len(entries) > query.first
        elif query.author_id is not None:
            items = await self._query("author", f"AUTHOR#{query.author_id}", after, limit)
            posts, has_next = [record_of(i) for i in items[: query.first]], len(items) > limit - 1
        else:
            shards = await asyncio.gather(
                *(self._query("feed", f"FEED#{n}", after, limit) for n in range(self.feed_shards))
            )
            merged = sorted(
                (item for shard in shards for item in shard),
                key=lambda i: i[SORT_KEY]["S"],
                reverse=True,
            )
            posts, has_next = [record_of(i) for i in merged[: query.first]], len(merged) >= limit
        return PostPage(
            posts=posts, cursors=[position_of(p) for p in posts], has_next_page=has_next
        )

    async def get_profiles(self, user_ids: Sequence[str]) -> Mapping[str, ProfileRecord]:
        items = await self._batch_get_items([profile_key(uid) for uid in user_ids])
        return {
            (user_id := item["pk"]["S"].removeprefix("PROFILE#")): CODEC.profile_record(
                user_id, plain(item)
            )
            for item in items
        }

    async def put_profile(self, profile: ProfileRecord) -> ProfileRecord:
        item = {**profile_key(profile.user_id), **typed(CODEC.profile(profile))}
        async with self._calling() as client:
            await client.put_item(TableName=self.table, Item=item)
        return profile

    async def changes(self) -> AsyncIterator[PostChange]:
        """Every process's writes, as the table's stream holds them (``dynamodb_streams``)."""
        from gql_api.stores.dynamodb_streams import StreamFollower  # only where one follows

        async with self._streams_lock:  # one streams client, opened by the first follower
            if self._streams is None:
                self._streams = await opened(self._exit_stack).enter_async_context(
                    opened(self._session).client("dynamodbstreams", **self._options)
                )
        async with self._calling() as client:
            return await StreamFollower.open(client, lambda: opened(self._streams), self.table)

    # --- provisioning and checks -------------------------------------------------------

    async def provision(self) -> str:
        async with self._calling() as client:
            try:
                await client.create_table(**table_definition(self.table))
                created = True
            except client.exceptions.ResourceInUseException:
                created = False
            waiter = client.get_waiter("table_exists")
            waiting: WaiterConfigTypeDef = {"Delay": 1, "MaxAttempts": 120}
            await waiter.wait(TableName=self.table, WaiterConfig=waiting)
            described = (await client.describe_table(TableName=self.table))["Table"]
            # A table made before the live feed gets its stream (another view is only reported).
            if streamless := not described.get("StreamSpecification", {}).get("StreamEnabled"):
                await client.update_table(TableName=self.table, StreamSpecification=STREAM)
                await waiter.wait(TableName=self.table, WaiterConfig=waiting)
        problems = [line for ok, line in await self.inspect() if not ok]
        if problems:
            raise DatabaseUnavailable("; ".join(problems))
        done = "created" if created else "already there" + (", stream added" if streamless else "")
        return f"table {self.table} {done}, indexes and stream ok"

    async def inspect(self) -> list[tuple[bool, str]]:
        """The table and its indexes, compared with what this store expects."""
        from botocore.exceptions import ClientError

        try:
            async with self._calling(translate=False) as client:
                described = (await client.describe_table(TableName=self.table))["Table"]
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException":
                return [(False, f"table {self.table}: not found; fix: {FIX}")]
            return [
                (
                    False,
                    f"table {self.table}: cannot describe it ({code}); fix: grant "
                    "dynamodb:DescribeTable and check credentials and region",
                )
            ]
        return compare(self.table, described)

    # --- internals ---------------------------------------------------------------------

    def _post_item(self, post: PostRecord) -> dict[str, Any]:
        return {
            **post_key(post.id),
            **typed(CODEC.post(post)),
            "feedPk": {"S": f"FEED#{self._shard(post.id)}"},
            "authorPk": {"S": f"AUTHOR#{post.author_id}"},
            SORT_KEY: {"S": sort_key(to_micros(post.created_at), post.id)},
        }

    def _shard(self, post_id: str) -> int:
        if self.feed_shards == 1:
            return 0
        digest = hashlib.blake2b(post_id.encode(), digest_size=4).digest()
        return int.from_bytes(digest, "big") % self.feed_shards

    async def _query(
        self, index: str, partition: str, after: str | None, limit: int
    ) -> list[dict[str, Any]]:
        key_attribute = INDEXES[index][0]
        condition = "#pk = :pk"
        names = {"#pk": key_attribute}
        values: dict[str, Any] = {":pk": {"S": partition}}
        if after is not None:
            condition += " AND #sk < :after"
            names["#sk"] = SORT_KEY
            values[":after"] = {"S": after}
        request: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": index,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
        }
        items: list[dict[str, Any]] = []
        async with self._calling() as client:
            while True:  # more than one Query only when 1 MB of items came first
                answer = await client.query(**request, Limit=limit - len(items))
                items += answer.get("Items", [])
                last = answer.get("LastEvaluatedKey")
                if len(items) >= limit or not last:
                    return items
                request["ExclusiveStartKey"] = last

    async def _batch_get(self, post_ids: list[str]) -> list[PostRecord]:
        """The posts in the order asked; posts deleted since the index was read are skipped."""
        items = await self._batch_get_items([post_key(pid) for pid in post_ids])
        by_id = {item["id"]["S"]: record_of(item) for item in items}
        return [by_id[pid] for pid in post_ids if pid in by_id]

    async def _batch_get_items(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for start in range(0, len(keys), 100):
            pending: dict[str, Any] = {self.table: {"Keys": keys[start : start + 100]}}
            for attempt in range(BATCH_GET_ATTEMPTS):
                async with self._calling() as client:
                    answer = await client.batch_get_item(RequestItems=pending)
                found += answer.get("Responses", {}).get(self.table, [])
                pending = dict(answer.get("UnprocessedKeys") or {})
                if not pending:
                    break
                await asyncio.sleep(0.05 * 2**attempt)  # throttled: back off, then the rest
            else:
                raise DatabaseUnavailable("DynamoDB kept throttling BatchGetItem")
        return found

    async def _transact(self, writes: list[Any], post_id: str, *, creating: bool = False) -> None:
        async with self._calling() as client:
            try:
                await client.transact_write_items(
                    TransactItems=writes, ClientRequestToken=uuid.uuid4().hex
                )
            except client.exceptions.TransactionCanceledException as error:
                reasons = error.response.get("CancellationReasons", [])
                first = reasons[0] if reasons else {}
                if first.get("Code") == "ConditionalCheckFailed" and creating:
                    raise AlreadyExists(post_id) from None
                if first.get("Code") == "ConditionalCheckFailed":
                    item: dict[str, Any] = dict(first.get("Item") or {})
                    if not item:
                        raise NoSuchPost(post_id) from None
                    raise VersionConflict(int(item["version"]["N"])) from None
                codes = {r.get("Code") for r in reasons}
                if codes & {"ThrottlingError", "ProvisionedThroughputExceeded"}:
                    raise DatabaseUnavailable(f"DynamoDB throttled the write: {codes}") from None
                if "TransactionConflict" in codes:
                    # Another transaction holds the post: report the version it now has.
                    raise await lost_race(post_id, self.get) from None
                raise

    @contextlib.asynccontextmanager
    async def _calling(self, *, translate: bool = True) -> AsyncIterator[DynamoDBClient]:
        """The open client; with ``translate``, SDK outages become ``DatabaseUnavailable``."""
        client = opened(self._client)
        if not translate:
            yield client
            return
        with translated(outage):
            yield client
