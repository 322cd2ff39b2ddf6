"""What one warm Lambda request costs in the process: an API Gateway HTTP API (payload
2.0) event through Mangum to the response, CPU ms per request, side by side.

- floor: bare Starlette + Mangum answering gql-api's page response (the least any ASGI
  handler costs);
- strawberry: plain Strawberry (bench/baselines, the strict one) + Mangum;
- gql-api: gql_api.lambda_handler.handler on the memory store, 50 posts;
- gql-api-core: the same with GQL_API_COMPILED_OPERATIONS=false (graphql-core's
  executor for every operation: gql-api before compiled operations).

Lambda bills duration, and a warm request's duration is mostly this CPU time. Each
handler runs in its own process (its imports apart), rounds alternate, medians printed.
Usage: python bench/lambda_request.py [--rounds 5] [--requests 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = (
    "{ posts(first: 20) { edges { node { id content tags author { userId nickname } "
    "createdAt } } } }"
)
COMMON = f"""
import json, sys, time
sys.path.insert(0, {str(ROOT)!r})
sys.path.insert(0, {str(ROOT / "bench" / "baselines")!r})
from tests.lambda_events import event
EVENT = event("http_v2", body=json.dumps({{"query": {PAGE!r}}}))

def measure(handler, requests, save=False):
    for _ in range(200):  # warm: caches filled, the store open
        answer = handler(EVENT, None)
    assert answer["statusCode"] == 200 and "errors" not in answer["body"], answer
    if save:  # what the floor answers
        open(sys.argv[2], "w").write(answer["body"])
    start = time.process_time()
    for _ in range(requests):
        handler(EVENT, None)
    print(json.dumps({{"cpu_ms": 1000 * (time.process_time() - start) / requests,
                      "bytes": len(answer["body"])}}))
"""
HANDLERS = {
    "gql-api": "GQL_API",
    "gql-api-core": "GQL_API",
    "strawberry": """
from mangum import Mangum
from strawberry_app import app
handler = Mangum(app, lifespan="off")
""",
    "floor": """
from mangum import Mangum
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
BODY = open(sys.argv[2], "rb").read()
async def graphql(request):
    await request.body()
    return Response(BODY, media_type="application/json")
handler = Mangum(Starlette(routes=[Route("/graphql", graphql, methods=["POST"])]), lifespan="off")
""",
}
HANDLERS["gql-api"] = HANDLERS["gql-api-core"] = """
import asyncio
from datetime import UTC, datetime, timedelta
from gql_api import lambda_handler
from gql_api.domain.records import PostRecord
from gql_api.domain.validation import new_post_id

async def seed():
    store = lambda_handler.app.state.store
    await store.open()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(50):
        await store.create(PostRecord(
            id=new_post_id(), author_id=f"user{i % 5}", content=f"post number {i}",
            is_markdown=False, tags=("bench", f"t{i % 3}"), image_keys=(),
            created_at=start + timedelta(seconds=i), updated_at=None, version=1))

asyncio.run(seed())
asyncio.set_event_loop(asyncio.new_event_loop())  # Mangum runs each request on it
handler = lambda_handler.handler
"""


def run(name: str, requests: int, body_file: Path) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GQL_API_", "AWS_"))}
    env.update(GQL_API_STORE="memory", GQL_API_DEV_SECRET="b" * 40, GQL_API_LOG_LEVEL="INFO")
    if name == "gql-api-core":
        env.update(GQL_API_COMPILED_OPERATIONS="false")
    save = name == "gql-api"
    script = COMMON + HANDLERS[name] + f"\nmeasure(handler, {requests}, save={save})\n"
    output = subprocess.run(
        [sys.executable, "-c", script, "-", str(body_file)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if output.returncode != 0:
        raise SystemExit(f"{name}: {output.stderr[-3000:]}")
    result: dict[str, float] = json.loads(output.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2000)
    options = parser.parse_args()
    body_file = ROOT / "test-artifacts" / "lambda-page-body.json"
    body_file.parent.mkdir(exist_ok=True)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in HANDLERS}
    for _ in range(options.rounds):
        for name in HANDLERS:
            results[name].append(run(name, options.requests, body_file))
    cpu = {name: statistics.median(r["cpu_ms"] for r in rows) for name, rows in results.items()}
    print(f"one warm request through Mangum, CPU ms (median of {options.rounds} rounds)")
    for name, value in cpu.items():
        print(f"{name:<11}{value:>8.3f} ms  ({results[name][0]['bytes']:.0f} bytes answered)")
    print(
        f"gql-api: {cpu['strawberry'] / cpu['gql-api']:.2f}x less CPU than plain Strawberry, "
        f"{cpu['gql-api-core'] / cpu['gql-api']:.2f}x less than on graphql-core's executor, "
        f"{cpu['gql-api'] / cpu['floor']:.2f}x the floor"
    )


if __name__ == "__main__":
    main()
