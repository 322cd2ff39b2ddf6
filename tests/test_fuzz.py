"""Generated queries and mutations against a live server: no 5xx, every error coded and
masked, and the store holds exactly what the API accepted."""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import graphql
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis_graphql import from_schema

from gql_api.auth.dev import mint_dev_token
from gql_api.domain.validation import LIMITS
from gql_api.images import is_valid_image_key
from gql_api.schema.root import sdl
from gql_api.settings import Settings
from tests.helpers import DEV_SECRET, NO_RATE_LIMITS, cli_env
from tests.servers import gql_api_server

EXAMPLES = 300  # of each kind: 600 requests in all
ALLOWED_CODES = {
    "BAD_USER_INPUT",
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "NOT_FOUND",
    "CONFLICT",
    "GRAPHQL_VALIDATION_FAILED",
    "GRAPHQL_PARSE_FAILED",
    "QUERY_TOO_COMPLEX",
    "QUERY_TOO_DEEP",
    "TOO_MANY_ALIASES",
    "TOO_MANY_TOKENS",
    "TOO_MANY_DIRECTIVES",
    "BAD_REQUEST",
    "PAYLOAD_TOO_LARGE",
}


class Tally:
    def __init__(self) -> None:
        self.requests = 0
        self.created = 0
        self.deleted = 0
        # The idempotency keys of accepted creates: a retry with a key answers the post
        # that key made (and stores none), so each key stands for one stored post.
        self.keys: set[str] = set()
        # Each nickname updateProfile accepted, in order (None: accepted, not selected).
        self.nicknames: list[str | None] = []
        self.codes: Counter[str] = Counter()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    folder = tmp_path_factory.mktemp("fuzz")
    env = cli_env(
        GQL_API_DEV_SECRET=DEV_SECRET,
        GQL_API_SQLITE_PATH=str(folder / "gql-api.db"),
        GQL_API_LOG_LEVEL="ERROR",
        **NO_RATE_LIMITS,  # hundreds of writes by one user, on purpose
    )
    token = mint_dev_token(Settings(dev_secret=DEV_SECRET), DEV_SECRET, user_id="fuzzer")
    with gql_api_server(env) as (url, _):
        yield url, token


def root_fields(query: str) -> list[tuple[str, str, str | None]]:
    """(field name, response key, idempotencyKey literal or None) of each root field."""
    document = graphql.parse(query)
    operation = next(
        d for d in document.definitions if isinstance(d, graphql.OperationDefinitionNode)
    )
    return [
        (node.name.value, (node.alias or node.name).value, idempotency_key(node))
        for node in operation.selection_set.selections
        if isinstance(node, graphql.FieldNode)
    ]


def idempotency_key(field: graphql.FieldNode) -> str | None:
    for argument in field.arguments or ():
        if argument.name.value == "idempotencyKey" and isinstance(
            argument.value, graphql.StringValueNode
        ):
            return argument.value.value
    return None


def check_response(response: httpx.Response, tally: Tally, query: str) -> None:
    tally.requests += 1
    assert response.status_code < 500, response.text[:500]
    body = response.json()
    for error in body.get("errors", []):
        code = error.get("extensions", {}).get("code")
        assert code in ALLOWED_CODES, error
        tally.codes[code] += 1
        assert "Traceback" not in error["message"] and "sqlite" not in error["message"].lower()
    # What the API accepted: a mutation field answered with a value (each request here
    # holds one root field, so a refused one leaves "data" null).
    data = body.get("data") or {}
    for name, key, idempotency in root_fields(query):
        accepted = data.get(key) is not None
        if name == "createPost" and accepted and idempotency is not None:
            tally.keys.add(idempotency)
        else:
            tally.created += name == "createPost" and accepted
        tally.deleted += name == "deletePost" and accepted
        if name == "updateProfile" and accepted:
            tally.nicknames.append(data[key].get("nickname"))


def fuzz(url: str, token: str, strategy: Any, tally: Tally, examples: int = EXAMPLES) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:

        @settings(
            max_examples=examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=False,
        )
        @given(query=strategy)
        def send(query: str) -> None:
            response = client.post(
                "/graphql",
                json={"query": query},
                headers={"authorization": f"Bearer {token}"},
            )
            check_response(response, tally, query)

        send()


def test_generated_queries_and_mutations(server: tuple[str, str]) -> None:
    url, token = server
    tally = Tally()
    schema = sdl()
    fuzz(
        url,
        token,
        from_schema(schema, fields=["posts", "post", "viewer", "profile", "limits"]),
        tally,
    )
    for mutation in ("createPost", "updatePost", "deletePost", "updateProfile"):
        strategy = from_schema(schema, fields=[mutation])
        fuzz(url, token, strategy, tally, EXAMPLES // 3)
    assert tally.requests >= 2 * EXAMPLES - 10
    stored = all_posts(url)
    # The store holds exactly what the API accepted, each post valid by the contract.
    assert len(stored) == tally.created + len(tally.keys) - tally.deleted
    assert tally.created + len(tally.keys) > 0, tally.codes
    for post in stored:
        assert 1 <= len(post["content"].strip()) <= LIMITS.max_content_length
        assert len(post["tags"]) <= LIMITS.max_tags
        assert all(
            t == t.strip().lower() and t and not any(c.isspace() for c in t) for t in post["tags"]
        )
        assert all(is_valid_image_key(key, post["authorId"]) for key in post["imageKeys"])
        assert post["version"] >= 1
        datetime.fromisoformat(post["createdAt"])
    # The stored nickname is the last one accepted, and every accepted one was valid.
    for nickname in filter(None, tally.nicknames):
        assert nickname == nickname.strip() and 1 <= len(nickname) <= LIMITS.max_nickname_length
        assert not any(unicodedata.category(c) == "Cc" for c in nickname)
    assert tally.nicknames, tally.codes
    if tally.nicknames[-1] is not None:
        assert stored_nickname(url, "fuzzer") == tally.nicknames[-1]


def selects_viewer(query: str) -> bool:
    return any(
        isinstance(node, graphql.FieldNode) and node.name.value == "viewer"
        for node in _nodes(graphql.parse(query))
    )


def _nodes(node: Any) -> Iterator[Any]:
    yield node
    for key in node.keys:
        value = getattr(node, key, None)
        for child in value if isinstance(value, tuple | list) else [value]:
            if isinstance(child, graphql.Node):
                yield from _nodes(child)


def test_generated_anonymous_gets_are_public_only_when_they_may_be(
    server: tuple[str, str],
) -> None:
    """HTTP caching (README, "HTTP caching"): an anonymous GET is public only without
    errors and without viewer, then its ETag answers 304; anything else is private."""
    url, _ = server
    strategy = from_schema(sdl(), fields=["posts", "post", "viewer", "profile", "limits"])
    public = 0
    with httpx.Client(base_url=url, timeout=30) as client:

        @settings(
            max_examples=EXAMPLES // 2,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        @given(query=strategy)
        def send(query: str) -> None:
            nonlocal public
            answer = client.get("/graphql", params={"query": query})
            assert answer.status_code < 500, answer.text[:500]
            cache_control = answer.headers["cache-control"]
            if not cache_control.startswith("public"):
                assert cache_control == "private, no-store" and "etag" not in answer.headers
                return
            public += 1
            assert "errors" not in answer.json() and not selects_viewer(query), query
            etag = answer.headers["etag"]
            again = client.get("/graphql", params={"query": query}, headers={"if-none-match": etag})
            assert again.status_code == 304 and again.content == b"", query

        send()
    assert public > 0  # the property was tested on public answers, not only private ones


def stored_nickname(url: str, user_id: str) -> str | None:
    with httpx.Client(base_url=url, timeout=30) as client:
        response = client.post(
            "/graphql",
            json={
                "query": "query($id: ID!) { profile(userId: $id) { nickname } }",
                "variables": {"id": user_id},
            },
        )
    nickname: str | None = response.json()["data"]["profile"]["nickname"]
    return nickname


def all_posts(url: str) -> list[dict[str, Any]]:
    posts: list[dict[str, Any]] = []
    after = None
    with httpx.Client(base_url=url, timeout=30) as client:
        while True:
            response = client.post(
                "/graphql",
                json={
                    "query": "query($after: String) { posts(first: 100, after: $after) { "
                    "nodes { id authorId content tags imageKeys version createdAt } "
                    "pageInfo { hasNextPage endCursor } } }",
                    "variables": {"after": after},
                },
            )
            page = response.json()["data"]["posts"]
            posts += page["nodes"]
            if not page["pageInfo"]["hasNextPage"]:
                return posts
            after = page["pageInfo"]["endCursor"]
