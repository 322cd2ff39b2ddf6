"""schemathesis, an external GraphQL fuzzer, against `gql-api serve` on every store: no HTTP
5xx, no INTERNAL_SERVER_ERROR (nor an error without a code), no ERROR line in the server log.

`make test` gives each store FUZZ_SECONDS (30) with a fixed seed; `make fuzz` runs longer with
a random seed (FUZZ_SEED=N repeats a run). This module is also the hooks module of the `st`
process it starts (SCHEMATHESIS_HOOKS): the check below runs there, on every response.
"""

from __future__ import annotations

import functools
import json
import os
import re
import secrets
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.core.failures import Failure

from gql_api.auth.dev import mint_dev_token
from gql_api.settings import Settings
from tests.conftest import COSMOS_KEY, FIRESTORE_PROJECT
from tests.helpers import DEV_SECRET, NO_RATE_LIMITS, cli_env, run_cli
from tests.servers import gql_api_server

STORES = ["sqlite", "dynamodb", "firestore", "cosmos"]
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
SECONDS = int(os.environ.get("FUZZ_SECONDS", "30"))
_seed = os.environ.get("FUZZ_SEED", "16")
SEED = secrets.randbelow(2**32) if _seed == "random" else int(_seed)
# How the `st` process finds the server's log and where its check writes what it found.
LOG_VARIABLE = "SCHEMATHESIS_GQL_API_LOG"
FINDINGS_VARIABLE = "SCHEMATHESIS_GQL_API_FINDINGS"
# schemathesis's own `not_a_server_error` counts NOT_FOUND, FORBIDDEN... as server errors;
# the schema conformance check still catches a body that is not a GraphQL response.
CHECKS = "gql_api_faults,response_schema_conformance"
# Keys that document stores treat specially (path separators, reserved names, the longest
# keys): random text seldom is one, so a fifth of the key-like arguments get one of these.
HOSTILE_KEYS = ["a/b", "/", ".", "..", "__x__", "a\\b", "a?b", "a#b", "%2F", " x", "", "\0"]
HOSTILE_KEYS.append("x" * 2100)  # over every store's key limit (DynamoDB's 2048 bytes the most)
# A migrated post's id (a hyphenated UUID) reaches the store, unlike other foreign ids.
HOSTILE_KEYS.append("0f8c1c3e-5d0a-4e7b-9a4e-2f1d3c4b5a69")
KEY_ARGUMENTS = ["*.*.id", "*.*.userId", "*.*.authorId", "*.*.tag", "*.*.after"]


def st_config() -> str:
    """schemathesis's settings: no crash cache (a run would replay the last one's failures
    first) and the hostile keys."""
    bindings = [
        f'"{name}" = {{ dictionary = "keys", probability = 0.2 }}' for name in KEY_ARGUMENTS
    ]
    values = json.dumps(HOSTILE_KEYS)  # JSON's string escapes are TOML's too
    settings = ["[cache]", "enabled = false", "[dictionaries.keys]", f"values = {values}"]
    return "\n".join([*settings, "[parameters]", *bindings])


def error_entries(text: str) -> list[dict[str, Any]]:
    """The log lines at ERROR or above; a line that is not a JSON object counts as one."""
    found = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if not isinstance(entry, dict):
            entry = {"level": "ERROR", "logger": "(not a JSON log line)", "message": line}
        if entry.get("level") in ("ERROR", "CRITICAL"):
            found.append(entry)
    return found


def fault_of(entry: dict[str, Any]) -> str:
    """What tells one fault from another: the exception and the deepest frame of gql_api it
    passed, else the logger and message with ids, numbers and quoted values blanked."""
    exception = entry.get("exception")
    if isinstance(exception, str) and exception.strip():
        lines = exception.splitlines()
        last_frame = max((i for i, s in enumerate(lines) if s.startswith('  File "')), default=-1)
        # The exception's own line follows the last frame's code; its message may span lines.
        kind = next((s for s in lines[last_frame + 1 :] if not s.startswith(" ")), "?")
        kind = kind.split(":")[0]
        frames = re.findall(r'File "[^"]*/(gql_api/[^"]+)", line (\d+), in (\S+)', exception)
        where = ":".join(frames[-1]) if frames else "outside gql_api"
        return f"{kind} at {where}"
    text = f"{entry.get('logger')}: {entry.get('message')}"
    return re.sub(r"[0-9a-f]{32}|'[^']*'|\"[^\"]*\"|\d+", "_", text)[:200]


def short(entry: dict[str, Any]) -> str:
    exception = str(entry.get("exception") or "").strip().splitlines()
    return f"{entry.get('logger')}: {entry.get('message')}" + (
        f" [{exception[-1]}]" if exception else ""
    )


class ServerLog:
    """The server's log as it grows: the ERROR lines written since the last reading."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.lock = threading.Lock()

    def new_errors(self) -> list[dict[str, Any]]:
        with self.lock, self.path.open("rb") as log:
            log.seek(self.offset)
            chunk = log.read()
            complete = chunk[: chunk.rfind(b"\n") + 1]
            self.offset += len(complete)
        return error_entries(complete.decode(errors="replace"))


class GqlApiFault(Failure):
    code = "ST901"
    kind_title = "gql-api fault"

    @property
    def _unique_key(self) -> str:
        return self.title


# One Failure subclass per distinct fault: Hypothesis tells bugs apart by exception type, so
# each fault is shrunk and reported on its own instead of hiding the others.
_FAULT_TYPES: dict[str, type[GqlApiFault]] = {}
_findings_lock = threading.Lock()


@functools.cache
def server_log() -> ServerLog:
    return ServerLog(Path(os.environ[LOG_VARIABLE]))


@schemathesis.check
def gql_api_faults(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> None:
    faults: set[str] = set()
    said: list[str] = []
    if response.status_code >= 500:
        faults.add(f"HTTP {response.status_code}")
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    errors = body.get("errors") if isinstance(body, dict) else None
    for error in errors if isinstance(errors, list) else []:
        code = (error.get("extensions") or {}).get("code") if isinstance(error, dict) else None
        if code is None:
            faults.add(f"an error without extensions.code: {str(error)[:100]}")
        elif code == "INTERNAL_SERVER_ERROR":
            faults.add("INTERNAL_SERVER_ERROR")
            said.append(f"answer: {error.get('message')}")
    for entry in server_log().new_errors():
        faults.add(fault_of(entry))
        said.append(f"log: {short(entry)[:1500]}")
    if not faults:
        return
    signature = "; ".join(sorted(faults))
    request = response.request.body
    finding = {
        "fault": signature,
        "operation": case.operation.label,
        "request": request.decode(errors="replace") if isinstance(request, bytes) else request,
        "status": response.status_code,
        "answer": response.content.decode(errors="replace")[:2000],
        "said": said,
    }
    with _findings_lock, open(os.environ[FINDINGS_VARIABLE], "a", encoding="utf-8") as out:
        out.write(json.dumps(finding) + "\n")
    kind = _FAULT_TYPES.setdefault(signature, type("GqlApiFault", (GqlApiFault,), {}))
    raise kind(operation=case.operation.label, title=signature, message="\n".join(said))


def server_env(store: str, folder: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """`gql-api serve`'s settings for ``store``, on a table, prefix or database of its own."""
    values = {
        "GQL_API_STORE": store,
        "GQL_API_DEV_SECRET": DEV_SECRET,
        "GQL_API_SQLITE_PATH": str(folder / "gql-api.db"),
    }
    name = f"fuzz{uuid.uuid4().hex[:8]}"
    if store == "dynamodb":
        values["GQL_API_DYNAMODB_ENDPOINT"] = request.getfixturevalue("moto_url")
        values["GQL_API_DYNAMODB_TABLE"] = name
    elif store == "firestore":
        values["FIRESTORE_EMULATOR_HOST"] = request.getfixturevalue("firestore_host")
        values["GQL_API_FIRESTORE_PROJECT"] = FIRESTORE_PROJECT
        values["GQL_API_FIRESTORE_PREFIX"] = f"{name}-"
    elif store == "cosmos":
        values["GQL_API_COSMOS_URL"] = request.getfixturevalue("cosmos_url")
        values["GQL_API_COSMOS_KEY"] = COSMOS_KEY
        values["GQL_API_COSMOS_VERIFY_TLS"] = "false"
        values["GQL_API_COSMOS_DATABASE"] = name
    # The fuzzer is one client sending thousands of requests: no rate limits.
    return cli_env(**values, **NO_RATE_LIMITS)  # after the fixtures: moto's credentials


def accepted_mutations(log: str) -> int:
    """Mutations the server carried out, from its access log lines."""
    entries = (json.loads(line) for line in log.splitlines() if '"gql_api.access"' in line)
    return sum(e.get("operation") == "mutation" and e.get("outcome") == "OK" for e in entries)


def distinct(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The shortest request of each fault."""
    shortest: dict[str, dict[str, Any]] = {}
    for finding in findings:
        known = shortest.get(finding["fault"])
        if known is None or len(finding["request"] or "") < len(known["request"] or ""):
            shortest[finding["fault"]] = finding
    return list(shortest.values())


def describe(finding: dict[str, Any]) -> str:
    said = "\n".join(f"    {line}" for line in finding["said"])
    return (
        f"- {finding['fault']} ({finding['operation']})\n"
        f"    request: {finding['request']}\n"
        f"    answer ({finding['status']}): {finding['answer'][:600]}\n{said}"
    )


@pytest.mark.parametrize("store", STORES)
def test_schemathesis_finds_no_fault(
    store: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    env = server_env(store, tmp_path, request)
    provision = run_cli(["provision"], env)
    assert provision.returncode == 0, provision.stdout + provision.stderr
    log_path = tmp_path / "server.log"
    findings_path = tmp_path / "findings.jsonl"
    findings_path.touch()
    token = mint_dev_token(Settings(dev_secret=DEV_SECRET), DEV_SECRET, user_id="fuzzer")
    config = tmp_path / "schemathesis.toml"
    config.write_text(st_config())
    st_env = {
        **cli_env(),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "SCHEMATHESIS_HOOKS": "tests.test_schemathesis",
        LOG_VARIABLE: str(log_path),
        FINDINGS_VARIABLE: str(findings_path),
    }
    print(f"schemathesis on {store}: seed {SEED}, {SECONDS} s")
    with gql_api_server(env, log_path=log_path) as (url, _):
        st = subprocess.run(
            [
                str(Path(sys.executable).with_name("st")),
                f"--config-file={config}",
                "run",
                f"{url}/graphql",
                f"--header=Authorization: Bearer {token}",
                f"--checks={CHECKS}",
                f"--seed={SEED}",
                f"--max-time={SECONDS}",
                "--workers=1",  # the check reads the log as it grows: one request at a time
                "--generation-database=none",
                "--suppress-health-check=all",
                "--request-timeout=30",
                "--no-color",
            ],
            cwd=tmp_path,  # where Hypothesis and schemathesis keep their files
            env=st_env,
            capture_output=True,
            text=True,
            timeout=SECONDS * 3 + 120,
            check=False,
        )
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"schemathesis-{store}.txt").write_text(st.stdout + st.stderr)
    found = distinct([json.loads(line) for line in findings_path.read_text().splitlines()])
    log = log_path.read_text(errors="replace")
    logged: dict[str, list[dict[str, Any]]] = {}
    for entry in error_entries(log):
        logged.setdefault(fault_of(entry), []).append(entry)
    report = "\n".join(
        [
            f"schemathesis on {store}: seed {SEED} (FUZZ_SEED={SEED} repeats the run), "
            f"exit status {st.returncode}",
            "distinct faults, each with its shortest request:",
            *map(describe, found),
            "ERROR lines in the server log, by fault:",
            *(f"- {fault} x{len(e)}: {short(e[0])[:1500]}" for fault, e in logged.items()),
            f"schemathesis's output is in test-artifacts/schemathesis-{store}.txt; its end:",
            (st.stdout + st.stderr)[-6000:],
        ]
    )
    assert not found and not logged and st.returncode == 0, report
    # Signed in, the fuzzer wrote: a refused token would leave only the read paths tested.
    assert accepted_mutations(log) > 0, report
