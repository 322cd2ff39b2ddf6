"""The dev secret file is trusted only when it is this user's own and private to them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gql_api.auth.dev import DevSecretError, dev_secret
from gql_api.settings import Settings
from tests.helpers import cli_env, free_port, run_cli

SECRET = "s" * 48


def planted(tmp_path: Path, mode: int) -> Path:
    """A dev-secret file someone made before the server first ran."""
    path = tmp_path / "data" / "dev-secret"
    path.parent.mkdir(parents=True)
    path.write_text(SECRET + "\n")
    path.chmod(mode)
    return path


def settings_in(tmp_path: Path) -> Settings:
    return Settings(sqlite_path=tmp_path / "data" / "gql-api.db")


def test_a_private_file_of_ones_own_is_used(tmp_path: Path) -> None:
    planted(tmp_path, 0o600)
    assert dev_secret(settings_in(tmp_path)) == SECRET


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o666])
def test_a_file_others_can_reach_is_refused(tmp_path: Path, mode: int) -> None:
    path = planted(tmp_path, mode)
    with pytest.raises(DevSecretError, match=f"chmod 600 {path}"):
        dev_secret(settings_in(tmp_path))


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_a_file_of_another_user_is_refused(tmp_path: Path) -> None:
    path = planted(tmp_path, 0o600)
    os.chown(path, 4242, 4242)
    with pytest.raises(DevSecretError, match="belongs to another user"):
        dev_secret(settings_in(tmp_path))


def test_a_symlink_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text(SECRET)
    target.chmod(0o600)
    link = tmp_path / "data" / "dev-secret"
    link.parent.mkdir()
    link.symlink_to(target)
    with pytest.raises(DevSecretError, match="cannot be opened"):
        dev_secret(settings_in(tmp_path))


def test_the_cli_names_the_fix_and_serve_refuses_to_start(tmp_path: Path) -> None:
    path = planted(tmp_path, 0o644)
    env = cli_env(GQL_API_SQLITE_PATH=str(tmp_path / "data" / "gql-api.db"))
    token = run_cli(["token", "--user", "alice"], env)
    assert (token.returncode, token.stdout) == (2, "")
    assert f"chmod 600 {path}" in token.stderr and "Traceback" not in token.stderr
    serve = run_cli(["serve", "--port", str(free_port())], env, timeout=60)
    assert serve.returncode != 0
    assert "gql-api cannot start" in serve.stderr and f"chmod 600 {path}" in serve.stderr
