"""Concurrent updates of one post, on every store, through the GraphQL API (issue 11 a, b).

a. With the same ``expectedVersion``: exactly one writer wins, every other gets
   ``CONFLICT`` (with the version that won), and the version moves by exactly one.
b. Without it: the service retries lost races; every update it reports as done is in
   the final version (no lost increment), and the only failure is ``CONFLICT``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.reliability.conftest import error_codes, gql, token_for

WRITERS = 30
SCENARIO_SECONDS = 120

CREATE = 'mutation { createPost(input: {content: "v1", tags: ["race"]}) { id version } }'
UPDATE = """
mutation Update($id: ID!, $content: String!, $expected: Int) {
  updatePost(id: $id, input: {content: $content}, expectedVersion: $expected) {
    version content
  }
}"""
READ = "query Read($id: ID!) { post(id: $id) { version content tags } }"


async def create_post(client: httpx.AsyncClient, token: str) -> str:
    body = await gql(client, CREATE, token=token)
    assert body["data"]["createPost"]["version"] == 1, body
    post_id: str = body["data"]["createPost"]["id"]
    return post_id


async def race(
    client: httpx.AsyncClient, token: str, post_id: str, expected: int | None
) -> list[dict[str, Any]]:
    """``WRITERS`` updates at once, each with its own content; their response bodies."""

    async def update(writer: int) -> dict[str, Any]:
        variables = {"id": post_id, "content": f"writer {writer}", "expected": expected}
        return await gql(client, UPDATE, variables, token=token)

    async with asyncio.timeout(SCENARIO_SECONDS):
        return await asyncio.gather(*(update(n) for n in range(WRITERS)))


async def read_post(client: httpx.AsyncClient, post_id: str) -> dict[str, Any]:
    body = await gql(client, READ, {"id": post_id})
    post: dict[str, Any] = body["data"]["post"]
    return post


async def test_same_expected_version_exactly_one_wins(client: httpx.AsyncClient) -> None:
    token = token_for("alice")
    post_id = await create_post(client, token)

    bodies = await race(client, token, post_id, expected=1)

    wins = [b["data"]["updatePost"] for b in bodies if not b.get("errors")]
    losses = [b for b in bodies if b.get("errors")]
    assert len(wins) == 1, bodies
    assert wins[0]["version"] == 2
    assert len(losses) == WRITERS - 1
    for body in losses:
        assert error_codes(body) == ["CONFLICT"], body
        assert body["errors"][0]["extensions"]["currentVersion"] == 2, body
        assert body["data"] is None, body
    stored = await read_post(client, post_id)
    assert stored == {"version": 2, "content": wins[0]["content"], "tags": ["race"]}


async def test_without_expected_version_no_update_is_lost(client: httpx.AsyncClient) -> None:
    token = token_for("alice")
    post_id = await create_post(client, token)

    bodies = await race(client, token, post_id, expected=None)

    wins = [b["data"]["updatePost"] for b in bodies if not b.get("errors")]
    losses = [b for b in bodies if b.get("errors")]
    for body in losses:
        assert error_codes(body) == ["CONFLICT"], body
    assert wins, bodies
    # Each reported success made its own version: together exactly 2 .. len(wins) + 1.
    assert sorted(w["version"] for w in wins) == list(range(2, len(wins) + 2)), wins
    stored = await read_post(client, post_id)
    assert stored["version"] == 1 + len(wins), (stored, len(wins))
    # The last write is the one stored, whole.
    last = max(wins, key=lambda w: w["version"])
    assert stored == {"version": last["version"], "content": last["content"], "tags": ["race"]}
