"""100 concurrent createPost while another client pages through the feed (issue 11 c).

A post is written with its tag entries at once or not at all: afterwards every post
reads back by id, is in the feed exactly once and is in the feed of each of its tags;
while the writes run, every page the reader gets is in feed order, holds no post twice
in one pass, and shows each post whole (its content and all its tags).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx

from tests.reliability.conftest import gql, token_for

POSTS = 100
GROUPS = 5
SCENARIO_SECONDS = 150
READ_CONCURRENCY = 10
WRITE_SPREAD_SECONDS = 1.0

CREATE = """
mutation Create($content: String!, $tags: [String!]) {
  createPost(input: {content: $content, tags: $tags}) { id content tags version }
}"""
PAGE = """
query Page($first: Int, $after: String, $tag: String) {
  posts(first: $first, after: $after, tag: $tag) {
    edges { node { id content tags createdAt } }
    pageInfo { hasNextPage endCursor }
  }
}"""
READ = "query Read($id: ID!) { post(id: $id) { id content tags } }"


def tags_of(number: int) -> list[str]:
    return ["burst", f"g{number % GROUPS}"]


def check_whole(node: dict[str, Any]) -> None:
    """A post as its writer sent it: content ``post N`` with exactly N's tags."""
    content = node["content"]
    assert content.startswith("post "), node
    assert node["tags"] == tags_of(int(content.removeprefix("post "))), node


async def walk(
    client: httpx.AsyncClient,
    first: int,
    tag: str | None = None,
    on_page: Callable[[], None] = lambda: None,
) -> list[str]:
    """One pass through a feed: its ids, each page checked as it comes."""
    ids: list[str] = []
    previous: tuple[datetime, str] | None = None
    after = None
    while True:
        # Let the writers run: over the in-process transport, a request to the memory
        # store never waits on I/O, so a reader that never paused would starve them.
        await asyncio.sleep(0)
        body = await gql(client, PAGE, {"first": first, "after": after, "tag": tag})
        assert "errors" not in body, body
        connection = body["data"]["posts"]
        on_page()
        for edge in connection["edges"]:
            node = edge["node"]
            check_whole(node)
            if tag is not None:
                assert tag in node["tags"], (tag, node)
            key = (datetime.fromisoformat(node["createdAt"]), node["id"])
            assert previous is None or key < previous, ("out of feed order", previous, key)
            previous = key
            ids.append(node["id"])
        assert len(ids) == len(set(ids)), "a post twice in one pass"
        if not connection["pageInfo"]["hasNextPage"]:
            return ids
        after = connection["pageInfo"]["endCursor"]


async def test_creates_while_paging_leave_every_post_whole_and_listed_once(
    client: httpx.AsyncClient,
) -> None:
    token = token_for("alice")
    writes_done = asyncio.Event()
    seen: set[str] = set()
    passes = 0
    created_so_far = 0
    pages_amid_writes = 0  # pages read while some posts were written and some not yet

    def count_page() -> None:
        nonlocal pages_amid_writes
        if 0 < created_so_far < POSTS:
            pages_amid_writes += 1

    async def create(number: int, delay: float) -> dict[str, Any]:
        await asyncio.sleep(delay)
        variables = {"content": f"post {number}", "tags": tags_of(number)}
        body = await gql(client, CREATE, variables, token=token)
        assert "errors" not in body, body
        post: dict[str, Any] = body["data"]["createPost"]
        nonlocal created_so_far
        created_so_far += 1
        return post

    async def page_while_writing() -> None:
        nonlocal passes
        while not writes_done.is_set():
            seen.update(await walk(client, first=10, on_page=count_page))
            seen.update(await walk(client, first=7, tag=f"g{passes % GROUPS}", on_page=count_page))
            passes += 1

    # The writers start within one second of each other, so the reader's pages fall
    # among them (all at the same instant, a store that queues requests would answer
    # every write before the reader's first page).
    jitter = random.Random(11)  # noqa: S311 - test timing, not secrets
    spread = [jitter.uniform(0, WRITE_SPREAD_SECONDS) for _ in range(POSTS)]
    async with asyncio.timeout(SCENARIO_SECONDS):
        reader = asyncio.create_task(page_while_writing())
        try:
            created = await asyncio.gather(*(create(n, spread[n]) for n in range(POSTS)))
        finally:
            writes_done.set()
        await reader

        assert pages_amid_writes >= 1, "the reader never read while the writes ran"
        ids = {post["id"] for post in created}
        assert len(ids) == POSTS
        assert all(post["version"] == 1 for post in created)
        assert seen <= ids, "the reader saw a post nobody created"

        limit = asyncio.Semaphore(READ_CONCURRENCY)

        async def read(post_id: str) -> dict[str, Any]:
            async with limit:
                body = await gql(client, READ, {"id": post_id})
            post: dict[str, Any] = body["data"]["post"]
            return post

        by_id = await asyncio.gather(*(read(post["id"]) for post in created))
        for post, stored in zip(created, by_id, strict=True):
            assert stored == {"id": post["id"], "content": post["content"], "tags": post["tags"]}

        for first in (100, 9):
            feed = await walk(client, first=first)
            assert sorted(feed) == sorted(ids), f"feed with first={first}"
        assert sorted(await walk(client, first=100, tag="burst")) == sorted(ids)
        for group in range(GROUPS):
            expected = {p["id"] for p in created if f"g{group}" in p["tags"]}
            assert sorted(await walk(client, first=100, tag=f"g{group}")) == sorted(expected)
