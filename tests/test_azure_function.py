"""The Azure Functions entry point, invoked as the Functions host invokes it: its one HTTP
function called with ``azure.functions.HttpRequest`` objects, on the Cosmos DB test
server and Azurite."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import subprocess
import sys
import urllib.parse
import uuid
from collections.abc import MutableMapping
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import azure.functions as func
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import from_schema

from gql_api.auth.dev import mint_dev_token
from gql_api.settings import Settings, SettingsError
from tests.conftest import COSMOS_KEY
from tests.helpers import cli_env, run_cli
from tests.image_storages import azurite_connection, azurite_url, make_bucket

__all__ = ["azurite_url"]  # the fixture, used by name

SECRET = "azure-test-secret-0123456789abcdef"
HOST = "https://gql-api.azurewebsites.net"
CREATE = (
    'mutation { createPost(input: {content: "from Azure", tags: ["Cloud"]}) '
    "{ id author { userId } } }"
)


@pytest.fixture
def azure_env(
    cosmos_url: str,
    azurite_url: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    bucket = asyncio.run(make_bucket("azure", request))
    values = {
        "GQL_API_STORE": "cosmos",
        "GQL_API_COSMOS_URL": cosmos_url,
        "GQL_API_COSMOS_KEY": COSMOS_KEY,
        "GQL_API_COSMOS_VERIFY_TLS": "false",
        "GQL_API_COSMOS_DATABASE": f"functions{uuid.uuid4().hex[:8]}",
        "GQL_API_IMAGES_BUCKET": bucket,
        "GQL_API_AZURE_STORAGE_CONNECTION_STRING": azurite_connection(azurite_url),
        "GQL_API_DEV_SECRET": SECRET,
    }
    provision = run_cli(["provision"], cli_env(**values))
    assert provision.returncode == 0, provision.stderr
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def function_app(azure_env: dict[str, str]) -> ModuleType:
    import gql_api.azure_function as module

    return importlib.reload(module)  # built from this test's settings


async def invoke(
    module: ModuleType,
    method: str,
    path: str,
    *,
    body: object = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> func.HttpResponse:
    """One invocation as the host makes it: the registered function, a request, a context,
    on the one event loop the host runs every invocation on (the test's)."""
    handler = _handler(module.app)
    sent = {"content-type": "application/json", "accept": "application/json", **(headers or {})}
    if token is not None:
        sent["authorization"] = f"Bearer {token}"
    query = "&".join(f"{k}={v}" for k, v in (params or {}).items())
    request = func.HttpRequest(
        method,
        f"{HOST}{path}" + (f"?{query}" if query else ""),
        headers=sent,
        params=params or {},
        body=b"" if body is None else json.dumps(body).encode(),
    )
    context = SimpleNamespace(
        invocation_id=f"inv-{uuid.uuid4()}",
        function_name="http_app_func",
        function_directory="/home/site/wwwroot",
        thread_local_storage=None,
        trace_context=None,
        retry_context=None,
    )
    response: func.HttpResponse = await handler(request, context)
    return response


_HANDLERS: dict[int, tuple[object, Any]] = {}


def _handler(app: func.AsgiFunctionApp) -> Any:
    """The app's one function, as the host indexes it (once: indexing twice is refused)."""
    if id(app) not in _HANDLERS:
        (function,) = app.get_functions()
        _HANDLERS[id(app)] = (app, function.get_user_function())
    return _HANDLERS[id(app)][1]


def answer(response: func.HttpResponse) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(response.get_body())
    return parsed


async def test_queries_mutations_and_errors_through_the_function(
    function_app: ModuleType, azure_env: dict[str, str]
) -> None:
    token = mint_dev_token(Settings(dev_secret=SECRET), SECRET, user_id="ada")
    created = await invoke(function_app, "POST", "/graphql", body={"query": CREATE}, token=token)
    assert created.status_code == 200, created.get_body()
    post = answer(created)["data"]["createPost"]
    assert post["author"] == {"userId": "ada"}
    assert created.headers["x-request-id"].startswith("inv-")  # the host's invocation id

    read = {
        "query": "query($id: ID!) { post(id: $id) { content tags } }",
        "variables": {"id": post["id"]},
    }
    found = await invoke(function_app, "POST", "/graphql", body=read)
    assert answer(found) == {"data": {"post": {"content": "from Azure", "tags": ["cloud"]}}}
    by_get = await invoke(function_app, "GET", "/graphql", params={"query": "{posts{nodes{id}}}"})
    assert answer(by_get)["data"]["posts"]["nodes"] == [{"id": post["id"]}]

    anonymous = await invoke(function_app, "POST", "/graphql", body={"query": CREATE})
    assert answer(anonymous)["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    forged = await invoke(
        function_app, "POST", "/graphql", body={"query": CREATE}, token="forged.token.x"
    )
    assert forged.status_code == 401
    invalid = await invoke(function_app, "POST", "/graphql", body={"query": "{ nope }"})
    assert answer(invalid)["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    broken = await invoke(function_app, "POST", "/graphql", headers={"content-type": "text/plain"})
    assert broken.status_code == 415

    uploads = await invoke(
        function_app,
        "POST",
        "/graphql",
        body={"query": "mutation { createUploadUrls(count: 1) { key url } }"},
        token=token,
    )
    (upload,) = answer(uploads)["data"]["createUploadUrls"]
    assert upload["url"].startswith(
        azure_env["GQL_API_AZURE_STORAGE_CONNECTION_STRING"].split("BlobEndpoint=")[1].rstrip(";")
    )


@pytest.fixture
def deployed_app(azure_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The function app as deployed: the host's variable set, so signed-in with JWTs."""
    monkeypatch.setenv("FUNCTIONS_WORKER_RUNTIME", "python")
    monkeypatch.delenv("GQL_API_DEV_SECRET")
    monkeypatch.setenv("GQL_API_AUTH", "jwt")
    monkeypatch.setenv("GQL_API_JWKS_URL", "http://127.0.0.1:9/keys")  # asked for no key here
    monkeypatch.setenv("GQL_API_JWT_ISSUER", "https://issuer.example")
    monkeypatch.setenv("GQL_API_JWT_AUDIENCE", "gql-api")
    import gql_api.azure_function as module

    return importlib.reload(module)


async def test_healthz_and_graphiql_off(deployed_app: ModuleType) -> None:
    function_app = deployed_app
    health = await invoke(function_app, "GET", "/healthz")
    assert (health.status_code, answer(health)) == (200, {"status": "ok", "store": "cosmos"})
    page = await invoke(function_app, "GET", "/graphql", headers={"accept": "text/html"})
    assert "graphiql" not in page.get_body().decode().lower()
    assert page.status_code == 406  # no GraphiQL to show: a browser gets no page
    assert answer(page)["errors"][0]["extensions"]["code"] == "NOT_ACCEPTABLE"


async def test_a_store_that_does_not_answer_is_an_error_code_every_time(
    azure_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never the host's bare 500 for a dead instance: each request is tried and answered."""
    monkeypatch.setenv("GQL_API_COSMOS_URL", "http://127.0.0.1:9")  # nothing listens
    monkeypatch.setenv("GQL_API_STORE_TIMEOUT", "2")
    import gql_api.azure_function as module

    module = importlib.reload(module)
    for _ in range(2):
        response = await invoke(module, "GET", "/graphql", params={"query": "{posts{nodes{id}}}"})
        assert response.status_code in (200, 503)
        assert answer(response)["errors"][0]["extensions"]["code"] == "STORE_UNAVAILABLE"
    health = await invoke(module, "GET", "/healthz")
    assert (health.status_code, answer(health)["status"]) == (503, "unavailable")


async def test_the_lifespan_is_answered_without_starting_the_app() -> None:
    """The host's start-up message is answered at once; the app starts on its first request."""
    from gql_api.azure_function import LifespanSkipped

    calls: list[str] = []

    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        calls.append(scope["type"])

    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    shim = LifespanSkipped(app)
    await shim({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    await shim({"type": "http"}, receive, send)
    assert calls == ["http"]


def test_dev_auth_is_refused_at_load_on_azure_functions(
    azure_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FUNCTIONS_WORKER_RUNTIME", "python")
    import gql_api.azure_function as module

    with pytest.raises(SettingsError, match="Azure Functions"):
        importlib.reload(module)


PROBE = """
import json, sys
import gql_api.azure_function
print(json.dumps(sorted(sys.modules)))
"""


def test_loading_the_function_app_imports_no_other_cloud(cosmos_url: str) -> None:
    env = cli_env(
        GQL_API_STORE="cosmos",
        GQL_API_COSMOS_URL=cosmos_url,
        GQL_API_COSMOS_KEY=COSMOS_KEY,
        GQL_API_DEV_SECRET=SECRET,
    )
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
        ).stdout
    )
    assert "azure.functions" in loaded
    assert "gql_api.stores.cosmos" in loaded
    roots = {name.split(".")[0] for name in loaded}
    assert not roots & {"boto3", "botocore", "aioboto3", "aiobotocore", "mangum", "google", "grpc"}
    assert not roots & {"uvicorn", "aiosqlite"}


@pytest.fixture
def memory_function_app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ModuleType:
    for name in [n for n in os.environ if n.startswith("GQL_API_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("GQL_API_STORE", "memory")
    monkeypatch.setenv("GQL_API_DEV_SECRET", SECRET)
    monkeypatch.setenv("GQL_API_SQLITE_PATH", str(tmp_path / "unused.db"))
    import gql_api.azure_function as module

    return importlib.reload(module)


SDL = (Path(__file__).resolve().parent.parent / "schema.graphql").read_text()
HEADERS = st.dictionaries(
    st.sampled_from(["content-type", "accept", "authorization", "x-request-id", "content-length"]),
    st.one_of(
        st.sampled_from(
            [
                "application/json",
                "application/graphql",
                "application/graphql-response+json",
                "text/html",
                "text/plain; charset=utf-8",
                "Bearer x.y.z",
                "Bearer ",
                "*/*;q=0",
                "12",
            ]
        ),
        st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
    ),
    max_size=5,
)
BODIES = st.one_of(
    st.binary(max_size=200),
    from_schema(SDL, fields=["posts", "post", "viewer", "limits"]).map(
        lambda query: json.dumps({"query": query}).encode()
    ),
    st.builds(
        lambda query, variables: json.dumps({"query": query, "variables": variables}).encode(),
        st.sampled_from(["{ posts { nodes { id } } }", "query($id: ID!) { post(id: $id) { id } }"]),
        st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3),
    ),
)


@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "HEAD"]),
    path=st.sampled_from(["/graphql", "/healthz", "/", "/graphql/more", "/graphiql/static/x"]),
    headers=HEADERS,
    body=BODIES,
    query=st.dictionaries(
        st.sampled_from(["query", "variables", "operationName"]), st.text(max_size=30), max_size=3
    ),
)
def test_whatever_the_host_hands_the_function_it_answers_without_a_500(
    memory_function_app: ModuleType,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
    query: dict[str, str],
) -> None:
    """Requests drawn at random, through azure.functions' own request objects and ASGI
    adapter: an answer for each, never a server error, every error with its code."""
    handler = _handler(memory_function_app.app)
    request = func.HttpRequest(
        method,
        f"{HOST}{path}?{urllib.parse.urlencode(query)}",
        headers=headers,
        params=query,
        body=body,
    )
    response: func.HttpResponse = asyncio.run(handler(request, None))
    assert response.status_code < 500, (response.status_code, response.get_body()[:300])
    content_type = response.headers.get("content-type", "")
    if "json" in content_type and response.get_body():
        answer = json.loads(response.get_body())
        for error in answer.get("errors", []):
            assert isinstance(error["extensions"]["code"], str), error
