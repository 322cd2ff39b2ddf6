"""Lambda cold start: import plus first invocation, each in a fresh process, side by side.

Three handlers answer one API Gateway (HTTP API) event each, against the same moto
server:

- floor:   a bare Starlette + Mangum hello world (the least any ASGI handler costs);
- fastapi: FastAPI + Mangum whose one route reads an item with boto3 (the stack of the
           service gql-api replaces);
- gql-api: gql_api.lambda_handler.handler answering `posts(first: 20)` on DynamoDB.

Runs alternate, several rounds; the median of each is printed with the ratios.

With --deployed, each handler runs instead as Lambda runs it: from a folder laid out
like the function's code (gql-api's from `gql-api package lambda`, the others from
`pip install --target`), with Python 3.12, and with no bytecode written at run time
(Lambda's code directory is read-only). gql-api runs twice, from its zip with bytecode
(the default) and from one built with --no-bytecode; the baselines get bytecode
compiled the same way as gql-api's.

Usage: python bench/coldstart.py [--rounds 7] [--deployed]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.lambda_events import event  # noqa: E402
from tests.servers import moto_server, reset_moto  # noqa: E402
from tools.packaging import build_lambda_zip, compile_bytecode, find_python  # noqa: E402

DEPLOYED_PYTHON = "3.12"

TABLE = "gql-api-coldstart"

FLOOR = """
from mangum import Mangum
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def hello(request):
    return JSONResponse({"hello": "world"})

handler = Mangum(Starlette(routes=[Route("/graphql", hello, methods=["POST"])]), lifespan="off")
"""

FASTAPI = """
import os
import boto3
from fastapi import FastAPI
from mangum import Mangum

app = FastAPI()
table = boto3.resource("dynamodb", endpoint_url=os.environ["ENDPOINT"]).Table(os.environ["TABLE"])

@app.post("/graphql")
def read():
    return table.get_item(Key={"pk": "POST#bench", "sk": "POST"}).get("Item", {})

handler = Mangum(app, lifespan="off")
"""

# The least the libraries the project prescribes cost: Strawberry (with graphql-core)
# answering one query whose resolver reads an item with aioboto3, behind Starlette and
# Mangum. No settings, no auth, no limits, no logging: not a service, a lower bound.
MANDATED = """
import os
import aioboto3
import strawberry
from mangum import Mangum
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

session = aioboto3.Session()
client = None

@strawberry.type
class Query:
    @strawberry.field
    async def post(self) -> str | None:
        global client
        if client is None:
            made = session.client("dynamodb", endpoint_url=os.environ["ENDPOINT"])
            client = await made.__aenter__()
        item = await client.get_item(
            TableName=os.environ["TABLE"], Key={"pk": {"S": "POST#bench"}, "sk": {"S": "POST"}}
        )
        return str(item.get("Item"))

schema = strawberry.Schema(query=Query)

async def graphql(request):
    result = await schema.execute("{ post }")
    return JSONResponse({"data": result.data})

handler = Mangum(Starlette(routes=[Route("/graphql", graphql, methods=["POST"])]), lifespan="off")
"""

GQL_API = """
from gql_api.lambda_handler import handler
"""

MEASURE = """
import json, sys, time
started = time.perf_counter()
sys.path.insert(0, sys.argv[1])
import handler_module
imported = time.perf_counter()

class Context:
    aws_request_id = "cold-1"
    function_name = "bench"

response = handler_module.handler(json.loads(sys.argv[2]), Context())
done = time.perf_counter()
assert response["statusCode"] == 200, response
print(json.dumps({"import": imported - started, "first": done - imported}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--deployed", action="store_true", help="run as Lambda does")
    arguments = parser.parse_args()
    rounds = arguments.rounds
    python, flags = sys.executable, []
    if arguments.deployed:
        # -B: no bytecode written (Lambda's code directory is read-only); -s: no user site
        flags = ["-B", "-s"]
        found = find_python(DEPLOYED_PYTHON)
        if found is None:
            raise SystemExit(f"--deployed needs Python {DEPLOYED_PYTHON} (pyenv install it)")
        python = found
    with moto_server() as url, tempfile.TemporaryDirectory() as scratch:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GQL_API_")},
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "ENDPOINT": url,
            "TABLE": TABLE,
            "GQL_API_STORE": "dynamodb",
            "GQL_API_DYNAMODB_ENDPOINT": url,
            "GQL_API_DYNAMODB_TABLE": TABLE,
            "GQL_API_DEV_SECRET": "coldstart-bench-secret-0123456789abcdef",
            "GQL_API_SQLITE_PATH": str(Path(scratch) / "unused.db"),
            "GQL_API_LOG_LEVEL": "WARNING",
        }
        prepare(url, env)
        handlers = {"floor": FLOOR, "fastapi": FASTAPI, "mandated libraries": MANDATED}
        handlers["gql-api"] = GQL_API
        if arguments.deployed:
            handlers["gql-api, no bytecode"] = GQL_API
        folders = {}
        for name, source in handlers.items():
            folder = Path(scratch) / name
            folder.mkdir()
            (folder / "handler_module.py").write_text(source)
            folders[name] = folder
        if arguments.deployed:
            lay_out(folders, python, Path(scratch))
        sample = json.dumps(
            event(
                "http_v2", body=json.dumps({"query": QUERY}), headers={"accept": "application/json"}
            )
        )
        results: dict[str, list[dict[str, float]]] = {name: [] for name in handlers}
        for _ in range(rounds):
            for name, folder in folders.items():
                results[name].append(measure(python, flags, folder, sample, env))
        report(results, rounds)


def lay_out(folders: dict[str, Path], python: str, scratch: Path) -> None:
    """Each handler's folder as Lambda would unpack it, for Python 3.12."""
    for name, bytecode in (("gql-api", True), ("gql-api, no bytecode", False)):
        package = build_lambda_zip(
            scratch / f"{name}.zip", python=DEPLOYED_PYTHON, bytecode=bytecode
        )
        with zipfile.ZipFile(package.path) as archive:
            archive.extractall(folders[name])
    baselines = {
        "floor": ["starlette", "mangum"],
        "fastapi": ["fastapi", "mangum", "boto3"],
        "mandated libraries": ["strawberry-graphql", "aioboto3", "mangum", "starlette"],
    }
    for name, requirements in baselines.items():
        subprocess.run(
            [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--no-compile", "--target", str(folders[name]),
             "--constraint", str(ROOT / "constraints.txt"), *requirements],
            check=True,
        )  # fmt: skip
        compile_bytecode(python, folders[name])  # as gql-api's own zip is compiled


QUERY = (
    "{ posts(first: 20) { edges { node { id content tags author { userId nickname } "
    "createdAt } } } }"
)


def prepare(url: str, env: dict[str, str]) -> None:
    reset_moto(url)
    provision = subprocess.run(
        [sys.executable, "-m", "gql_api", "provision"], env=env, capture_output=True, text=True
    )
    if provision.returncode != 0:
        raise SystemExit(f"provision failed: {provision.stderr}")


def measure(
    python: str, flags: list[str], folder: Path, sample: str, env: dict[str, str]
) -> dict[str, float]:
    result = subprocess.run(
        [python, *flags, "-c", MEASURE, str(folder), sample],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise SystemExit(f"{folder.name} failed: {result.stderr[-2000:]}")
    timings = json.loads(result.stdout.strip().splitlines()[-1])
    return {"import": timings["import"], "first": timings["first"]}


def report(results: dict[str, list[dict[str, float]]], rounds: int) -> None:
    def median(name: str, part: str) -> float:
        return statistics.median(r[part] for r in results[name])

    def total(name: str) -> float:
        return statistics.median(r["import"] + r["first"] for r in results[name])

    print(f"cold start, median of {rounds} fresh processes each (seconds)")
    print(f"{'handler':<22}{'import':>10}{'first call':>12}{'total':>10}")
    for name in results:
        imported, first = median(name, "import"), median(name, "first")
        print(f"{name:<22}{imported:>10.3f}{first:>12.3f}{total(name):>10.3f}")
    print(f"gql-api / fastapi: {total('gql-api') / total('fastapi'):.2f}x (goal: at most 1.0x)")
    print(f"gql-api / floor:   {total('gql-api') / total('floor'):.2f}x")
    mandated = total("mandated libraries")
    print(f"mandated libraries / fastapi: {mandated / total('fastapi'):.2f}x (the least any")
    print("  handler on Strawberry and aioboto3 costs against the FastAPI stack)")
    if "gql-api, no bytecode" in results:
        print(f"no bytecode / gql-api: {total('gql-api, no bytecode') / total('gql-api'):.2f}x")


if __name__ == "__main__":
    main()
