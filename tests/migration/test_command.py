"""`gql-api migrate`'s refusals, before it reads anything: options of another source,
a target that is the source itself, a checkpoint of another migration."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import cli_env, run_cli


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--from", "firestore", "--table", "t"], "--table: not an option of --from firestore"),
        (["--from", "dynamodb", "--project", "p", "--table", "t"], "--project: not an option"),
        (["--from", "dynamodb"], "needs --table"),
        (["--from", "cosmos", "--url", "https://x.example"], "needs --url and --database"),
        (["--from", "dynamodb", "--table", "t", "--dry-run", "--verify"], "nothing to --verify"),
        (["--from", "oracle"], "Invalid value for '--from'"),
        (["--from", "dynamodb", "--table", "t", "--rate", "-1"], "Invalid value for '--rate'"),
    ],
)
def test_options_that_do_not_fit_are_refused_by_name(args: list[str], words: str) -> None:
    answer = run_cli(["migrate", *args], cli_env())
    assert answer.returncode == 2 and words in answer.stderr, answer.stderr


@pytest.mark.parametrize(
    ("env", "args", "words"),
    [
        # The earlier service's POSTS_TABLE_NAME is GQL_API_DYNAMODB_TABLE's fallback.
        (
            {"GQL_API_STORE": "dynamodb", "POSTS_TABLE_NAME": "legacy"},
            ["--from", "dynamodb", "--table", "legacy"],
            "legacy",
        ),
        (
            {"GQL_API_STORE": "firestore", "GQL_API_FIRESTORE_PROJECT": "demo-p"},
            ["--from", "firestore", "--project", "demo-p"],
            "GQL_API_FIRESTORE_PREFIX",
        ),
        (
            {
                "GQL_API_STORE": "cosmos",
                "GQL_API_COSMOS_URL": "https://acct.documents.azure.com:443/",
                "GQL_API_COSMOS_DATABASE": "legacy",
            },
            [
                "--from",
                "cosmos",
                "--url",
                "https://acct.documents.azure.com:443/",
                "--key",
                "k",
                "--database",
                "legacy",
            ],
            "legacy",
        ),
    ],
)
def test_a_target_that_is_the_source_is_refused_before_anything_is_read(
    env: dict[str, str], args: list[str], words: str
) -> None:
    answer = run_cli(["migrate", *args], cli_env(**env), timeout=30)
    assert answer.returncode == 2, answer.stderr
    assert "the target is the source" in answer.stderr and words in answer.stderr


def test_a_checkpoint_of_another_migration_is_refused(tmp_path: Path) -> None:
    checkpoint = tmp_path / "c.json"
    checkpoint.write_text(
        json.dumps(
            {
                "format": 1,
                "source": "elsewhere",
                "target": "sqlite x",
                "phase": "posts",
                "position": None,
                "report_bytes": 0,
                "counts": {k: {} for k in ("posts", "profiles")},
            }
        )
    )
    env = cli_env(GQL_API_SQLITE_PATH=str(tmp_path / "db" / "gql-api.db"))
    args = [
        "migrate",
        "--from",
        "firestore",
        "--project",
        "demo-x",
        "--checkpoint",
        str(checkpoint),
    ]
    answer = run_cli(args, dict(env, FIRESTORE_EMULATOR_HOST="127.0.0.1:9"), timeout=60)
    assert answer.returncode == 2 and "another migration" in answer.stderr, answer.stderr
    checkpoint.write_text("{not json")
    answer = run_cli(args, dict(env, FIRESTORE_EMULATOR_HOST="127.0.0.1:9"), timeout=60)
    assert answer.returncode == 2 and "not a gql-api migrate checkpoint" in answer.stderr


def test_a_missing_sdk_is_named_with_the_extra_that_brings_it(tmp_path: Path) -> None:
    blocked = "import sys; sys.modules['aioboto3'] = None; from gql_api.ops.cli import main; main()"
    args = ["migrate", "--from", "dynamodb", "--table", "legacy", "--region", "us-east-1"]
    env = cli_env(GQL_API_SQLITE_PATH=str(tmp_path / "db" / "gql-api.db"))
    answer = subprocess.run(
        [sys.executable, "-c", blocked, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert answer.returncode == 2, answer.stderr
    assert "aioboto3 is missing" in answer.stderr and "gql-api[aws]" in answer.stderr
    assert "Traceback" not in answer.stderr


def test_a_report_that_cannot_be_written_is_named(tmp_path: Path) -> None:
    wall = tmp_path / "a-file"
    wall.write_text("")
    env = cli_env(GQL_API_SQLITE_PATH=str(tmp_path / "db" / "gql-api.db"))
    report = str(wall / "report.jsonl")  # under a file: no directory can be made
    args = ["migrate", "--from", "firestore", "--project", "demo-x", "--report", report]
    args += ["--checkpoint", str(tmp_path / "c.json")]
    answer = run_cli(args, dict(env, FIRESTORE_EMULATOR_HOST="127.0.0.1:9"), timeout=60)
    assert answer.returncode == 2 and "cannot write" in answer.stderr, answer.stderr
    assert "Traceback" not in answer.stderr


def test_a_variable_of_another_source_left_set_is_no_foreign_option() -> None:
    env = cli_env(GQL_API_MIGRATE_COSMOS_KEY="k", GQL_API_MIGRATE_TABLE="legacy")
    answer = run_cli(["migrate", "--from", "firestore", "--table", "t"], env)
    assert "--table: not an option" in answer.stderr  # given on the command line: refused
    answer = run_cli(["migrate", "--from", "cosmos", "--url", "https://x.example"], env)
    assert answer.returncode == 2 and "needs --url and --database" in answer.stderr
