"""Soak: a long run of mixed reads and writes against a live server on SQLite.

A real `gql-api serve` process (SQLite store, a fresh database) gets traffic from 32
connections for 10 minutes (``--seconds``): feed pages (and the next page), tag pages,
posts by id, the viewer and profiles, and writes: creates, updates with
``expectedVersion`` (stale on purpose now and then: ``CONFLICT`` is expected), updates
without it, and nickname changes. Eight users share the posts, so writers race.

It prints the requests served, every error by code (only ``CONFLICT`` is expected) and
the server's RSS at start, after warm-up and at the end, from /proc. The exit status is
1 if any other error, an HTTP status other than 200 or a transport failure was seen.
Not part of `make test`.
Usage: python bench/soak.py [--seconds 600] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gql_api.auth.dev import mint_dev_token  # noqa: E402
from gql_api.settings import Settings  # noqa: E402
from tests.helpers import NO_RATE_LIMITS, cli_env  # noqa: E402
from tests.servers import gql_api_server  # noqa: E402

SECRET = "soak-bench-secret-0123456789abcdef-0123"
USERS = 8
SEED_POSTS = 200
TAGS = ["soak", "news", "cats", "music", "code"]
EXPECTED = {"CONFLICT"}

FEED = """
query Feed($after: String) {
  posts(first: 20, after: $after) {
    edges { cursor node { id content tags version createdAt author { userId nickname } } }
    pageInfo { hasNextPage endCursor }
  }
}"""
TAG_FEED = """
query Tagged($tag: String!) {
  posts(first: 10, tag: $tag) { nodes { id tags version author { nickname } } }
}"""
POST = "query One($id: ID!) { post(id: $id) { id content version updatedAt authorId } }"
VIEWER = "{ viewer { userId isAdmin profile { nickname } } limits { maxPageSize } }"
CREATE = """
mutation Create($content: String!, $tags: [String!]) {
  createPost(input: {content: $content, tags: $tags}) { id version authorId }
}"""
UPDATE = """
mutation Update($id: ID!, $content: String!, $expected: Int) {
  updatePost(id: $id, input: {content: $content}, expectedVersion: $expected) { id version }
}"""
NICKNAME = "mutation Nick($name: String!) { updateProfile(nickname: $name) { nickname } }"

# (weight, operation): mostly reads, as a feed is.
MIX = [
    (40, "feed"),
    (10, "next_page"),
    (10, "tag_feed"),
    (12, "post"),
    (5, "viewer"),
    (10, "create"),
    (8, "update_expected"),
    (4, "update_blind"),
    (1, "nickname"),
]


@dataclass
class Tally:
    served: int = 0
    by_operation: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # by code (or HTTP status)
    unexpected: list[str] = field(default_factory=list)  # first few, for the report

    def error(self, code: str, detail: str) -> None:
        self.errors[code] += 1
        if code not in EXPECTED and len(self.unexpected) < 10:
            self.unexpected.append(f"{code}: {detail[:300]}")


@dataclass
class Shared:
    """What the clients know of the posts: id -> (author, last version seen)."""

    posts: dict[str, tuple[str, int]] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)
    cursors: list[str] = field(default_factory=list)

    def saw(self, post_id: str, author: str, version: int) -> None:
        if post_id not in self.posts:
            self.ids.append(post_id)
        self.posts[post_id] = (author, version)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class Client:
    def __init__(self, http: httpx.AsyncClient, tokens: dict[str, str], tally: Tally) -> None:
        self.http = http
        self.tokens = tokens
        self.tally = tally

    async def call(
        self, operation: str, query: str, variables: dict[str, Any], user: str | None = None
    ) -> dict[str, Any] | None:
        headers = {} if user is None else {"authorization": f"Bearer {self.tokens[user]}"}
        try:
            response = await self.http.post(
                "/graphql", json={"query": query, "variables": variables}, headers=headers
            )
        except httpx.HTTPError as error:
            self.tally.error(f"transport {type(error).__name__}", f"{operation}: {error!r}")
            return None
        self.tally.served += 1
        self.tally.by_operation[operation] += 1
        if response.status_code != 200:
            self.tally.error(f"HTTP {response.status_code}", f"{operation}: {response.text}")
            return None
        body: dict[str, Any] = response.json()
        for failure in body.get("errors") or []:
            code = failure.get("extensions", {}).get("code", "no code")
            self.tally.error(code, f"{operation}: {failure.get('message')}")
        return body.get("data")


async def worker(number: int, client: Client, shared: Shared, deadline: float, seed: int) -> None:
    rng = random.Random(seed)
    user = f"user{number % USERS}"
    weights = [w for w, _ in MIX]
    operations = [op for _, op in MIX]
    turn = 0
    while time.monotonic() < deadline:
        turn += 1
        operation = rng.choices(operations, weights)[0]
        if operation == "feed" or (operation == "next_page" and not shared.cursors):
            data = await client.call("feed", FEED, {"after": None})
            if data:
                connection = data["posts"]
                for edge in connection["edges"]:
                    node = edge["node"]
                    shared.saw(node["id"], node["author"]["userId"], node["version"])
                if connection["pageInfo"]["hasNextPage"]:
                    shared.cursors = [*shared.cursors[-50:], connection["pageInfo"]["endCursor"]]
        elif operation == "next_page":
            await client.call("next_page", FEED, {"after": rng.choice(shared.cursors)})
        elif operation == "tag_feed":
            await client.call("tag_feed", TAG_FEED, {"tag": rng.choice(TAGS)})
        elif operation == "post":
            if shared.ids:
                await client.call("post", POST, {"id": rng.choice(shared.ids)})
        elif operation == "viewer":
            await client.call("viewer", VIEWER, {}, user=user)
        elif operation == "create":
            tags = rng.sample(TAGS, rng.randint(0, 3))
            content = f"soak post by {user}, turn {turn} of worker {number}"
            data = await client.call("create", CREATE, {"content": content, "tags": tags}, user)
            if data:
                created = data["createPost"]
                shared.saw(created["id"], created["authorId"], created["version"])
        elif operation in ("update_expected", "update_blind"):
            own = [pid for pid in shared.ids[-400:] if shared.posts[pid][0] == user]
            if not own:
                continue
            post_id = rng.choice(own)
            expected = shared.posts[post_id][1] if operation == "update_expected" else None
            variables = {"id": post_id, "content": f"edited on turn {turn}", "expected": expected}
            data = await client.call(operation, UPDATE, variables, user)
            if data:
                shared.saw(post_id, user, data["updatePost"]["version"])
        elif operation == "nickname":
            await client.call("nickname", NICKNAME, {"name": f"{user} {turn % 100}"}, user)


async def soak(url: str, pid: int, seconds: float, connections: int) -> int:
    settings = Settings(dev_secret=SECRET)
    tokens = {
        f"user{n}": mint_dev_token(settings, SECRET, user_id=f"user{n}", nickname=f"User {n}")
        for n in range(USERS)
    }
    tally = Tally()
    shared = Shared()
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:
        client = Client(http, tokens, tally)
        rss_start = rss_mib(pid)
        for n in range(SEED_POSTS):
            data = await client.call(
                "create", CREATE, {"content": f"seed {n}", "tags": [TAGS[n % 5]]}, f"user{n % 8}"
            )
            if data:
                created = data["createPost"]
                shared.saw(created["id"], created["authorId"], created["version"])
        started = time.monotonic()
        deadline = started + seconds
        warm_up = min(60.0, seconds / 10)
        tasks = [
            asyncio.create_task(worker(n, client, shared, deadline, seed=n))
            for n in range(connections)
        ]
        await asyncio.sleep(warm_up)
        rss_warm = rss_mib(pid)
        served_warm = tally.served
        print(f"after warm-up ({warm_up:.0f} s): {served_warm} requests, RSS {rss_warm:.1f} MiB")
        minute = 60.0
        while not all(task.done() for task in tasks):
            await asyncio.wait(tasks, timeout=minute)
            elapsed = time.monotonic() - started
            if elapsed < seconds:
                print(
                    f"  {elapsed:4.0f} s: {tally.served} requests, RSS {rss_mib(pid):.1f} MiB",
                    flush=True,
                )
        for task in tasks:
            task.result()  # a worker's own crash is a failure of the bench
        elapsed = time.monotonic() - started
        rss_end = rss_mib(pid)

    print()
    print(f"duration        {elapsed:.0f} s at {connections} connections")
    print(f"requests served {tally.served} ({tally.served / elapsed:.0f}/s)")
    print("by operation    " + ", ".join(f"{k} {v}" for k, v in sorted(tally.by_operation.items())))
    if tally.errors:
        print("errors by code  " + ", ".join(f"{k} {v}" for k, v in tally.errors.most_common()))
    else:
        print("errors by code  none")
    print(
        f"server RSS      start {rss_start:.1f} MiB, after warm-up {rss_warm:.1f} MiB, "
        f"end {rss_end:.1f} MiB ({(rss_end / rss_warm - 1) * 100:+.1f}% since warm-up)"
    )
    unexpected = {k: v for k, v in tally.errors.items() if k not in EXPECTED}
    if unexpected:
        print(f"UNEXPECTED errors: {unexpected}")
        for line in tally.unexpected:
            print(f"  {line}")
        return 1
    print("only expected errors (CONFLICT)")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = cli_env(
            GQL_API_STORE="sqlite",
            GQL_API_SQLITE_PATH=str(Path(tmp) / "soak.db"),
            GQL_API_DEV_SECRET=SECRET,
            GQL_API_LOG_LEVEL="WARNING",  # one line per request would fill the disk
            **NO_RATE_LIMITS,  # 32 connections from one address stand for many clients
        )
        with gql_api_server(env) as (url, process):
            status = asyncio.run(soak(url, process.pid, args.seconds, args.connections))
            alive = process.poll() is None
    if not alive:
        print("the server process died during the run")
        status = 1
    sys.exit(status)


if __name__ == "__main__":
    main()
