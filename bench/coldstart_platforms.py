"""Cold start on Azure Functions and Cloud Run: a fresh process's start to its first
answer, as bench/coldstart.py measures Lambda's, side by side with a floor on each.

- azure, gql-api: the zip `gql-api package azure` builds, unpacked as the host lays it
  out, run with Python 3.12 and no bytecode written (the package is mounted read-only):
  `function_app` imported, its function indexed, one page of `posts(first: 20)` asked
  on the Cosmos DB test server.
- azure, floor: `AsgiFunctionApp` around a bare Starlette answering one route, laid out
  the same way (`.python_packages`, bytecode compiled alike).
- cloud run, gql-api: the image's command (`gql-api serve`, with the image's and the
  service's settings) from process start to its answer to the page, on the Firestore
  emulator.
- cloud run, floor: uvicorn (uvloop, httptools) serving a bare Starlette, to its first
  answer.

Runs alternate, several rounds; medians are printed with the ratios.
Usage: python bench/coldstart_platforms.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import COSMOS_KEY, FIRESTORE_PROJECT  # noqa: E402
from tests.helpers import free_port  # noqa: E402
from tests.servers import cosmos_server, firestore_emulator  # noqa: E402
from tools.packaging import (  # noqa: E402
    AZURE_SITE_PACKAGES,
    build_azure_zip,
    compile_bytecode,
    find_python,
)

PYTHON = "3.12"
QUERY = (
    "{ posts(first: 20) { edges { node { id content tags author { userId nickname } "
    "createdAt } } } }"
)
AZURE_FLOOR = """
import azure.functions as func
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def hello(request):
    return JSONResponse({"hello": "world"})

app = func.AsgiFunctionApp(
    app=Starlette(routes=[Route("/graphql", hello, methods=["POST"])]),
    http_auth_level=func.AuthLevel.ANONYMOUS,
)
"""
# The host's part: the app's root and packages on the path, function_app imported and
# indexed, one invocation; the process's own start is when the timer starts.
AZURE_MEASURE = """
import asyncio, json, sys, time
started = time.perf_counter()
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/.python_packages/lib/site-packages"]
import azure.functions as func
import function_app
(function,) = function_app.app.get_functions()
handler = function.get_user_function()
imported = time.perf_counter()
request = func.HttpRequest("POST", "https://bench.azurewebsites.net/graphql",
    headers={"content-type": "application/json"}, body=sys.argv[2].encode())
response = asyncio.run(handler(request, None))
done = time.perf_counter()
assert response.status_code == 200 and b"errors" not in response.get_body(), response.get_body()
print(json.dumps({"import": imported - started, "first": done - imported}))
"""
CLOUD_RUN_FLOOR = """
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def hello(request):
    return JSONResponse({"hello": "world"})

app = Starlette(routes=[Route("/graphql", hello, methods=["POST"])])
"""


def azure_layout(scratch: Path, python: str) -> dict[str, Path]:
    folders = {"azure, gql-api": scratch / "azure-gql-api", "azure, floor": scratch / "azure-floor"}
    package = build_azure_zip(scratch / "gql-api-azure.zip", python=PYTHON)
    with zipfile.ZipFile(package.path) as archive:
        archive.extractall(folders["azure, gql-api"])
    floor = folders["azure, floor"]
    (floor / AZURE_SITE_PACKAGES).mkdir(parents=True)
    (floor / "function_app.py").write_text(AZURE_FLOOR)
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-compile", "--target", str(floor / AZURE_SITE_PACKAGES),
         "--constraint", str(ROOT / "constraints.txt"), "azure-functions", "starlette"],
        check=True,
    )  # fmt: skip
    compile_bytecode(python, floor, "/home/site/wwwroot")  # as gql-api's zip is compiled
    return folders


def azure_once(python: str, folder: Path, env: dict[str, str]) -> float:
    body = json.dumps({"query": QUERY if "gql-api" in folder.name else "{ hello }"})
    done = subprocess.run(
        [python, "-I", "-B", "-c", AZURE_MEASURE, str(folder), body],
        cwd=folder, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"{folder.name}: {done.stderr[-2000:]}")
    timings = json.loads(done.stdout.strip().splitlines()[-1])
    return float(timings["import"] + timings["first"])


def cloud_run_once(command: list[str], env: dict[str, str], port: int, query: str) -> float:
    """From the process's start to its first answer to ``query`` on /graphql."""
    body = json.dumps({"query": query}).encode()
    started = time.perf_counter()
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.05):
                    break
            except OSError:
                if server.poll() is not None or time.perf_counter() - started > 60:
                    raise SystemExit(f"{command} did not start") from None
                time.sleep(0.005)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/graphql",
            data=body,
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = response.read()
        elapsed = time.perf_counter() - started
        assert b"errors" not in answer, answer[:300]
        return elapsed
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    python = find_python(PYTHON)
    if python is None:
        raise SystemExit(f"Python {PYTHON} is needed (pyenv install {PYTHON})")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GQL_API_", "K_", "AWS_"))}
    results: dict[str, list[float]] = {}
    with (
        tempfile.TemporaryDirectory() as scratch,
        cosmos_server() as cosmos_url,
        firestore_emulator() as firestore_host,
    ):
        azure_env = {
            "PATH": "/usr/bin:/bin",
            "GQL_API_STORE": "cosmos",
            "GQL_API_COSMOS_URL": cosmos_url,
            "GQL_API_COSMOS_KEY": COSMOS_KEY,
            "GQL_API_COSMOS_VERIFY_TLS": "false",
            "GQL_API_COSMOS_DATABASE": f"coldstart{uuid.uuid4().hex[:8]}",
            "GQL_API_DEV_SECRET": "coldstart-bench-secret-0123456789abcdef",
            "GQL_API_LOG_LEVEL": "WARNING",
        }
        provision = [sys.executable, "-m", "gql_api", "provision"]
        subprocess.run(provision, env={**base, **azure_env}, check=True, capture_output=True)
        folders = azure_layout(Path(scratch), python)
        port = free_port()
        floor_app = Path(scratch) / "cloud_run_floor.py"
        floor_app.write_text(CLOUD_RUN_FLOOR)
        uvicorn = [
            sys.executable, "-m", "uvicorn", "cloud_run_floor:app", "--app-dir", scratch,
            "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http",
            "httptools", "--log-level", "warning",
        ]  # fmt: skip
        cloud_run_env = {
            **base,
            "PORT": str(port),
            "GQL_API_HOST": "127.0.0.1",
            "K_SERVICE": "gql-api",
            "GQL_API_STORE": "firestore",
            "GQL_API_FIRESTORE_PROJECT": FIRESTORE_PROJECT,
            "GQL_API_AUTH": "firebase",
            "GQL_API_FIREBASE_PROJECT_ID": FIRESTORE_PROJECT,
            "GQL_API_LOG_LEVEL": "WARNING",
            "FIRESTORE_EMULATOR_HOST": firestore_host,
        }
        serve = [str(Path(sys.executable).parent / "gql-api"), "serve"]
        runs: dict[str, Callable[[], float]] = {
            "azure, floor": lambda: azure_once(python, folders["azure, floor"], azure_env),
            "azure, gql-api": lambda: azure_once(python, folders["azure, gql-api"], azure_env),
            "cloud run, floor": lambda: cloud_run_once(uvicorn, base, port, "{ hello }"),
            "cloud run, gql-api": lambda: cloud_run_once(serve, cloud_run_env, port, QUERY),
        }
        for _ in range(rounds):
            for name, run in runs.items():
                results.setdefault(name, []).append(run())
    print(f"cold start to the first answer, median of {rounds} fresh processes (seconds)")
    median = {name: statistics.median(values) for name, values in results.items()}
    for name, value in median.items():
        print(f"{name:<22}{value:>8.3f}")
    for platform in ("azure", "cloud run"):
        ratio = median[f"{platform}, gql-api"] / median[f"{platform}, floor"]
        print(f"{platform}: gql-api / floor {ratio:.2f}x")


if __name__ == "__main__":
    main()
