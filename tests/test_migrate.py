"""`gql-api migrate` as an operator runs it, from each legacy layout on its real local
server: a dry run, a run interrupted by Ctrl-C and one killed outright, the run that
finishes and verifies, two reruns, and then the API serving what came over (pages, tags,
authors, image URLs, an edit that keeps the legacy keys). Across clouds too."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gql_api.domain.records import PostRecord
from gql_api.ops.migration.legacy import convert
from gql_api.ops.migration.sources import Kind, LegacyRow
from tests import legacy_seed, servers
from tests.conftest import COSMOS_KEY, reset_firestore
from tests.helpers import NO_RATE_LIMITS, cli_env, run_cli

LEGACY_PROJECT = "demo-legacy"
PAGE = 25  # rows a page in the interrupted runs: the most a resumed run finds there
PUBLIC_IMAGES = "https://images.example.com/"


@dataclass
class Legacy:
    name: str
    args: list[str]  # the source's options
    env: dict[str, str]
    dump: Callable[[], Awaitable[list[dict[str, Any]]]]
    posts: list[dict[str, Any]]
    profiles: list[dict[str, Any]]


def bad_rows(posts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row for each way the earlier service's data breaks today's rules."""
    base = dict(posts[0], createdAt="2025-06-01T00:00:00+00:00")

    def row(n: int, **changes: Any) -> dict[str, Any]:
        made = dict(base, postId=str(uuid.UUID(int=n, version=4)), **changes)
        return {k: v for k, v in made.items() if v is not ...}

    return [
        row(1, content="x" * 10_001),
        row(2, tags=[f"tag{i}" for i in range(11)]),
        row(3, content=...),  # a missing field
        row(4, nickname="bad\u202ename"),  # repaired: comes over without its nickname
        # The same id as the first post, named otherwise in the source; sorted last.
        dict(base, content="a duplicate", _ref="zzzz-duplicate"),
    ]


async def seeded(name: str, request: pytest.FixtureRequest, size: int) -> Legacy:
    posts = legacy_seed.legacy_posts(size, seed=len(name))
    posts += bad_rows(posts)
    profiles = legacy_seed.legacy_profiles()
    profiles.append({"userId": "user-x", "nickname": "\u0000"})  # left behind
    env = cli_env(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
    if name == "dynamodb":
        url = request.getfixturevalue("moto_url")
        table = f"legacy-{uuid.uuid4().hex[:8]}"
        await legacy_seed.seed_dynamodb(url, table, posts, profiles)
        args = ["--table", table, "--endpoint", url, "--region", legacy_seed.REGION]
        dump = lambda: legacy_seed.dump_dynamodb(url, table)  # noqa: E731
    elif name == "firestore":
        host = request.getfixturevalue("firestore_host")
        await reset_firestore(host, LEGACY_PROJECT)
        await legacy_seed.seed_firestore(LEGACY_PROJECT, posts, profiles)
        env["FIRESTORE_EMULATOR_HOST"] = host
        args = ["--project", LEGACY_PROJECT]
        dump = lambda: legacy_seed.dump_firestore(LEGACY_PROJECT)  # noqa: E731
    else:
        url = request.getfixturevalue("cosmos_url")
        database = f"legacy{uuid.uuid4().hex[:8]}"
        await legacy_seed.seed_cosmos(url, COSMOS_KEY, database, posts, profiles)
        env["GQL_API_MIGRATE_COSMOS_KEY"] = COSMOS_KEY
        args = ["--url", url, "--database", database, "--no-verify-tls"]
        dump = lambda: legacy_seed.dump_cosmos(url, COSMOS_KEY, database)  # noqa: E731
    return Legacy(name, args, env, dump, posts, profiles)


@pytest.fixture(params=["dynamodb", "firestore", "cosmos"])
async def legacy(request: pytest.FixtureRequest) -> Legacy:
    return await seeded(request.param, request, 300)


def expected_posts(legacy: Legacy) -> dict[str, PostRecord]:
    """What should come over: each valid row, the first of an id."""
    found: dict[str, PostRecord] = {}
    for row in legacy.posts:
        record = convert(Kind.POSTS, LegacyRow("", row)).record
        if isinstance(record, PostRecord):
            found.setdefault(record.id, record)
    return found


COUNTS = re.compile(
    r"(\w+): (\d+) read, (\d+) written \((\d+) repaired\), (\d+) already there, (\d+) left behind"
)


def counts(output: str) -> dict[str, tuple[int, ...]]:
    """From the summary: kind -> (read, written, repaired, already, left behind)."""
    return {m[1]: tuple(int(x) for x in m.groups()[1:]) for m in COUNTS.finditer(output)}


def migrate(legacy: Legacy, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    return run_cli(["migrate", "--from", legacy.name, *legacy.args, *extra], env, timeout=240)


def interrupted(
    legacy: Legacy, env: dict[str, str], checkpoint: Path, how: signal.Signals, after: int
) -> int:
    """A slow run stopped by ``how`` once its checkpoint has ``after`` posts; its status."""
    command = [sys.executable, "-m", "gql_api", "migrate", "--from", legacy.name, *legacy.args]
    command += ["--rate", "120", "--page-size", str(PAGE), "--checkpoint", str(checkpoint)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and process.poll() is None:
            try:
                state = json.loads(checkpoint.read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                state = None
            if state and state["counts"]["posts"]["read"] >= after:
                break
            time.sleep(0.05)
        assert process.poll() is None, process.communicate()
        process.send_signal(how)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if how is not signal.SIGKILL:
        assert b"run the same command again" in err, err
    return process.returncode


async def graphql(
    client: httpx.AsyncClient, query: str, token: str | None = None, **variables: Any
) -> Any:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    answer = await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    body = answer.json()
    return body


FEED = """query($after: String, $tag: String, $author: ID) {
  posts(first: 100, after: $after, tag: $tag, authorId: $author) {
    edges {
      node { id content tags createdAt updatedAt version imageUrls author { userId nickname } }
    }
    pageInfo { hasNextPage endCursor }
  }
}"""


async def read_all(client: httpx.AsyncClient, **filters: Any) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = []
    after = None
    while True:
        body = await graphql(client, FEED, after=after, **filters)
        assert "data" in body, body
        page = body["data"]["posts"]
        nodes += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return nodes
        after = page["pageInfo"]["endCursor"]


async def test_a_legacy_layout_comes_over_checked_resumable_and_served(
    legacy: Legacy, tmp_path: Path
) -> None:
    target = tmp_path / "target" / "gql-api.db"
    env = dict(legacy.env, GQL_API_SQLITE_PATH=str(target))
    checkpoint = tmp_path / "checkpoint.json"
    expected = expected_posts(legacy)
    before = await legacy.dump()

    strict_target = str(tmp_path / "strict" / "gql-api.db")
    strict_env = dict(env, GQL_API_SQLITE_PATH=strict_target)
    strict_checkpoint = str(tmp_path / "strict.json")
    strict = migrate(legacy, strict_env, "--strict", "--checkpoint", strict_checkpoint)
    assert strict.returncode == 1, strict.stdout + strict.stderr
    assert "--strict: stopped at profiles user-x: nickname" in strict.stderr, strict.stderr

    dry = migrate(legacy, env, "--dry-run", "--rate", "0", "--checkpoint", str(checkpoint))
    assert dry.returncode == 0, dry.stderr
    assert "would write" in dry.stdout and not checkpoint.exists()
    assert counts(dry.stdout.replace("would write", "written"))["posts"][1] == len(expected)

    assert interrupted(legacy, env, checkpoint, signal.SIGINT, after=2 * PAGE) == 130
    assert interrupted(legacy, env, checkpoint, signal.SIGTERM, after=4 * PAGE) == 130
    assert interrupted(legacy, env, checkpoint, signal.SIGKILL, after=6 * PAGE) == -9
    done = migrate(legacy, env, "--rate", "0", "--verify", "--checkpoint", str(checkpoint))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verified: every migrated record matches" in done.stdout
    read, written, repaired, already, left = counts(done.stdout)["posts"]
    assert read == len(legacy.posts) and written + already == len(expected)
    assert already <= 3 * PAGE  # at most the page each stop was in, done again
    assert (repaired, left) == (1, 4)
    assert counts(done.stdout)["profiles"][1:] == (len(legacy.profiles) - 1, 0, 0, 1)
    report = [json.loads(line) for line in checkpoint.with_name("checkpoint.rows.jsonl").open()]
    assert sorted(r["rule"] for r in report) == [
        "bad_content",
        "bad_nickname",
        "bad_nickname",
        "bad_tags",
        "duplicate_id",
        "missing_field",
    ]
    assert next(r for r in report if r["rule"] == "duplicate_id")["ref"] == "zzzz-duplicate"

    again = migrate(legacy, env, "--checkpoint", str(checkpoint))
    assert again.returncode == 0 and "already migrated" in again.stdout
    checkpoint.unlink()
    fresh = migrate(legacy, env, "--rate", "0", "--checkpoint", str(checkpoint))
    assert counts(fresh.stdout)["posts"][1:4] == (0, 0, len(expected)), fresh.stdout
    assert await legacy.dump() == before  # the source was never written

    await served_as_migrated(env, expected, legacy)


async def served_as_migrated(
    env: dict[str, str], expected: dict[str, PostRecord], legacy: Legacy
) -> None:
    served = dict(
        env,
        GQL_API_IMAGES_BUCKET="legacy-images",
        GQL_API_IMAGES_PROVIDER="s3",
        GQL_API_IMAGES_PUBLIC_BASE_URL=PUBLIC_IMAGES,
        AWS_REGION="us-east-1",
        **NO_RATE_LIMITS,
    )
    nicknames = {p["userId"]: p["nickname"] for p in legacy.profiles if p["userId"] != "user-x"}
    newest_first = sorted(expected.values(), key=lambda p: (p.created_at, p.id), reverse=True)
    with servers.gql_api_server(served) as (url, _):
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            feed = await read_all(client)
            assert [n["id"] for n in feed] == [p.id for p in newest_first]
            for node in feed:
                post = expected[node["id"]]
                assert node["tags"] == list(post.tags) and node["version"] == 1
                assert node["author"]["nickname"] == nicknames.get(
                    post.author_id, post.author_nickname
                )
                assert node["imageUrls"] == [PUBLIC_IMAGES + key for key in post.image_keys]
            python = await read_all(client, tag="PYTHON")
            assert [n["id"] for n in python] == [p.id for p in newest_first if "python" in p.tags]
            mine = await read_all(client, author="user-3")
            assert [n["id"] for n in mine] == [
                p.id for p in newest_first if p.author_id == "user-3"
            ]
            await legacy_keys_survive_an_edit(client, env, newest_first)


async def legacy_keys_survive_an_edit(
    client: httpx.AsyncClient, env: dict[str, str], posts: list[PostRecord]
) -> None:
    post = next(p for p in posts if p.image_keys and "/photos/" in p.image_keys[0])
    token = run_cli(["token", "--user", post.author_id], env).stdout.strip()
    edit = """mutation($id: ID!, $keys: [String!]) {
      updatePost(id: $id, input: {content: "edited", imageKeys: $keys}) {
        version imageKeys imageUrls
      }
    }"""
    kept = await graphql(client, edit, token, id=post.id, keys=list(post.image_keys))
    assert kept["data"]["updatePost"]["imageKeys"] == list(post.image_keys), kept
    refused = await graphql(
        client, edit, token, id=post.id, keys=[*post.image_keys, f"{post.author_id}/photos/new.jpg"]
    )
    assert refused["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", refused


def target_env(name: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """Settings of a fresh gql-api store of kind ``name`` on its local server."""
    unique = uuid.uuid4().hex[:8]
    if name == "dynamodb":
        return {
            "GQL_API_STORE": "dynamodb",
            "GQL_API_DYNAMODB_TABLE": f"target-{unique}",
            "GQL_API_DYNAMODB_ENDPOINT": request.getfixturevalue("moto_url"),
            "AWS_REGION": legacy_seed.REGION,
        }
    if name == "firestore":
        return {
            "GQL_API_STORE": "firestore",
            "GQL_API_FIRESTORE_PROJECT": LEGACY_PROJECT,
            "GQL_API_FIRESTORE_PREFIX": f"t{unique}_",
            "FIRESTORE_EMULATOR_HOST": request.getfixturevalue("firestore_host"),
        }
    return {
        "GQL_API_STORE": "cosmos",
        "GQL_API_COSMOS_URL": request.getfixturevalue("cosmos_url"),
        "GQL_API_COSMOS_KEY": COSMOS_KEY,
        "GQL_API_COSMOS_VERIFY_TLS": "false",
        "GQL_API_COSMOS_DATABASE": f"target{unique}",
    }


@pytest.mark.parametrize(
    ("source", "target"),
    [("dynamodb", "firestore"), ("firestore", "cosmos"), ("cosmos", "dynamodb")],
)
async def test_a_move_from_one_cloud_to_another(
    source: str, target: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    legacy = await seeded(source, request, 60)
    env = dict(legacy.env, **target_env(target, request))
    provisioned = run_cli(["provision"], env)
    assert provisioned.returncode == 0, provisioned.stderr
    checkpoint = ["--checkpoint", str(tmp_path / "c.json")]
    done = migrate(legacy, env, "--rate", "0", "--verify", *checkpoint)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verified: every migrated record matches" in done.stdout
    assert counts(done.stdout)["posts"][1] == len(expected_posts(legacy))
    with servers.gql_api_server(dict(env, **NO_RATE_LIMITS)) as (url, _):
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            feed = await read_all(client)
    newest_first = sorted(expected_posts(legacy).values(), key=lambda p: (p.created_at, p.id))
    assert [n["id"] for n in feed] == [p.id for p in reversed(newest_first)]
