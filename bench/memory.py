"""Memory over a long run: the server's RSS after 2,000 requests and after 20,000.

A live `gql-api serve` on SQLite gets a mix of reads (feed pages, posts by id, viewer)
and writes (create, update), 16 at a time; the RSS is read from /proc after 2,000 and
after 20,000 requests. Goal: the second within 10% of the first (no leak).
Usage: python bench/memory.py [--requests 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gql_api.auth import mint_dev_token  # noqa: E402
from gql_api.settings import Settings  # noqa: E402
from tests.helpers import cli_env  # noqa: E402
from tests.servers import gql_api_server  # noqa: E402

SECRET = "memory-bench-secret-0123456789abcdef"
CONCURRENCY = 16


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def traffic(url: str, count: int, token: str, counter: itertools.count[int]) -> None:
    headers = {"authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def worker() -> None:
            while (n := next(counter)) < count:
                kind = n % 10
                if kind == 0:
                    body = {
                        "query": "mutation($c: String!) { createPost(input: {content: $c, "
                        'tags: ["bench"]}) { id } }',
                        "variables": {"c": f"post {n}"},
                    }
                elif kind == 1:
                    body = {"query": '{ posts(first: 1, tag: "bench") { nodes { id } } }'}
                else:
                    body = {
                        "query": "{ posts(first: 20) { edges { cursor node { id content tags "
                        "author { nickname } } } pageInfo { endCursor } } viewer { userId } }"
                    }
                response = await client.post("/graphql", json=body, headers=headers)
                response.raise_for_status()

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    total = parser.parse_args().requests
    warm = total // 10
    token = mint_dev_token(Settings(dev_secret=SECRET), SECRET, user_id="bench")
    with tempfile.TemporaryDirectory() as scratch:
        env = cli_env(
            GQL_API_DEV_SECRET=SECRET,
            GQL_API_SQLITE_PATH=str(Path(scratch) / "gql-api.db"),
            GQL_API_LOG_LEVEL="WARNING",
        )
        with gql_api_server(env) as (url, server):
            counter = itertools.count()
            asyncio.run(traffic(url, warm, token, counter))
            after_warm = rss_kib(server.pid)
            counter = itertools.count(warm)
            asyncio.run(traffic(url, total, token, counter))
            after_all = rss_kib(server.pid)
    print(f"RSS after {warm} requests: {after_warm / 1024:.1f} MiB")
    print(f"RSS after {total} requests: {after_all / 1024:.1f} MiB")
    print(f"growth: {100 * (after_all - after_warm) / after_warm:+.1f}% (goal: within 10%)")


if __name__ == "__main__":
    main()
