"""The Lambda handler, invoked as Lambda invokes it, on the DynamoDB store (moto server)."""

from __future__ import annotations

import asyncio
import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gql_api.auth.dev import mint_dev_token
from gql_api.settings import Settings, SettingsError
from tests.helpers import cli_env, run_cli
from tests.lambda_events import SHAPES, event
from tests.servers import reset_moto

TABLE = "gql-api-lambda"
SECRET = "lambda-test-secret-0123456789abcdef"


class Context:
    """What Lambda passes as the context object (the parts the handler reads)."""

    function_name = "gql-api"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    log_group_name = "/aws/lambda/gql-api"
    log_stream_name = "2026/11/28/[$LATEST]abc"
    identity = None
    client_context = None
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:gql-api"

    def __init__(self, request_id: str) -> None:
        self.aws_request_id = request_id

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@pytest.fixture
def lambda_env(moto_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    reset_moto(moto_url)
    values = {
        "GQL_API_STORE": "dynamodb",
        "GQL_API_DYNAMODB_ENDPOINT": moto_url,
        "GQL_API_DYNAMODB_TABLE": TABLE,
        "GQL_API_DEV_SECRET": SECRET,
        "GQL_API_SQLITE_PATH": str(tmp_path / "unused.db"),
    }
    provision = run_cli(["provision"], cli_env(**values))
    assert provision.returncode == 0, provision.stderr
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


class Clients:
    def __init__(self) -> None:
        self.created = 0


@pytest.fixture
def invoke(lambda_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import aioboto3

    clients = Clients()
    original = aioboto3.Session.client

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        clients.created += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(aioboto3.Session, "client", counted)
    import gql_api.lambda_handler as module

    module = importlib.reload(module)  # a fresh execution environment: init runs again

    def call(sample: dict[str, Any], request_id: str = "req-1") -> dict[str, Any]:
        response: dict[str, Any] = module.handler(sample, Context(request_id))  # type: ignore[arg-type]
        return response

    call.clients = clients  # type: ignore[attr-defined]
    yield call
    asyncio.get_event_loop().run_until_complete(module.app.state.runtime.stop())


def token() -> str:
    return mint_dev_token(Settings(dev_secret=SECRET), SECRET, user_id="ada", nickname="Ada")


def body_of(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


@pytest.mark.parametrize("shape", SHAPES)
def test_every_event_shape_serves_queries_mutations_and_errors(shape: str, invoke: Any) -> None:
    auth = {"authorization": f"Bearer {token()}"}
    create = json.dumps(
        {"query": 'mutation { createPost(input: {content: "from Lambda", tags: ["aws"]}) { id } }'}
    )
    created = invoke(event(shape, body=create, headers=auth), "req-create")
    assert created["statusCode"] == 200, created
    post_id = body_of(created)["data"]["createPost"]["id"]
    assert created["headers"]["x-request-id"] == "req-create"  # the Lambda request id

    read = json.dumps(
        {"query": '{ posts(tag: "aws") { nodes { id content author { nickname } } } }'}
    )
    listed = invoke(event(shape, body=read))
    assert body_of(listed)["data"]["posts"]["nodes"] == [
        {"id": post_id, "content": "from Lambda", "author": {"nickname": "Ada"}}
    ]

    got = invoke(
        event(
            shape, method="GET", body=None, query={"query": f'{{ post(id: "{post_id}") {{ id }} }}'}
        )
    )
    assert got["statusCode"] == 200
    assert body_of(got) == {"data": {"post": {"id": post_id}}}

    encoded = invoke(event(shape, body=read, base64_body=True))
    assert body_of(encoded) == body_of(listed)

    mutation_over_get = invoke(
        event(
            shape,
            method="GET",
            body=None,
            query={"query": 'mutation { deletePost(id: "x") { id } }'},
        )
    )
    assert mutation_over_get["statusCode"] == 405
    broken = invoke(event(shape, body="{not json"))
    assert broken["statusCode"] == 400
    assert body_of(broken)["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    forged = invoke(event(shape, body=read, headers={"authorization": "Bearer forged.token.here"}))
    assert forged["statusCode"] == 401
    assert invoke.clients.created == 1  # one client for the execution environment


def test_the_store_client_is_created_once_per_execution_environment(invoke: Any) -> None:
    query = json.dumps({"query": "{ posts { nodes { id } } }"})
    assert invoke.clients.created == 0  # nothing opened at init (SnapStart-safe)
    for number in range(3):
        assert invoke(event("http_v2", body=query), f"req-{number}")["statusCode"] == 200
    assert invoke.clients.created == 1


def test_dev_auth_is_refused_at_init_on_lambda(
    lambda_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "gql-api")
    import gql_api.lambda_handler as module

    with pytest.raises(SettingsError, match="GQL_API_AUTH=dev is refused on AWS Lambda"):
        importlib.reload(module)


PROBE = """
import json, sys
import gql_api.lambda_handler as handler
loaded = sorted(sys.modules)
store = handler.app.state.store
loader = store._session._session.get_component("data_loader")
cached = [list(key[:2]) for key in loader._cache]
print(json.dumps({"modules": loaded, "client": store._client is not None, "cached": cached}))
"""


def test_importing_the_handler_loads_no_other_cloud_and_no_unused_module(tmp_path: Path) -> None:
    env = cli_env(
        GQL_API_STORE="dynamodb",
        GQL_API_DYNAMODB_ENDPOINT="http://127.0.0.1:9",
        GQL_API_DEV_SECRET=SECRET,
        GQL_API_SQLITE_PATH=str(tmp_path / "unused.db"),
    )
    probed = json.loads(
        subprocess.run(
            [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
        ).stdout
    )
    loaded = probed["modules"]
    # The init phase loads the SDK and DynamoDB's model, and opens nothing.
    assert "aiobotocore.client" in loaded
    assert ["load_service_model", "dynamodb"] in probed["cached"]
    assert ["load_data_with_path", "endpoints"] in probed["cached"]
    assert probed["client"] is False
    roots = {name.split(".")[0] for name in loaded}
    # httpx and click are loaded: aiobotocore imports httpx (an optional HTTP backend) when
    # it is installed, and httpx its command line.
    assert not roots & {"google", "grpc", "azure", "aiosqlite", "uvicorn", "jwt"}
    ours = {name for name in loaded if name.startswith("gql_api.")}
    assert not ours & {
        "gql_api.stores.sqlite",
        "gql_api.stores.firestore",
        "gql_api.stores.cosmos",
        "gql_api.stores.memory",
        "gql_api.ops.cli",
        "gql_api.auth.jwks",
        "gql_api.ops.doctor",
    }
