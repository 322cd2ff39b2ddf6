"""Memory over a long run, and under queries made to fill the caches.

1. A live `gql-api serve` on SQLite gets a mix of reads (feed pages, posts by id, viewer)
   and writes (create, update), 16 at a time; the RSS is read from /proc after 2,000 and
   after 20,000 requests. Goal: the second within 10% of the first (no leak).
2. A fresh server gets 2,000 distinct valid 16 KB queries that differ only in their
   trailing whitespace, each parsed, validated and cached as a new document (and, sent
   as APQ, each also a new persisted query). Goal: RSS grows by at most 64 MiB.
Usage: python bench/memory.py [--requests 20000] [--variants 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gql_api.auth.dev import mint_dev_token  # noqa: E402
from gql_api.settings import Settings  # noqa: E402
from tests.helpers import NO_RATE_LIMITS, cli_env  # noqa: E402
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


# One real query of 30 aliased pages: what each variant parses into.
POST_FIELDS = "id content tags imageKeys isMarkdown createdAt updatedAt version authorId"
WIDE_QUERY = (
    "query Wide { "
    + " ".join(
        f"p{n}: posts(first: 1) {{ nodes {{ {POST_FIELDS} author {{ userId nickname }} }} }}"
        for n in range(30)
    )
    + " }"
)
VARIANT_LENGTH = 16_000  # under the 16 KiB of the largest cached document


def variant(n: int) -> str:
    """WIDE_QUERY padded to VARIANT_LENGTH by whitespace that spells ``n`` in binary."""
    pad = VARIANT_LENGTH - len(WIDE_QUERY)
    spelled = "".join(" " if bit == "0" else "\t" for bit in f"{n:016b}")
    return WIDE_QUERY + spelled + "\n" * (pad - len(spelled))


async def variants(url: str, count: int) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        counter = itertools.count()

        async def worker() -> None:
            while (n := next(counter)) < count:
                query = variant(n)
                body: dict[str, object] = {"query": query}
                if n % 2:  # every other one also a new persisted query
                    digest = hashlib.sha256(query.encode()).hexdigest()
                    body["extensions"] = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
                response = await client.post("/graphql", json=body)
                response.raise_for_status()
                assert "errors" not in response.json(), response.text[:300]

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


def server_env(scratch: str) -> dict[str, str]:
    return cli_env(
        GQL_API_DEV_SECRET=SECRET,
        GQL_API_SQLITE_PATH=str(Path(scratch) / "gql-api.db"),
        GQL_API_LOG_LEVEL="WARNING",
        **NO_RATE_LIMITS,  # one address stands for many clients
    )


def cache_attack(count: int) -> None:
    with (
        tempfile.TemporaryDirectory() as scratch,
        gql_api_server(server_env(scratch)) as (url, server),
    ):
        asyncio.run(variants(url, 50))  # warm: imports, first connections
        before = rss_kib(server.pid)
        asyncio.run(variants(url, count))
        after = rss_kib(server.pid)
    print(f"{count} distinct {VARIANT_LENGTH}-character queries (whitespace variants):")
    print(f"RSS before: {before / 1024:.1f} MiB, after: {after / 1024:.1f} MiB")
    print(f"growth: {(after - before) / 1024:+.1f} MiB (goal: at most 64 MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--variants", type=int, default=2_000)
    arguments = parser.parse_args()
    total = arguments.requests
    warm = total // 10
    token = mint_dev_token(Settings(dev_secret=SECRET), SECRET, user_id="bench")
    with (
        tempfile.TemporaryDirectory() as scratch,
        gql_api_server(server_env(scratch)) as (url, server),
    ):
        counter = itertools.count()
        asyncio.run(traffic(url, warm, token, counter))
        after_warm = rss_kib(server.pid)
        counter = itertools.count(warm)
        asyncio.run(traffic(url, total, token, counter))
        after_all = rss_kib(server.pid)
    print(f"RSS after {warm} requests: {after_warm / 1024:.1f} MiB")
    print(f"RSS after {total} requests: {after_all / 1024:.1f} MiB")
    print(f"growth: {100 * (after_all - after_warm) / after_warm:+.1f}% (goal: within 10%)")
    cache_attack(arguments.variants)


if __name__ == "__main__":
    main()
