"""The earlier service's data, in its three layouts, on the local servers: legacy posts
and profiles made up deterministically, written with each cloud's own SDK, and every raw
item dumped again (to check that a migration never wrote into its source)."""

from __future__ import annotations

import asyncio
import base64
import random
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

REGION = "us-east-1"
USERS = [f"user-{n}" for n in range(10)]
TAG_CHOICES = [["Python", "python ", "Go"], ["go", "GO"], ["Rust"], [], ["a", "a", "B"]]
START = datetime(2024, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)


def legacy_posts(n: int, *, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` valid legacy posts, in ``createdAt`` order (distinct, increasing times)."""
    rng = random.Random(seed)  # noqa: S311 - made-up test data, not secrets
    posts = []
    for i in range(n):
        user = USERS[rng.randrange(len(USERS))]
        created = START + timedelta(seconds=i)
        stamp = created.isoformat()
        if i % 7 == 3:
            stamp = stamp.replace("+00:00", "Z")
        elif i % 7 == 5:
            stamp = created.replace(tzinfo=None).isoformat()  # naive: no offset at all
        token = base64.urlsafe_b64encode(rng.randbytes(16)).decode().rstrip("=")  # 22 chars
        images = [[f"{user}/photos/{i}.jpg"], [f"{user}/{token}.png"], [], []][i % 4]
        post: dict[str, Any] = {
            "postId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "userId": user,
            "content": f"post {i} by {user}" + (" **bold**" if i % 3 == 0 else ""),
            "isMarkdown": i % 3 == 0,
            "tags": list(TAG_CHOICES[i % len(TAG_CHOICES)]),
            "imageKeys": images,
            "createdAt": stamp,
        }
        if i % 2 == 0:
            post["nickname"] = f"nick {user}"
        if i % 5 != 4:  # else absent
            later = (created + timedelta(hours=1)).isoformat()
            post["updatedAt"] = later if i % 3 == 1 else None
        posts.append(post)
    return posts


def _ref(row: dict[str, Any]) -> str | None:
    """A row's own name in the source (its sort key, document or item id), when a test
    gives one: two rows of one postId (a duplicate) need two names."""
    ref: str | None = row.get("_ref")
    return ref


def _fields(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "_ref"}


def legacy_profiles(users: Sequence[str] = USERS) -> list[dict[str, Any]]:
    profiles: list[dict[str, Any]] = []
    for i, user in enumerate(users):
        profile: dict[str, Any] = {"userId": user, "nickname": f"Nick {i}"}
        if i % 2:
            profile["updatedAt"] = (START + timedelta(days=i)).isoformat()
        profiles.append(profile)
    return profiles


# --- DynamoDB ----------------------------------------------------------------------------


def _dynamodb(url: str) -> Any:
    import aioboto3

    return aioboto3.Session().client("dynamodb", region_name=REGION, endpoint_url=url)


def _attribute(value: Any) -> dict[str, Any]:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float | Decimal):
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, set | frozenset):
        return {"SS": sorted(value)}
    if isinstance(value, dict):
        return {"M": {k: _attribute(v) for k, v in value.items()}}
    return {"L": [_attribute(entry) for entry in value]}


async def seed_dynamodb(
    url: str, table: str, posts: list[dict[str, Any]], profiles: list[dict[str, Any]]
) -> None:
    """The legacy table (PK/SK, GSI PostIdIndex) with these posts and profiles."""
    items = [
        {
            "PK": {"S": "POSTS"},
            "SK": {"S": _ref(p) or f"{p['createdAt']}#{p['postId']}"}
            if _ref(p) or ("createdAt" in p and "postId" in p)
            else {"S": f"missing#{n}"},
            **{k: _attribute(v) for k, v in _fields(p).items()},
        }
        for n, p in enumerate(posts)
    ]
    items += [
        {
            "PK": {"S": "PROFILES"},
            "SK": {"S": p["userId"]},
            **{k: _attribute(v) for k, v in p.items()},
        }
        for p in profiles
    ]
    async with _dynamodb(url) as client:
        await client.create_table(
            TableName=table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": name, "AttributeType": "S"} for name in ("PK", "SK", "postId")
            ],
            KeySchema=[
                {"AttributeName": "PK", "KeyType": "HASH"},
                {"AttributeName": "SK", "KeyType": "RANGE"},
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "PostIdIndex",
                    "KeySchema": [{"AttributeName": "postId", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
        )
        # A real DynamoDB (and dynalite) creates the table in the background.
        await client.get_waiter("table_exists").wait(
            TableName=table, WaiterConfig={"Delay": 0.2, "MaxAttempts": 150}
        )
        for start in range(0, len(items), 25):
            pending: Any = {table: [{"PutRequest": {"Item": i}} for i in items[start : start + 25]]}
            while pending:
                answer = await client.batch_write_item(RequestItems=pending)
                pending = answer.get("UnprocessedItems") or None


async def dump_dynamodb(url: str, table: str) -> list[dict[str, Any]]:
    """Every item of the table, raw, in key order."""
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {"TableName": table}
    async with _dynamodb(url) as client:
        while True:
            answer = await client.scan(**request)
            items += answer.get("Items", [])
            if not (last := answer.get("LastEvaluatedKey")):
                break
            request["ExclusiveStartKey"] = last
    return sorted(items, key=lambda i: (i["PK"]["S"], i["SK"]["S"]))


# --- Firestore ---------------------------------------------------------------------------


async def seed_firestore(
    project: str,
    posts: list[dict[str, Any]],
    profiles: list[dict[str, Any]],
    *,
    posts_collection: str = "posts",
    profiles_collection: str = "profiles",
) -> None:
    """Documents named by postId (an automatic id when absent) and userId (emulator only)."""
    from google.cloud import firestore

    client = firestore.AsyncClient(project=project)
    writes = [
        (client.collection(posts_collection), _ref(p) or p.get("postId"), _fields(p)) for p in posts
    ]
    writes += [(client.collection(profiles_collection), p["userId"], p) for p in profiles]
    for start in range(0, len(writes), 500):  # a batch holds 500 writes at most
        batch = client.batch()
        for collection, name, data in writes[start : start + 500]:
            batch.set(collection.document(name) if name else collection.document(), data)
        await batch.commit()
    await _close(client)


async def _close(client: Any) -> None:
    """The client's gRPC channel: the transport's, closed by a coroutine of its own."""
    if client._firestore_api_internal is not None:
        await client._firestore_api_internal.transport.close()


async def dump_firestore(
    project: str, *, posts_collection: str = "posts", profiles_collection: str = "profiles"
) -> list[dict[str, Any]]:
    """Every document of both collections: its path, fields and update time."""
    from google.cloud import firestore

    client = firestore.AsyncClient(project=project)
    documents = []
    for name in (posts_collection, profiles_collection):
        async for snapshot in client.collection(name).stream():
            documents.append(
                {
                    "path": snapshot.reference.path,
                    "data": snapshot.to_dict(),
                    "updated": snapshot.update_time,
                }
            )
    await _close(client)
    return sorted(documents, key=lambda d: str(d["path"]))


# --- Cosmos DB ---------------------------------------------------------------------------


def _cosmos(url: str, key: str) -> Any:
    from azure.cosmos.aio import CosmosClient

    return CosmosClient(
        url, credential=key, connection_verify=False, enable_endpoint_discovery=False
    )


async def seed_cosmos(
    url: str,
    key: str,
    database: str,
    posts: list[dict[str, Any]],
    profiles: list[dict[str, Any]],
) -> None:
    """Database ``database``: containers posts (/postId) and profiles (/userId)."""
    from azure.cosmos import PartitionKey

    async with _cosmos(url, key) as client:
        db = await client.create_database_if_not_exists(database)
        posts_container = await db.create_container_if_not_exists("posts", PartitionKey("/postId"))
        profiles_container = await db.create_container_if_not_exists(
            "profiles", PartitionKey("/userId")
        )
        items = [
            (posts_container, {"id": _ref(p) or p.get("postId") or f"missing-{n}", **_fields(p)})
            for n, p in enumerate(posts)
        ]
        items += [(profiles_container, {"id": p["userId"], **p}) for p in profiles]
        limit = asyncio.Semaphore(8)

        async def create(container: Any, body: dict[str, Any]) -> None:
            async with limit:
                await container.create_item(body)

        await asyncio.gather(*(create(container, body) for container, body in items))


async def dump_cosmos(url: str, key: str, database: str) -> list[dict[str, Any]]:
    """Every item of both containers, raw (system fields included), by container and id."""
    async with _cosmos(url, key) as client:
        db = client.get_database_client(database)
        items = []
        for name in ("posts", "profiles"):
            container = db.get_container_client(name)
            items += [
                {"container": name, **i} async for i in container.query_items("SELECT * FROM c")
            ]
    return sorted(items, key=lambda i: (i["container"], i["id"]))
