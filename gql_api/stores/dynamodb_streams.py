"""The DynamoDB store's change feed: a follower reads the table's stream (DynamoDB Streams,
new and old images) through the streams API. Every process's writes land in the stream;
each item's records stay in one shard, in write order, so one post's changes come out in
version order. A follower polls every open shard from where it began, follows the shards
that split off as the stream's shards close, and turns the post items' records (not the
tag entries' or the profiles') into changes. Delay, cost and limits: README, "The DynamoDB
live feed"."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

from gql_api.domain.records import ChangeKind, PostChange
from gql_api.stores.base import DatabaseUnavailable, translated
from gql_api.stores.dynamodb_table import is_post_key, outage, record_of, stream_check

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

# The streams client: untyped, as types-aiobotocore-dynamodbstreams is not a dev dependency.
StreamsClient = Any

# How often a follower reads each shard: 2 of the 5 GetRecords a second DynamoDB allows per
# shard (all readers together), and the live feed's delay, at most, beside DynamoDB's own.
POLL_SECONDS = 0.5
# How often a follower looks for new shards even when none of its shards ended.
DESCRIBE_SECONDS = 30.0
# Records read from a shard at a time (GetRecords' most).
BATCH = 1000

_KINDS = {"INSERT": ChangeKind.CREATED, "MODIFY": ChangeKind.UPDATED, "REMOVE": ChangeKind.DELETED}


class StreamFollower:
    """One follower of a table's stream, from the moment it was opened. It holds only shard
    iterators (the streams client is the store's, closed with it)."""

    def __init__(
        self,
        client: Callable[[], StreamsClient],
        stream_arn: str,
        shards: Shards,
        iterators: Mapping[str, str],
    ) -> None:
        self._client = client
        self._arn = stream_arn
        self._shards = shards
        self._iterators = dict(iterators)  # shard id -> its next iterator, for shards followed
        # shard id -> where to take a new iterator if this one expires (type, sequence number)
        self._resume: dict[str, tuple[str, str | None]] = dict.fromkeys(iterators, ("LATEST", None))
        self._ready: collections.deque[PostChange] = collections.deque()
        self._polled = 0.0
        self._described = time.monotonic()
        self._describe_now = False
        self._closed = False

    @classmethod
    async def open(
        cls, tables: DynamoDBClient, client: Callable[[], StreamsClient], table: str
    ) -> StreamFollower:
        """Follow ``table``'s stream from now on: each open shard from its latest record
        (``tables`` is the store's DynamoDB client, for the stream's ARN)."""
        with translated(outage):
            described = (await tables.describe_table(TableName=table))["Table"]
            ok, line = stream_check(table, described)
            if not ok:
                raise DatabaseUnavailable(line)
            arn: str = described["LatestStreamArn"]
            _, found = await describe(client(), arn)
            following = [s["ShardId"] for s in found if is_open(s)]
            iterators = await asyncio.gather(
                *(iterator(client(), arn, shard_id, "LATEST") for shard_id in following)
            )
        return cls(client, arn, Shards(found), dict(zip(following, iterators, strict=True)))

    def __aiter__(self) -> StreamFollower:
        return self

    async def __anext__(self) -> PostChange:
        while not self._ready:
            if self._closed:
                raise StopAsyncIteration
            await asyncio.sleep(self._polled + POLL_SECONDS - time.monotonic())
            self._polled = time.monotonic()
            with translated(outage):
                await self._poll()
        return self._ready.popleft()

    async def aclose(self) -> None:
        self._closed = True
        self._iterators.clear()
        self._ready.clear()

    async def _poll(self) -> None:
        elapsed = time.monotonic() - self._described
        # Following no shard (all ended, or none yet): look for new ones at every poll.
        if self._describe_now or elapsed >= DESCRIBE_SECONDS or not self._iterators:
            await self._follow_new_shards()
        shard_ids = list(self._iterators)
        answers = await asyncio.gather(*map(self._read, shard_ids), return_exceptions=True)
        for answer in answers:
            if isinstance(answer, BaseException):
                raise answer
            self._ready.extend(answer)

    async def _read(self, shard_id: str) -> list[PostChange]:
        """The changes of a shard's next records; its iterator moves on past them."""
        client = self._client()
        try:
            answer = await client.get_records(ShardIterator=self._iterators[shard_id], Limit=BATCH)
        except client.exceptions.ExpiredIteratorException:
            # Not read for 15 minutes (the caller stopped pulling): take up where it was.
            kind, after = self._resume[shard_id]
            if kind == "LATEST":  # no record seen yet: where it was is unknown
                raise DatabaseUnavailable("the change feed was not read for 15 minutes") from None
            fresh = await iterator(client, self._arn, shard_id, kind, after)
            answer = await client.get_records(ShardIterator=fresh, Limit=BATCH)
        except client.exceptions.TrimmedDataAccessException:
            raise DatabaseUnavailable("the change feed fell 24 hours behind the stream") from None
        if self._closed:  # closed while this read was under way: nothing more to follow
            return []
        records: list[dict[str, Any]] = answer.get("Records", [])
        if records:
            last = records[-1]["dynamodb"]["SequenceNumber"]
            self._resume[shard_id] = ("AFTER_SEQUENCE_NUMBER", last)
        following = answer.get("NextShardIterator")
        if following is None:  # the shard is closed and read to its end: its children follow
            del self._iterators[shard_id], self._resume[shard_id]
            self._describe_now = True
        else:
            self._iterators[shard_id] = following
        return [change for change in map(change_of, records) if change is not None]

    async def _follow_new_shards(self) -> None:
        self._described, self._describe_now = time.monotonic(), False
        client = self._client()
        status, found = await describe(client, self._arn)
        for shard_id in self._shards.found(found, self._iterators):
            # Begun after this follower began: read from its first record.
            self._iterators[shard_id] = await iterator(client, self._arn, shard_id, "TRIM_HORIZON")
            self._resume[shard_id] = ("TRIM_HORIZON", None)
        if not self._iterators and status in ("DISABLING", "DISABLED"):
            raise DatabaseUnavailable("the table's stream was turned off (or replaced)")


class Shards:
    """The shards a follower knows of, and the new ones waiting for their parent shard to
    be read to its end (so that one item's records still come out in order)."""

    def __init__(self, described: list[dict[str, Any]]) -> None:
        self._known = {shard["ShardId"] for shard in described}
        self.waiting: dict[str, str | None] = {}  # shard id -> its parent's

    def found(self, described: list[dict[str, Any]], following: Collection[str]) -> list[str]:
        """The shards to begin reading now, from a new ``DescribeStream`` answer and the
        shards still being read."""
        for shard in described:
            if shard["ShardId"] not in self._known:
                self.waiting[shard["ShardId"]] = shard.get("ParentShardId")
        # Only what the stream still lists can be new again: the set stays that size.
        self._known = {shard["ShardId"] for shard in described}
        unread = set(following) | set(self.waiting)
        ready = [shard_id for shard_id, parent in self.waiting.items() if parent not in unread]
        for shard_id in ready:
            del self.waiting[shard_id]
        return ready


def change_of(record: Mapping[str, Any]) -> PostChange | None:
    """A stream record as a post's change; None for other items' records."""
    data = record["dynamodb"]
    if not is_post_key(data["Keys"]):
        return None
    kind = _KINDS[record["eventName"]]
    # A deletion's old image: the post as last stored, its author and tags for the filters.
    image = data.get("OldImage" if kind is ChangeKind.DELETED else "NewImage")
    if image is None:
        raise DatabaseUnavailable("the table's stream holds no images of its items")
    return PostChange(kind, record_of(image))


def is_open(shard: Mapping[str, Any]) -> bool:
    """Whether a shard still takes records (a closed one has an ending sequence number)."""
    return "EndingSequenceNumber" not in shard.get("SequenceNumberRange", {})


async def describe(client: StreamsClient, arn: str) -> tuple[str, list[dict[str, Any]]]:
    """The stream's status and every shard it lists (100 a page)."""
    request: dict[str, Any] = {"StreamArn": arn}
    shards: list[dict[str, Any]] = []
    while True:
        answer = (await client.describe_stream(**request))["StreamDescription"]
        shards += answer.get("Shards", [])
        last = answer.get("LastEvaluatedShardId")
        if not last:
            return str(answer.get("StreamStatus", "")), shards
        request["ExclusiveStartShardId"] = last


async def iterator(
    client: StreamsClient, arn: str, shard_id: str, kind: str, after: str | None = None
) -> str:
    request = {"StreamArn": arn, "ShardId": shard_id, "ShardIteratorType": kind}
    if after is not None:
        request["SequenceNumber"] = after
    answer = await client.get_shard_iterator(**request)
    return str(answer["ShardIterator"])
