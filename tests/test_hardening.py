"""Hostile queries: each limit refused with its own code, and a live server that keeps serving."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gql_api.app import create_app
from gql_api.settings import Settings
from gql_api.stores.memory import MemoryStore
from tests.helpers import DEV_SECRET, NO_RATE_LIMITS, cli_env
from tests.servers import gql_api_server

GRAPHQL_JSON = "application/graphql-response+json"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(sqlite_path=tmp_path / "db.sqlite", dev_secret=DEV_SECRET, store="memory")


async def ask(settings: Settings, query: str, variables: dict[str, Any] | None = None) -> Any:
    app = create_app(settings, store=MemoryStore())
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        response = await client.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"accept": GRAPHQL_JSON},
        )
    return response.status_code, response.json()


def codes(body: Any) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]


DEEP = "{ posts { edges { node { author { userId } } } } }"  # 5 levels


async def test_depth_limit(settings: Settings) -> None:
    assert (await ask(settings, DEEP))[0] == 200
    shallow = settings.model_copy(update={"max_depth": 4})
    status, body = await ask(shallow, DEEP)
    assert (status, codes(body)) == (400, ["QUERY_TOO_DEEP"])
    assert "5 levels deep, at most 4" in body["errors"][0]["message"]
    through_fragments = (
        "{ posts { ...E } } fragment E on PostConnection { edges { node { ...N } } } "
        "fragment N on Post { author { userId } }"
    )
    status, body = await ask(shallow, through_fragments)
    assert codes(body) == ["QUERY_TOO_DEEP"]


async def test_alias_limit(settings: Settings) -> None:
    thirty = " ".join(f"a{i}: limits {{ maxTags }}" for i in range(30))
    assert (await ask(settings, f"{{ {thirty} }}"))[0] == 200
    status, body = await ask(settings, f"{{ {thirty} extra: limits {{ maxTags }} }}")
    assert (status, codes(body)) == (400, ["TOO_MANY_ALIASES"])


async def test_directive_limit(settings: Settings) -> None:
    twenty = " ".join(f"f{i}: maxTags @include(if: true)" for i in range(20))
    assert (await ask(settings, f"{{ limits {{ {twenty} }} }}"))[0] == 200
    status, body = await ask(
        settings, f"{{ limits {{ {twenty} last: maxTags @skip(if: false) }} }}"
    )
    assert (status, codes(body)) == (400, ["TOO_MANY_DIRECTIVES"])


async def test_token_limit_is_configurable(settings: Settings) -> None:
    small = settings.model_copy(update={"max_tokens": 100})
    fields = " ".join("maxTags" for _ in range(120))
    status, body = await ask(small, f"{{ limits {{ {fields} }} }}")
    assert (status, codes(body)) == (400, ["TOO_MANY_TOKENS"])


async def test_page_size_is_capped(settings: Settings) -> None:
    _, body = await ask(settings, "{ posts(first: 101) { nodes { id } } }")
    assert codes(body) == ["BAD_USER_INPUT"]


INTROSPECT = "{ __schema { queryType { name } } }"


async def test_introspection_and_suggestions_are_on_locally(settings: Settings) -> None:
    assert (await ask(settings, INTROSPECT))[1] == {
        "data": {"__schema": {"queryType": {"name": "Query"}}}
    }
    _, body = await ask(settings, "{ postz { nodes { id } } }")
    assert "Did you mean" in body["errors"][0]["message"]


async def test_introspection_and_suggestions_can_be_switched_off(settings: Settings) -> None:
    closed = settings.model_copy(update={"introspection": False})
    status, body = await ask(closed, INTROSPECT)
    assert status == 400
    assert set(codes(body)) == {"GRAPHQL_VALIDATION_FAILED"}
    assert "introspection" in body["errors"][0]["message"]
    _, body = await ask(closed, "{ postz { nodes { id } } }")
    assert "Did you mean" not in body["errors"][0]["message"]


def test_introspection_is_off_by_default_on_lambda() -> None:
    on_lambda = Settings(
        lambda_function_name="gql-api",
        auth="jwt",
        jwks_url="https://keys.example/jwks.json",
        jwt_issuer="https://issuer.example/",
        jwt_audience="api",
    )
    assert on_lambda.introspection_enabled is False
    assert on_lambda.model_copy(update={"introspection": True}).introspection_enabled
    assert Settings().introspection_enabled


# --- a live server under hostile requests ----------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = cli_env(
        GQL_API_STORE="memory",
        GQL_API_DEV_SECRET=DEV_SECRET,
        GQL_API_SQLITE_PATH=str(tmp_path_factory.mktemp("live") / "db.sqlite"),
        GQL_API_LOG_LEVEL="WARNING",
        **NO_RATE_LIMITS,  # hostile requests and the ordinary ones all from one address
    )
    with gql_api_server(env) as (url, _):
        yield url


@pytest.fixture
async def http(live: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live, timeout=30) as client:
        yield client


def json_body(query: str) -> bytes:
    return json.dumps({"query": query}).encode()


def _malicious() -> dict[str, tuple[bytes, set[int], set[str]]]:
    deep = "{" + "posts { nodes { author { " * 400 + "userId" + " } } }" * 400 + "}"
    bomb = (
        "{ "
        + " ".join(f"a{i}: posts(first: 100) {{ nodes {{ content }} }}" for i in range(3000))
        + " }"
    )
    cycle = (
        "{ posts { ...A } } fragment A on PostConnection { ...B } "
        "fragment B on PostConnection { ...A }"
    )
    variables = (
        "query(" + ", ".join(f"$v{i}: Int" for i in range(5000)) + ") { limits { maxTags } }"
    )
    giant = (
        '{"query": "mutation { createPost(input: {content: \\"' + "x" * 900_000 + '\\"}) { id } }"}'
    )
    return {
        "deep nesting": (json_body(deep), {400}, {"QUERY_TOO_DEEP"}),
        "alias bomb": (json_body(bomb), {400}, {"TOO_MANY_TOKENS", "TOO_MANY_ALIASES"}),
        "fragment cycle": (json_body(cycle), {400}, {"GRAPHQL_VALIDATION_FAILED"}),
        "variables": (json_body(variables), {400}, {"TOO_MANY_TOKENS"}),
        "giant string": (giant.encode(), {200, 401}, {"UNAUTHENTICATED"}),
        "invalid utf-8": (b'{"query": "{ limits { maxTags } }\xff\xfe"}', {400}, {"BAD_REQUEST"}),
        "10 MB body": (b'{"query": "' + b"a" * 10_000_000 + b'"}', {413}, {"PAYLOAD_TOO_LARGE"}),
    }


@pytest.mark.parametrize("name", list(_malicious()))
async def test_hostile_requests_are_refused_quickly_with_a_code(
    http: httpx.AsyncClient, name: str
) -> None:
    body, statuses, expected = _malicious()[name]
    started = time.monotonic()
    response = await http.post(
        "/graphql",
        content=body,
        headers={"content-type": "application/json", "accept": GRAPHQL_JSON},
    )
    elapsed = time.monotonic() - started
    assert response.status_code in statuses, response.text[:300]
    got = {error["extensions"]["code"] for error in response.json()["errors"]}
    assert got & expected, got
    assert elapsed < 5, f"{name} took {elapsed:.1f}s"


async def test_the_server_keeps_serving_while_attacked(http: httpx.AsyncClient) -> None:
    attacks = [
        http.post("/graphql", content=body, headers={"content-type": "application/json"})
        for body, _, _ in _malicious().values()
    ]
    probes = [http.get("/graphql", params={"query": "{ limits { maxTags } }"}) for _ in range(20)]
    results = await asyncio.gather(*attacks, *probes)
    assert all(r.status_code < 500 for r in results)
    assert all(r.json() == {"data": {"limits": {"maxTags": 10}}} for r in results[len(attacks) :])
    assert (await http.get("/healthz")).status_code == 200


AUDIT = Path(__file__).with_name("graphql_http")


def test_graphql_over_http_audits_pass_with_no_warning(live: str) -> None:
    """graphql-http's server audits: 0 MUST failures and 0 SHOULD warnings."""
    if not (AUDIT / "node_modules" / "graphql-http").exists():
        raise RuntimeError("run `make test`: it installs tests/graphql_http (npm ci)")
    result = subprocess.run(
        ["node", str(AUDIT / "audit.mjs"), f"{live}/graphql"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["total"] > 50
    assert report["errors"] == []
    assert report["warnings"] == []


async def test_a_query_may_be_posted_as_application_graphql(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/graphql",
        content=b"{ limits { maxTags } }",
        headers={"content-type": "application/graphql"},
    )
    assert response.json() == {"data": {"limits": {"maxTags": 10}}}


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""]
)
async def test_posts_a_browser_may_send_cross_site_are_415(
    http: httpx.AsyncClient, content_type: str
) -> None:
    response = await http.post(
        "/graphql",
        content=b'{"query": "mutation { deletePost(id: \\"x\\") { id } }"}',
        headers={"content-type": content_type, "cookie": "session=abc"},
    )
    assert response.status_code == 415
    assert response.json()["errors"][0]["extensions"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


async def test_fragments_spread_twice_at_every_level_are_not_exponential(
    http: httpx.AsyncClient,
) -> None:
    levels = 40  # 2**40 paths if each fragment were expanded where it is spread
    fragments = " ".join(
        f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)
    )
    query = f"query {{ ...F0 }} {fragments} fragment F{levels} on Query {{ limits {{ maxTags }} }}"
    started = time.monotonic()
    response = await http.post("/graphql", json={"query": query})
    assert time.monotonic() - started < 3
    # Counted per spread (a safe over-estimate: execution merges them), it is refused.
    assert [e["extensions"]["code"] for e in response.json()["errors"]] == ["QUERY_TOO_COMPLEX"]


async def test_a_variables_default_counts_in_the_cost(settings: Settings) -> None:
    lenient = settings.model_copy(update={"max_aliases": 1000})
    fields = " ".join(f"a{i}: posts(first: $n) {{ nodes {{ id content }} }}" for i in range(70))
    status, body = await ask(lenient, f"query($n: Int = 100) {{ {fields} }}")
    assert (status, codes(body)) == (400, ["QUERY_TOO_COMPLEX"])
    assert "estimated cost 21070" in body["errors"][0]["message"]  # 70 * (1 + 100 * 3)


async def test_a_store_that_fails_to_start_on_lambda_is_a_json_503(settings: Settings) -> None:
    class Broken(MemoryStore):
        async def open(self) -> None:
            raise ValueError("Invalid endpoint: nonsense")

    app = create_app(settings, store=Broken())
    transport = httpx.ASGITransport(app=app)  # no lifespan: the first request starts it
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/graphql", json={"query": "{ limits { maxTags } }"})
    assert response.status_code == 503
    assert response.json()["errors"][0]["extensions"]["code"] == "STORE_UNAVAILABLE"
    assert app.state.runtime.failure.endswith("Invalid endpoint: nonsense")
