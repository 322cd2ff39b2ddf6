"""Logs never carry secrets, at any level: `gql-api serve` at DEBUG against real local
servers, with a bearer token, an AWS session token and post content to find."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest

from gql_api.auth.dev import mint_dev_token
from gql_api.settings import Settings
from tests.conftest import COSMOS_KEY
from tests.helpers import DEV_SECRET, cli_env, run_cli
from tests.servers import gql_api_server

CREATE = 'mutation($c: String!) { createPost(input: {content: $c, tags: ["t"]}) { id } }'
READ = 'query($id: ID!) { post(id: $id) { content } posts(tag: "t") { nodes { id } } }'


def store_env(store: str, request: pytest.FixtureRequest) -> dict[str, str]:
    if store == "dynamodb":
        return {
            "GQL_API_STORE": "dynamodb",
            "GQL_API_DYNAMODB_ENDPOINT": request.getfixturevalue("moto_url"),
            "GQL_API_DYNAMODB_TABLE": f"hygiene-{uuid.uuid4().hex[:8]}",
        }
    return {
        "GQL_API_STORE": "cosmos",
        "GQL_API_COSMOS_URL": request.getfixturevalue("cosmos_url"),
        "GQL_API_COSMOS_KEY": COSMOS_KEY,
        "GQL_API_COSMOS_VERIFY_TLS": "false",
        "GQL_API_COSMOS_DATABASE": f"hygiene{uuid.uuid4().hex[:8]}",
    }


@pytest.mark.parametrize("store", ["dynamodb", "cosmos"])
def test_a_debug_log_holds_no_token_credential_or_content(
    store: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    session_token = f"session-{uuid.uuid4().hex}"
    content = f"private words {uuid.uuid4().hex}"
    env = cli_env(
        **store_env(store, request),
        GQL_API_DEV_SECRET=DEV_SECRET,
        GQL_API_SQLITE_PATH=str(tmp_path / "unused.db"),
        GQL_API_LOG_LEVEL="DEBUG",
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_SESSION_TOKEN=session_token,
    )
    assert run_cli(["provision"], env).returncode == 0
    token = mint_dev_token(Settings(dev_secret=DEV_SECRET), DEV_SECRET, user_id="ada")
    log_path = tmp_path / "server.log"
    with (
        gql_api_server(env, log_path=log_path) as (url, _),
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        headers = {"authorization": f"Bearer {token}"}
        created = client.post(
            "/graphql", json={"query": CREATE, "variables": {"c": content}}, headers=headers
        ).json()
        post_id = created["data"]["createPost"]["id"]
        read = client.post("/graphql", json={"query": READ, "variables": {"id": post_id}})
        assert read.json()["data"]["post"]["content"] == content
    said = log_path.read_text()
    lines = [json.loads(line) for line in said.splitlines() if line.startswith("{")]
    assert any(line["level"] == "DEBUG" for line in lines)  # DEBUG is on for our own
    assert any(line.get("logger") == "gql_api.access" for line in lines)
    for secret in (token, token.split(".")[2], session_token, content, COSMOS_KEY):
        assert secret not in said, f"the log holds {secret[:12]}..."
