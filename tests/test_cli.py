"""The command line, run as a user runs it: in a subprocess, with its own environment."""

from __future__ import annotations

import json
import stat
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gql_api.schema.root import sdl
from tests.helpers import cli_env, free_port, run_cli
from tests.servers import gql_api_server

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return cli_env(GQL_API_SQLITE_PATH=str(tmp_path / "data" / "gql-api.db"))


def test_committed_schema_matches_the_served_schema() -> None:
    committed = (ROOT / "schema.graphql").read_text()
    assert committed == sdl(), "schema.graphql is stale: run `make schema` and commit it"


def test_schema_command_prints_the_sdl(env: dict[str, str]) -> None:
    result = run_cli(["schema"], env)
    assert result.returncode == 0
    assert result.stdout == sdl()


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("GQL_API_STORE", "foo", "'sqlite', 'memory'"),
        ("GQL_API_MAX_BODY_BYTES", "lots", "valid integer"),
        ("GQL_API_STORE_TIMEOUT", "-1", "greater than 0"),
        ("GQL_API_CORS_ORIGINS", "example.com", "http://"),
        ("GQL_API_DEV_SECRET", "short", "at least 32"),
        ("GQL_API_LOG_LEVEL", "loud", "'DEBUG'"),
        ("CLOUD_PROVIDER", "mainframe", "CLOUD_PROVIDER"),
    ],
)
def test_a_bad_setting_exits_2_naming_the_variable(
    env: dict[str, str], variable: str, value: str, named: str
) -> None:
    env[variable] = value
    result = run_cli(["token", "--user", "alice"], env)
    assert result.returncode == 2
    assert variable in result.stderr
    assert named in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    if "SECRET" in variable:
        assert value not in result.stderr


def test_dev_auth_is_refused_on_lambda(env: dict[str, str]) -> None:
    env["AWS_LAMBDA_FUNCTION_NAME"] = "gql-api"
    result = run_cli(["serve"], env)
    assert result.returncode == 2
    assert "GQL_API_AUTH=dev is refused on AWS Lambda" in result.stderr


def test_token_creates_a_private_secret_file_once(env: dict[str, str], tmp_path: Path) -> None:
    first = run_cli(["token", "--user", "alice"], env)
    assert first.returncode == 0, first.stderr
    secret = tmp_path / "data" / "dev-secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    content = secret.read_text()
    second = run_cli(["token", "--user", "bob", "--admin", "--nickname", "Bob"], env)
    assert second.returncode == 0
    assert secret.read_text() == content
    assert len(first.stdout.strip().split(".")) == 3
    assert "\n" not in first.stdout.strip()
    assert not first.stdout.startswith("Bearer")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--user", ""], "--user"),
        (["--user", "a", "--nickname", " "], "--nickname"),
        (["--user", "a", "--nickname", "x" * 51], "--nickname"),
        (["--user", "a", "--expires-in", "5"], "--expires-in"),
        ([], "--user"),
    ],
)
def test_token_refuses_bad_arguments(env: dict[str, str], args: list[str], message: str) -> None:
    result = run_cli(["token", *args], env)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_provision_and_doctor_on_sqlite(env: dict[str, str], tmp_path: Path) -> None:
    provision = run_cli(["provision"], env)
    assert provision.returncode == 0, provision.stderr
    assert (tmp_path / "data" / "gql-api.db").exists()
    assert run_cli(["provision"], env).returncode == 0  # idempotent
    doctor = run_cli(["doctor"], env)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    lines = doctor.stdout.splitlines()
    assert all(line.startswith("ok") for line in lines)
    assert any("store sqlite" in line for line in lines)


def test_doctor_fails_when_the_database_cannot_be_opened(
    env: dict[str, str], tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    env["GQL_API_SQLITE_PATH"] = str(blocker / "db.sqlite")
    env["GQL_API_DEV_SECRET"] = "x" * 40
    doctor = run_cli(["doctor"], env)
    assert doctor.returncode == 1
    assert any(line.startswith("FAIL") and "sqlite" in line for line in doctor.stdout.splitlines())


# --- a real server ------------------------------------------------------------------------


@pytest.fixture
def server(env: dict[str, str]) -> Iterator[str]:
    with gql_api_server(env) as (url, _):
        yield url


def _post(url: str, query: str, token: str | None = None) -> tuple[int, Any]:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(  # noqa: S310
        f"{url}/graphql", data=json.dumps({"query": query}).encode(), headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_served_api_accepts_tokens_from_the_token_command(server: str, env: dict[str, str]) -> None:
    token = run_cli(["token", "--user", "ada", "--nickname", "Ada"], env).stdout.strip()
    status, body = _post(
        server,
        'mutation { createPost(input: {content: "from the README"}) { id author { nickname } } }',
        token,
    )
    assert status == 200, body
    assert body["data"]["createPost"]["author"] == {"nickname": "Ada"}
    status, body = _post(server, "{ posts { nodes { content } } viewer { userId } }", token)
    assert body["data"] == {
        "posts": {"nodes": [{"content": "from the README"}]},
        "viewer": {"userId": "ada"},
    }
    status, body = _post(server, "{ viewer { userId } }", token + "x")
    assert status == 401
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_serve_names_the_problem_when_the_store_cannot_open(
    env: dict[str, str], tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    env["GQL_API_SQLITE_PATH"] = str(blocker / "db.sqlite")
    env["GQL_API_DEV_SECRET"] = "x" * 40
    result = run_cli(["serve", "--port", str(free_port())], env)
    assert result.returncode != 0
    assert "gql-api cannot start: store sqlite: cannot open" in result.stderr
    assert "Traceback" not in result.stderr


def test_version_prints_the_package_version(env: dict[str, str]) -> None:
    from importlib.metadata import version

    result = run_cli(["--version"], env)
    assert (result.returncode, result.stdout) == (0, f"gql-api {version('gql-api')}\n")


def test_package_refuses_a_bad_trusted_documents_manifest_before_building(
    env: dict[str, str], tmp_path: Path
) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text('{"format": "apollo-persisted-query-manifest", "version": 7}')
    output = tmp_path / "out.zip"
    command = ["package", "lambda", "--trusted-documents", str(manifest), "-o", str(output)]
    result = run_cli(command, env)
    assert result.returncode == 2
    assert "--trusted-documents" in result.stderr and str(manifest) in result.stderr
    assert "version 1" in result.stderr and not output.exists()
