"""Dev tokens and introspection belong to a developer's machine: every hosting platform's
signal, and a bind address other than loopback, turn them off unless an operator opts in."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from gql_api.app import build_authenticator
from gql_api.settings import Settings, SettingsError, load_settings
from tests.helpers import DEV_SECRET, cli_env, run_cli

PLATFORMS = [
    ("AWS_LAMBDA_FUNCTION_NAME", "gql-api", "AWS Lambda"),
    ("K_SERVICE", "gql-api", "Google Cloud Run"),
    ("FUNCTIONS_WORKER_RUNTIME", "python", "Azure Functions"),
    ("CONTAINER_APP_NAME", "gql-api", "Azure Container Apps"),
]
JWT = {
    "GQL_API_AUTH": "jwt",
    "GQL_API_JWKS_URL": "https://keys.example/jwks.json",
    "GQL_API_JWT_ISSUER": "https://issuer.example/",
    "GQL_API_JWT_AUDIENCE": "api",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No setting or platform variable from the machine running the tests."""
    for name in list(os.environ):
        if name.startswith("GQL_API_") or name in {p[0] for p in PLATFORMS}:
            monkeypatch.delenv(name)
    monkeypatch.setenv("GQL_API_SQLITE_PATH", str(tmp_path / "data" / "gql-api.db"))


@pytest.mark.parametrize(("variable", "value", "platform"), PLATFORMS)
def test_unset_auth_is_refused_on_each_platform(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, platform: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as refused:
        load_settings()
    message = str(refused.value)
    assert f"GQL_API_AUTH=dev is refused on {platform} ({variable} is set)" in message
    assert "Set GQL_API_AUTH to jwt" in message  # names the setting to change


@pytest.mark.parametrize(("variable", "value", "platform"), PLATFORMS)
def test_introspection_is_off_by_default_on_each_platform(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, platform: str
) -> None:
    monkeypatch.setenv(variable, value)
    for name, setting in JWT.items():
        monkeypatch.setenv(name, setting)
    deployed = load_settings()
    assert deployed.deployed_on == f"{platform} ({variable} is set)"
    assert deployed.introspection_enabled is False
    monkeypatch.setenv("GQL_API_INTROSPECTION", "true")
    assert load_settings().introspection_enabled is True


@pytest.mark.parametrize(("variable", "value", "platform"), PLATFORMS)
def test_graphiql_is_off_by_default_on_function_platforms_only(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, platform: str
) -> None:
    assert load_settings().graphiql_enabled is True
    monkeypatch.setenv(variable, value)
    for name, setting in JWT.items():
        monkeypatch.setenv(name, setting)
    functions = {"AWS_LAMBDA_FUNCTION_NAME", "FUNCTIONS_WORKER_RUNTIME"}  # not Cloud Run
    assert load_settings().graphiql_enabled is (variable not in functions)
    monkeypatch.setenv("GQL_API_GRAPHIQL", "true")
    assert load_settings().graphiql_enabled is True
    monkeypatch.setenv("GQL_API_GRAPHIQL", "false")
    assert load_settings().graphiql_enabled is False


def test_graphiql_on_without_its_assets_names_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from gql_api import app

    monkeypatch.setattr(app, "GRAPHIQL_STATIC", tmp_path / "not-packaged")
    with pytest.raises(SettingsError, match="gql-api package lambda --graphiql"):
        app.create_app(Settings(store="memory", dev_secret=DEV_SECRET, graphiql=True))
    # Unset, GraphiQL is simply off in a package built without it.
    for graphiql in (False, None):
        built = app.create_app(Settings(store="memory", dev_secret=DEV_SECRET, graphiql=graphiql))
        assert not [route for route in built.routes if getattr(route, "name", "") == "graphiql"]


def test_a_developer_machine_keeps_dev_tokens_and_introspection() -> None:
    local = load_settings()
    assert (local.auth, local.deployed_on, local.introspection_enabled) == ("dev", None, True)
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2", "[::1]"):
        assert local.served_on(host).introspection_enabled is True


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "api.example.com"])  # noqa: S104
def test_binding_beyond_loopback_refuses_dev_tokens(host: str) -> None:
    with pytest.raises(SettingsError, match=f"refused on a server bound to {host}"):
        load_settings().served_on(host)


def test_binding_beyond_loopback_turns_introspection_off(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, setting in JWT.items():
        monkeypatch.setenv(name, setting)
    assert load_settings().served_on("0.0.0.0").introspection_enabled is False  # noqa: S104
    monkeypatch.setenv("GQL_API_INTROSPECTION", "true")
    assert load_settings().served_on("0.0.0.0").introspection_enabled is True  # noqa: S104


def test_a_shared_dev_server_opts_in_with_a_shared_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K_SERVICE", "gql-api-dev")
    monkeypatch.setenv("GQL_API_SHARED_DEV_SERVER", "true")
    with pytest.raises(SettingsError, match="needs GQL_API_DEV_SECRET"):
        load_settings()
    monkeypatch.setenv("GQL_API_DEV_SECRET", DEV_SECRET)
    shared = load_settings()
    assert (shared.auth, shared.introspection_enabled) == ("dev", True)
    monkeypatch.delenv("K_SERVICE")
    assert load_settings().served_on("0.0.0.0").introspection_enabled is True  # noqa: S104


async def test_a_shared_dev_server_says_so_at_start(caplog: pytest.LogCaptureFixture) -> None:
    shared = Settings(shared_dev_server=True, dev_secret=DEV_SECRET, k_service="gql-api-dev")
    with caplog.at_level(logging.WARNING, logger="gql_api.app"):
        await build_authenticator(shared)
    assert any("GQL_API_SHARED_DEV_SERVER=true" in r.message for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gql_api.app"):
        await build_authenticator(Settings(dev_secret=DEV_SECRET))
    assert not caplog.records


@pytest.mark.parametrize(("args", "extra"), [(["--host", "0.0.0.0"], {}), ([], {"K_SERVICE": "x"})])  # noqa: S104
def test_serve_refuses_to_start_and_names_the_setting(
    tmp_path: Path, args: list[str], extra: dict[str, str]
) -> None:
    env = cli_env(GQL_API_SQLITE_PATH=str(tmp_path / "db.sqlite"), **extra)
    for name, _, _ in PLATFORMS:
        env.pop(name, None)
    env.update(extra)
    result = run_cli(["serve", "--port", "0", *args], env, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "GQL_API_AUTH=dev is refused on" in result.stderr
    assert "Traceback" not in result.stderr
