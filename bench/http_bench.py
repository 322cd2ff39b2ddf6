"""The request path, side by side over real HTTP on 127.0.0.1 (wrk as the load generator).

a. gql-api (memory store) through its real ASGI app, served by uvicorn;
b. a plain Strawberry app, same schema shape and data, Strawberry's defaults (baseline);
c. a bare Starlette endpoint returning the same JSON bytes (the ceiling).

One server process each, alternating runs, several rounds; prints requests/s, p50,
p99, CPU ms per request (the server's own CPU time) and the ratios a/b and a/c.
Usage: python bench/http_bench.py [--rounds 3] [--seconds 5] [--connections 32]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import NO_RATE_LIMITS, free_port  # noqa: E402
from tests.servers import running  # noqa: E402

QUERY = (
    "{ posts(first: 20) { edges { node { id content tags author { userId nickname } "
    "createdAt } } } }"
)
POSTS = 50

GQL_API_APP = f"""
import asyncio
from datetime import UTC, datetime, timedelta
from gql_api.app import create_app
from gql_api.settings import Settings
from gql_api.domain.records import PostRecord
from gql_api.stores.memory import MemoryStore

store = MemoryStore()
app = create_app(Settings(store="memory", dev_secret="b" * 40, log_level="WARNING"), store=store)

async def seed():
    await store.open()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range({POSTS}):
        await store.create(PostRecord(
            id=f"post{{i:04d}}", author_id=f"user{{i % 5}}", content=f"post number {{i}}",
            is_markdown=False, tags=("bench", f"t{{i % 3}}"), image_keys=(),
            created_at=start + timedelta(seconds=i), updated_at=None, version=1,
        ))
    await store.close()

asyncio.run(seed())
"""

STRAWBERRY_APP = f"""
from datetime import UTC, datetime, timedelta
import strawberry
from strawberry.asgi import GraphQL

@strawberry.type
class Profile:
    user_id: strawberry.ID
    nickname: str | None

@strawberry.type
class Post:
    id: strawberry.ID
    content: str
    tags: list[str]
    created_at: datetime
    author_id: strawberry.Private[str]

    @strawberry.field
    async def author(self) -> Profile:
        return Profile(user_id=strawberry.ID(self.author_id), nickname=None)

@strawberry.type
class PostEdge:
    cursor: str
    node: Post

@strawberry.type
class PostConnection:
    edges: list[PostEdge]

start = datetime(2026, 1, 1, tzinfo=UTC)
POSTS = [
    Post(id=strawberry.ID(f"post{{i:04d}}"), content=f"post number {{i}}",
         tags=["bench", f"t{{i % 3}}"], created_at=start + timedelta(seconds=i),
         author_id=f"user{{i % 5}}")
    for i in range({POSTS})
][::-1]

@strawberry.type
class Query:
    @strawberry.field
    async def posts(self, first: int = 20) -> PostConnection:
        return PostConnection(edges=[PostEdge(cursor=p.id, node=p) for p in POSTS[:first]])

app = GraphQL(strawberry.Schema(query=Query))
"""

CEILING_APP = """
import os
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

BODY = open(os.environ["BENCH_BODY"], "rb").read()

async def graphql(request):
    await request.body()
    return Response(BODY, media_type="application/json")

app = Starlette(routes=[Route("/graphql", graphql, methods=["POST"])])
"""

LUA = """
wrk.method = "POST"
wrk.body = io.open(os.getenv("BENCH_REQUEST")):read("*a")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %.1f %.1f\\n", summary.requests, summary.errors.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    options = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "gqlapi_app.py").write_text(GQL_API_APP)
        (folder / "strawberry_app.py").write_text(STRAWBERRY_APP)
        (folder / "ceiling_app.py").write_text(CEILING_APP)
        (folder / "post.lua").write_text(LUA)
        (folder / "request.json").write_text(json.dumps({"query": QUERY}))
        apps = {
            "gql-api": "gqlapi_app:app",
            "strawberry": "strawberry_app:app",
            "ceiling": "ceiling_app:app",
        }
        body = first_response(folder, "gqlapi_app:app")
        (folder / "body.json").write_bytes(body)
        results: dict[str, list[dict[str, float]]] = {name: [] for name in apps}
        for _ in range(options.rounds):
            for name, target in apps.items():
                results[name].append(measure(folder, target, options))
        report(results)


def server_command(folder: Path, target: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port),
        "--no-access-log", "--log-level", "warning", "--app-dir", str(folder),
    ]  # fmt: skip


def environment(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GQL_API_")}
    env.update(BENCH_BODY=str(folder / "body.json"), BENCH_REQUEST=str(folder / "request.json"))
    env.update(NO_RATE_LIMITS)  # wrk is one address standing for many clients
    return env


def first_response(folder: Path, target: str) -> bytes:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running(server_command(folder, target, port), f"{url}/healthz", env=environment(folder)):
        request = urllib.request.Request(
            f"{url}/graphql",
            data=json.dumps({"query": QUERY}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request) as response:
            return bytes(response.read())


def measure(folder: Path, target: str, options: argparse.Namespace) -> dict[str, float]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = environment(folder)
    ready = f"{url}/healthz" if target.startswith("gqlapi") else f"{url}/graphql"
    with running(server_command(folder, target, port), ready, env=env) as server:
        warm = ["wrk", "-t1", "-c4", "-d1s", "-s", str(folder / "post.lua"), f"{url}/graphql"]
        subprocess.run(warm, env=env, capture_output=True, check=True)
        cpu_before = cpu_seconds(server.pid)
        command = [
            "wrk", "-t2", f"-c{options.connections}", f"-d{options.seconds}s",
            "-s", str(folder / "post.lua"), "--latency", f"{url}/graphql",
        ]  # fmt: skip
        output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
        cpu = cpu_seconds(server.pid) - cpu_before
    match = re.search(r"RESULT (\d+) (\d+) ([\d.]+) ([\d.]+)", output)
    if match is None:
        raise SystemExit(f"wrk said: {output}")
    requests, errors, p50, p99 = (float(g) for g in match.groups())
    if errors:
        raise SystemExit(f"{target}: {errors:.0f} non-2xx answers")
    return {
        "rps": requests / options.seconds,
        "p50_ms": p50 / 1000,
        "p99_ms": p99 / 1000,
        "cpu_ms": 1000 * cpu / requests,
    }


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(results: dict[str, list[dict[str, float]]]) -> None:
    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    rounds = len(next(iter(results.values())))
    print(f"posts(first: 20) over HTTP, median of {rounds} alternating rounds")
    print(f"{'server':<11}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms/req':>12}")
    for name in results:
        print(
            f"{name:<11}{median(name, 'rps'):>9.0f}{median(name, 'p50_ms'):>9.2f}"
            f"{median(name, 'p99_ms'):>9.2f}{median(name, 'cpu_ms'):>12.3f}"
        )
    a, b, c = (median(n, "rps") for n in ("gql-api", "strawberry", "ceiling"))
    print(f"a/b (gql-api / plain Strawberry): {a / b:.2f}x throughput (goal: at least 3x)")
    print(f"a/c (gql-api / bare Starlette):   {a / c:.2f}x throughput")
    print(
        f"p99: gql-api {median('gql-api', 'p99_ms'):.2f} ms, "
        f"Strawberry {median('strawberry', 'p99_ms'):.2f} ms"
    )


if __name__ == "__main__":
    main()
