"""Pagination cost against depth: page 40 versus page 1 over 5,000 posts, on each store.

Keyset pages should cost the same however deep they are. For every store (SQLite on a
file; DynamoDB, Firestore and Cosmos DB against their local servers, started here;
DynamoDB twice, on moto server and on dynalite, a DynamoDB server on LevelDB whose
index reads are key ranges as in DynamoDB, installed by `make bench`) the
bench writes the posts, walks to page 40 once to get its cursor, then times page 1
and page 40 alternately and prints the median of each and their ratio (goal: <= 1.3).
Usage: python bench/page_depth.py [--stores sqlite,dynamodb,dynalite,firestore,cosmos]
       [--posts 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gql_api.domain.records import PostRecord  # noqa: E402
from gql_api.domain.service import PostService  # noqa: E402
from gql_api.stores.base import PostStore  # noqa: E402
from tests import servers  # noqa: E402
from tests.helpers import free_port  # noqa: E402

PAGE = 100  # first: 100, so page 40 starts after 3,900 posts
DEPTH = 40
SAMPLES = 15


DYNALITE = ROOT / "bench" / "dynalite" / "node_modules" / "dynalite" / "cli.js"


@contextlib.contextmanager
def local_server(name: str) -> Iterator[str | None]:
    if name in ("dynamodb", "dynalite"):
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    if name == "dynamodb":
        with servers.moto_server() as url:
            yield url
    elif name == "dynalite":
        if not DYNALITE.exists():
            raise SystemExit("dynalite is not installed: npm ci --prefix bench/dynalite")
        port = free_port()
        command = ["node", str(DYNALITE), "--host", "127.0.0.1", "--port", str(port)]
        with servers.running(command, f"http://127.0.0.1:{port}/"):
            yield f"http://127.0.0.1:{port}"
    elif name == "firestore":
        with servers.firestore_emulator() as host:
            os.environ["FIRESTORE_EMULATOR_HOST"] = host
            yield host
    elif name == "cosmos":
        with servers.cosmos_server() as url:
            yield url
    else:
        yield None


@contextlib.asynccontextmanager
async def opened(name: str, address: str | None, folder: Path) -> AsyncIterator[PostStore]:
    store: PostStore
    if name == "sqlite":
        from gql_api.stores.sqlite import SqliteStore

        store = SqliteStore(folder / "bench.db")
    elif name in ("dynamodb", "dynalite"):
        from gql_api.stores.dynamodb import DynamoDBStore

        store = DynamoDBStore("gql-api-bench", endpoint_url=address, timeout=30)
    elif name == "firestore":
        from gql_api.stores.firestore import FirestoreStore

        store = FirestoreStore("demo-gql-api-bench", timeout=30)
    else:
        from gql_api.stores.cosmos import CosmosStore
        from tests.conftest import COSMOS_KEY as key

        assert address is not None
        store = CosmosStore(address, key=key, database="bench", verify_tls=False, timeout=30)
    await store.open()
    try:
        await store.provision()
        yield store
    finally:
        await store.close()


def bench_post(i: int) -> PostRecord:
    return PostRecord(
        id=f"bench{i:06d}",
        author_id=f"user{i % 20}",
        content=f"post number {i}",
        is_markdown=False,
        tags=("bench",),
        image_keys=(),
        created_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=i),
        updated_at=None,
        version=1,
    )


async def seed(store: PostStore, count: int) -> None:
    if store.name == "dynamodb":
        await seed_dynamodb(store, count)
        return
    semaphore = asyncio.Semaphore(4)

    async def one(i: int) -> None:
        async with semaphore:
            await store.create(bench_post(i))

    await asyncio.gather(*(one(i) for i in range(count)))


async def seed_dynamodb(store: PostStore, count: int) -> None:
    """The store's own items, written 25 at a time with BatchWriteItem.

    moto serves one request at a time and slows down as its table grows: 5,000
    transactional creates took it many minutes and once stopped it answering. The
    pages read are the same items a create writes (the post and its tag entry).
    """
    from gql_api.stores.dynamodb import DynamoDBStore
    from gql_api.stores.dynamodb_table import tag_item

    assert isinstance(store, DynamoDBStore)
    items = []
    for i in range(count):
        post = bench_post(i)
        items.append(store._post_item(post))
        items += [tag_item(post, tag) for tag in post.tags]
    async with store._calling() as client:
        for start in range(0, len(items), 25):
            requests = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
            pending: Any = {store.table: requests}
            while pending:
                answer = await client.batch_write_item(RequestItems=pending)
                pending = answer.get("UnprocessedItems") or None


async def measure(name: str, posts: int) -> tuple[float, float]:
    with local_server(name) as address, tempfile.TemporaryDirectory() as scratch:
        async with opened(name, address, Path(scratch)) as store:
            await seed(store, posts)
            service = PostService(store, timeout=30)
            after = None
            for _ in range(DEPTH - 1):  # the cursor that opens page 40
                page = await service.list_posts(first=PAGE, after=after)
                after = page.end_cursor
            first: list[float] = []
            deep: list[float] = []
            for _ in range(SAMPLES):
                for cursor, times in ((None, first), (after, deep)):
                    started = time.perf_counter()
                    page = await service.list_posts(first=PAGE, after=cursor)
                    times.append(time.perf_counter() - started)
                    assert len(page.edges) == PAGE
            return statistics.median(first), statistics.median(deep)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default="sqlite,dynamodb,dynalite,firestore,cosmos")
    parser.add_argument("--posts", type=int, default=5000)
    options = parser.parse_args()
    print(f"page {DEPTH} vs page 1 (first: {PAGE}) over {options.posts} posts, median of {SAMPLES}")
    print(f"{'store':<10}{'page 1 ms':>11}{'page 40 ms':>12}{'ratio':>8}")
    for name in options.stores.split(","):
        first, deep = asyncio.run(measure(name, options.posts))
        print(f"{name:<10}{first * 1000:>11.2f}{deep * 1000:>12.2f}{deep / first:>8.2f}")


if __name__ == "__main__":
    main()
