"""/graphql and /healthz through the real ASGI app (``http/endpoint.py`` and the app
around it): the GraphQL-over-HTTP rules, request and field errors, tokens, health,
GraphiQL and CORS."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from starlette.applications import Starlette

from gql_api.app import create_app
from gql_api.auth.dev import DEV_AUDIENCE, DEV_ISSUER, mint_dev_token
from gql_api.stores.memory import MemoryStore
from gql_api.stores.sqlite import SqliteStore
from tests.helpers import DEV_SECRET
from tests.http_layer.conftest import (
    BROWSER_ACCEPT,
    CREATE,
    GRAPHQL_JSON,
    JSON,
    count_posts,
    gql,
    make_settings,
    store_of,
)

# --- the happy paths -----------------------------------------------------------------------


async def test_create_then_read_over_post_and_get(
    client: httpx.AsyncClient, token: Callable[..., str]
) -> None:
    created = await gql(client, CREATE, {"content": "hi", "tags": ["A"]}, token=token())
    assert created.status_code == 200
    assert created.headers["content-type"].startswith(JSON)
    post = created.json()["data"]["createPost"]
    assert (post["version"], post["content"], post["tags"]) == (1, "hi", ["a"])
    assert post["createdAt"].endswith("Z")
    query = "query One($id: ID!) { post(id: $id) { id content author { userId } } }"
    read = await client.get(
        "/graphql",
        params={"query": query, "variables": f'{{"id": "{post["id"]}"}}'},
        headers={"accept": JSON},
    )
    assert read.status_code == 200
    assert read.json() == {
        "data": {"post": {"id": post["id"], "content": "hi", "author": {"userId": "alice"}}}
    }


async def test_graphql_response_json_when_accepted(client: httpx.AsyncClient) -> None:
    response = await gql(client, "{ limits { maxPageSize } }", accept=GRAPHQL_JSON)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(GRAPHQL_JSON)
    assert response.json() == {"data": {"limits": {"maxPageSize": 100}}}


async def test_viewer_and_profiles(client: httpx.AsyncClient, token: Callable[..., str]) -> None:
    query = """{
      viewer { userId isAdmin profile { nickname } }
      profile(userId: "bob") { userId nickname }
    }"""
    anonymous = await gql(client, query)
    assert anonymous.json()["data"]["viewer"] is None
    assert anonymous.json()["data"]["profile"] == {"userId": "bob", "nickname": None}
    admin = await gql(client, query, token=token("root", admin=True, nickname="Boss"))
    assert admin.json()["data"]["viewer"] == {
        "userId": "root",
        "isAdmin": True,
        "profile": {"nickname": "Boss"},
    }


async def test_author_nickname_comes_from_the_token_claim(
    client: httpx.AsyncClient, token: Callable[..., str]
) -> None:
    await gql(client, CREATE, {"content": "hi"}, token=token("alice", nickname="Alice"))
    response = await gql(client, "{ posts { nodes { author { userId nickname } } } }")
    assert response.json()["data"]["posts"]["nodes"] == [
        {"author": {"userId": "alice", "nickname": "Alice"}}
    ]


UPDATE_PROFILE = "mutation($n: String!) { updateProfile(nickname: $n) { userId nickname } }"


async def test_a_stored_nickname_replaces_the_claim_everywhere(
    client: httpx.AsyncClient, token: Callable[..., str]
) -> None:
    alice = token("alice", nickname="Claimed")
    await gql(client, CREATE, {"content": "hi"}, token=alice)
    updated = await gql(client, UPDATE_PROFILE, {"n": "  Stored 🎉 "}, token=alice)
    assert updated.json() == {
        "data": {"updateProfile": {"userId": "alice", "nickname": "Stored 🎉"}}
    }
    query = """{
      viewer { profile { userId nickname } }
      profile(userId: "alice") { userId nickname }
      posts { nodes { author { userId nickname } } }
    }"""
    stored = {"userId": "alice", "nickname": "Stored 🎉"}
    for caller in (alice, token("bob")):
        data = (await gql(client, query, token=caller)).json()["data"]
        assert data["profile"] == stored
        assert data["posts"]["nodes"] == [{"author": stored}]
    assert (await gql(client, query, token=alice)).json()["data"]["viewer"] == {"profile": stored}


async def test_update_profile_refusals_change_nothing(
    client: httpx.AsyncClient, token: Callable[..., str]
) -> None:
    anonymous = await gql(client, UPDATE_PROFILE, {"n": "Nobody"})
    assert anonymous.json()["data"] is None
    assert anonymous.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    for bad in ("   ", "x" * 51, "two\nlines"):
        refused = await gql(client, UPDATE_PROFILE, {"n": bad}, token=token("alice"))
        assert refused.json()["errors"][0]["extensions"] == {
            "code": "BAD_USER_INPUT",
            "field": "nickname",
        }
    read = await gql(client, '{ profile(userId: "alice") { nickname } }')
    assert read.json() == {"data": {"profile": {"nickname": None}}}


async def test_fields_after_update_profile_in_one_request_see_the_new_nickname(
    client: httpx.AsyncClient, token: Callable[..., str]
) -> None:
    mutation = """mutation {
      before: createPost(input: {content: "a"}) { author { nickname } }
      updateProfile(nickname: "New") { nickname }
      after: createPost(input: {content: "b"}) { author { nickname } }
    }"""
    response = await gql(client, mutation, token=token("alice", nickname="Old"))
    assert response.json()["data"] == {
        "before": {"author": {"nickname": "Old"}},
        "updateProfile": {"nickname": "New"},
        "after": {"author": {"nickname": "New"}},
    }


async def test_authors_are_loaded_in_one_store_call(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    calls: list[list[str]] = []
    original = store.get_profiles

    async def counted(user_ids: Any) -> Any:
        calls.append(list(user_ids))
        return await original(user_ids)

    store.get_profiles = counted  # type: ignore[method-assign]
    settings = make_settings(tmp_path)
    app = create_app(settings, store=store)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        users = ["ann", "ben", "cat", "dan", "eve", "fay"]
        for user in users:
            token = mint_dev_token(settings, DEV_SECRET, user_id=user)
            await gql(client, UPDATE_PROFILE, {"n": user.title()}, token=token)
        for i in range(18):
            token = mint_dev_token(settings, DEV_SECRET, user_id=users[i % 6])
            await gql(client, CREATE, {"content": f"#{i}"}, token=token)
        assert calls == []  # writes read no profile
        response = await gql(
            client,
            "{ posts { nodes { author { userId } } edges { node { author { nickname } } } } }",
        )
    data = response.json()["data"]["posts"]
    assert [node["author"]["userId"] for node in data["nodes"]] == [
        users[i % 6] for i in range(17, -1, -1)
    ]
    assert [edge["node"]["author"]["nickname"] for edge in data["edges"]] == [
        users[i % 6].title() for i in range(17, -1, -1)
    ]
    assert calls == [["fay", "eve", "dan", "cat", "ben", "ann"]]


# --- request errors ------------------------------------------------------------------------


async def test_mutation_over_get_is_405_and_changes_nothing(
    app: Starlette, client: httpx.AsyncClient, token: Callable[..., str]
) -> None:
    response = await client.get(
        "/graphql",
        params={"query": 'mutation { createPost(input: {content: "x"}) { id } }'},
        headers={"authorization": f"Bearer {token()}", "accept": JSON},
    )
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"
    assert await count_posts(app) == 0


async def test_other_methods_are_405(client: httpx.AsyncClient) -> None:
    response = await client.put("/graphql", json={"query": "{ limits { maxTags } }"})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"


async def test_body_over_the_limit_is_413_before_parsing(
    app: Starlette, client: httpx.AsyncClient, token: Callable[..., str]
) -> None:
    big = '{"query": "mutation { createPost(input: {content: \\"' + "x" * 5000 + '\\"}) { id } }"}'
    headers = {"content-type": JSON, "authorization": f"Bearer {token()}"}
    declared = await client.post("/graphql", content=big, headers=headers)
    assert declared.status_code == 413
    assert declared.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        for start in range(0, len(big), 1000):
            yield big[start : start + 1000].encode()

    streamed = await client.post("/graphql", content=chunks(), headers=headers)
    assert streamed.status_code == 413
    assert await count_posts(app) == 0


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        ("{not json", JSON, 400, "BAD_REQUEST"),
        ("[1, 2]", JSON, 400, "BAD_REQUEST"),
        ('{"variables": {}}', JSON, 400, "BAD_REQUEST"),
        ('{"query": ""}', JSON, 400, "BAD_REQUEST"),
        ('{"query": 5}', JSON, 400, "BAD_REQUEST"),
        ('{"query": "{ limits { maxTags } }", "variables": [1]}', JSON, 400, "BAD_REQUEST"),
        ('{"query": "{ limits { maxTags } }", "operationName": 3}', JSON, 400, "BAD_REQUEST"),
        ("query=x", "application/x-www-form-urlencoded", 415, "UNSUPPORTED_MEDIA_TYPE"),
        ('{"query": "{ limits { maxTags } }"}', "text/plain", 415, "UNSUPPORTED_MEDIA_TYPE"),
    ],
)
async def test_malformed_requests(
    client: httpx.AsyncClient, content: str, content_type: str, status: int, code: str
) -> None:
    response = await client.post(
        "/graphql", content=content, headers={"content-type": content_type}
    )
    assert response.status_code == status
    body = response.json()
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == code


async def test_get_without_query_is_400_for_clients(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers={"accept": JSON})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("{ posts { ", "GRAPHQL_PARSE_FAILED"),
        ("{ nope }", "GRAPHQL_VALIDATION_FAILED"),
        ("query A { limits { maxTags } } query B { limits { maxTags } }", "BAD_REQUEST"),
    ],
)
async def test_document_errors(client: httpx.AsyncClient, query: str, code: str) -> None:
    legacy = await gql(client, query)
    assert legacy.status_code == 200
    assert legacy.json()["errors"][0]["extensions"]["code"] == code
    modern = await gql(client, query, accept=GRAPHQL_JSON)
    assert modern.status_code == 400
    assert "data" not in modern.json()
    assert modern.json()["errors"][0]["extensions"]["code"] == code


async def test_variables_of_the_wrong_type_are_bad_user_input(client: httpx.AsyncClient) -> None:
    response = await gql(
        client,
        "query($n: Int) { posts(first: $n) { nodes { id } } }",
        {"n": "ten"},
        accept=GRAPHQL_JSON,
    )
    assert response.status_code == 400
    body = response.json()
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_unacceptable_accept_header_is_406(client: httpx.AsyncClient) -> None:
    response = await gql(client, "{ limits { maxTags } }", accept="text/csv")
    assert response.status_code == 406


# --- field errors --------------------------------------------------------------------------


async def test_rule_errors_carry_their_codes(
    client: httpx.AsyncClient, token: Callable[..., str]
) -> None:
    alice = token("alice")
    created = await gql(client, CREATE, {"content": "mine"}, token=alice)
    post_id = created.json()["data"]["createPost"]["id"]
    update = """mutation($id: ID!, $v: Int) {
      updatePost(id: $id, input: {content: "changed"}, expectedVersion: $v) { version } }"""
    cases = [
        (None, {"id": post_id}, "UNAUTHENTICATED"),
        (token("bob"), {"id": post_id}, "FORBIDDEN"),
        (alice, {"id": "missing"}, "NOT_FOUND"),
        (alice, {"id": post_id, "v": 9}, "CONFLICT"),
    ]
    for bearer, variables, code in cases:
        response = await gql(client, update, variables, token=bearer, accept=GRAPHQL_JSON)
        assert response.status_code == 200
        body = response.json()
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == code
        assert body["errors"][0]["path"] == ["updatePost"]
    conflict = await gql(client, update, {"id": post_id, "v": 9}, token=alice)
    assert conflict.json()["errors"][0]["extensions"]["currentVersion"] == 1
    bad = await gql(client, CREATE, {"content": "x", "tags": ["a b"]}, token=alice)
    assert bad.json()["errors"][0]["extensions"] == {
        "code": "BAD_USER_INPUT",
        "field": "input.tags[0]",
    }


async def test_lone_surrogates_are_bad_user_input_not_a_crash(
    app: Starlette, client: httpx.AsyncClient, token: Callable[..., str]
) -> None:
    body = (
        '{"query": "mutation($c: String!) { createPost(input: {content: $c}) { id } }", '
        '"variables": {"c": "x\\ud800y"}}'
    )
    response = await client.post(
        "/graphql",
        content=body,
        headers={"content-type": JSON, "authorization": f"Bearer {token()}"},
    )
    assert response.status_code == 200
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert await count_posts(app) == 0


async def test_internal_errors_are_masked_and_logged_with_a_request_id(
    app: Starlette, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("SELECT secret FROM /var/lib/db.sqlite")

    app.state.service.get_post = broken
    with caplog.at_level(logging.INFO):
        response = await client.post(
            "/graphql",
            json={"query": '{ post(id: "x") { id } }'},
            headers={"x-request-id": "req-42"},
        )
    body = response.json()
    error = body["errors"][0]
    assert "secret" not in response.text and "sqlite" not in response.text
    # The server's own id, not the client's (which any client may reuse or forge).
    ours = response.headers["x-request-id"]
    assert ours != "req-42" and len(ours) == 32
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": ours}
    assert ours in error["message"]
    logged = "\n".join(r.getMessage() + str(r.exc_info) for r in caplog.records)
    assert ours in logged and "SELECT secret" in logged
    (access,) = [r for r in caplog.records if r.name == "gql_api.access"]
    assert (access.request_id, access.client_request_id) == (ours, "req-42")  # type: ignore[attr-defined]


# --- tokens --------------------------------------------------------------------------------


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"sub": "alice", "iss": DEV_ISSUER, "aud": DEV_AUDIENCE, "iat": now, "exp": now + 600}
    claims.update(overrides)
    return claims


BAD_TOKENS = {
    "expired": jwt.encode(_claims(exp=int(time.time()) - 3600), DEV_SECRET, algorithm="HS256"),
    "wrong secret": jwt.encode(
        _claims(), "another-secret-0123456789-0123456789", algorithm="HS256"
    ),
    "tampered": jwt.encode(_claims(), DEV_SECRET, algorithm="HS256")[:-4] + "AAAA",
    "wrong audience": jwt.encode(_claims(aud="other"), DEV_SECRET, algorithm="HS256"),
    "no subject": jwt.encode(
        {k: v for k, v in _claims().items() if k != "sub"}, DEV_SECRET, algorithm="HS256"
    ),
    "alg none": jwt.encode(_claims(), "", algorithm="none"),
    "garbage": "not.a.token",
    "huge": "x" * 9000,
}


@pytest.mark.parametrize("name", list(BAD_TOKENS))
@pytest.mark.parametrize("operation", ["query", "mutation"])
async def test_bad_tokens_are_401_on_queries_and_mutations(
    app: Starlette, client: httpx.AsyncClient, name: str, operation: str
) -> None:
    query = CREATE if operation == "mutation" else "{ limits { maxTags } }"
    response = await gql(client, query, {"content": "x"}, token=BAD_TOKENS[name])
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert response.json() == {
        "errors": [
            {
                "message": response.json()["errors"][0]["message"],
                "extensions": {"code": "UNAUTHENTICATED"},
            }
        ]
    }
    assert await count_posts(app) == 0


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Bearer    ", "token"])
async def test_malformed_authorization_header_is_401(
    client: httpx.AsyncClient, header: str
) -> None:
    response = await client.post(
        "/graphql", json={"query": "{ limits { maxTags } }"}, headers={"authorization": header}
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_request"'


async def test_expired_token_message_says_so(client: httpx.AsyncClient) -> None:
    response = await gql(client, "{ limits { maxTags } }", token=BAD_TOKENS["expired"])
    assert response.json()["errors"][0]["message"] == "token has expired"


# --- health, GraphiQL, CORS ----------------------------------------------------------------


async def test_healthz_answers_200_when_the_store_answers(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "store": store_of(app).name}


async def test_healthz_answers_503_when_the_store_does_not(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    await store_of(app).close()  # the database is gone
    response = await client.get("/healthz")
    assert (response.status_code, response.json()) == (
        503,
        {"status": "unavailable", "store": store_of(app).name},
    )
    query = await gql(client, '{ post(id: "00000000000000000000000000000000") { id } }')
    assert query.json()["errors"][0]["extensions"]["code"] == "STORE_UNAVAILABLE"
    await store_of(app).open()  # the lifespan closes it again


async def test_browsers_get_graphiql(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers={"accept": BROWSER_ACCEPT})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "graphiql" in response.text.lower()
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self';" in policy
    assert "unsafe-inline" not in policy and "http" not in policy
    assert "https://" not in response.text  # every asset from this server
    script = await client.get("/graphiql/static/graphiql.min.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith(("text/javascript", "application/javascript"))


async def test_graphiql_can_be_switched_off(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, graphiql=False))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        response = await client.get("/graphql", headers={"accept": BROWSER_ACCEPT})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


async def test_cors_allows_only_configured_origins(client: httpx.AsyncClient) -> None:
    preflight = {
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization,content-type",
    }
    allowed = await client.options(
        "/graphql", headers={"origin": "https://app.example", **preflight}
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    refused = await client.options(
        "/graphql", headers={"origin": "https://evil.example", **preflight}
    )
    assert "access-control-allow-origin" not in refused.headers
    simple = await gql(client, "{ limits { maxTags } }")
    assert "access-control-allow-origin" not in simple.headers


async def test_an_unforeseen_failure_is_a_masked_json_500(
    app: Starlette, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("/srv/internal/path")

    endpoint = app.routes[0].app  # type: ignore[attr-defined]
    endpoint.executor.prepare = broken
    with caplog.at_level(logging.ERROR):
        response = await gql(client, "{ limits { maxTags } }")
    assert response.status_code == 500
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert error["extensions"]["requestId"] == response.headers["x-request-id"]
    assert "/srv/internal/path" not in response.text
    assert "/srv/internal/path" in caplog.text


async def test_a_document_of_too_many_tokens_is_refused_while_parsing(tmp_path: Path) -> None:
    aliases = " ".join(f"a{i}: limits {{ maxTags }}" for i in range(2000))  # 12,000 tokens
    app = create_app(make_settings(tmp_path))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        response = await gql(client, f"{{ {aliases} }}", accept=GRAPHQL_JSON)
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "TOO_MANY_TOKENS"
    assert "tokens" in error["message"]


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"query": "{ limits { maxTags } }", "variables": ' + b"[" * 50_000,
    ],
)
async def test_json_nested_too_deep_is_400(tmp_path: Path, body: bytes) -> None:
    app = create_app(make_settings(tmp_path), store=MemoryStore())
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        response = await client.post("/graphql", content=body, headers={"content-type": JSON})
        assert response.status_code == 400
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
        nested = "[" * 5000 + "]" * 5000
        response = await client.get(
            "/graphql", params={"query": "{ limits { maxTags } }", "variables": nested}
        )
        assert response.status_code == 400


@pytest.fixture
async def lenient_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """An app whose alias limit is raised, to reach the cost limit behind it."""
    app = create_app(make_settings(tmp_path, max_aliases=1000), store=MemoryStore())
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http,
    ):
        yield http


async def test_amplifying_queries_are_refused_before_execution(
    lenient_client: httpx.AsyncClient,
) -> None:
    client = lenient_client
    page = "posts(first: 100) { nodes { content author { nickname } } }"
    many = " ".join(f"a{i}: {page}" for i in range(60))
    response = await gql(client, f"{{ {many} }}", accept=GRAPHQL_JSON)
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert "estimated cost 24060" in error["message"]  # 60 * (1 + 100 * 4)
    by_variable = await gql(
        client,
        "query($n: Int) { "
        + " ".join(f"a{i}: posts(first: $n) {{ nodes {{ id content }} }}" for i in range(70))
        + " }",
        {"n": 100},
    )
    assert by_variable.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    fine = await gql(client, f"{{ {page} a: {page} }}")
    assert fine.json() == {"data": {"posts": {"nodes": []}, "a": {"nodes": []}}}
