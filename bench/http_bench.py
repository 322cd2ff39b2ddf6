"""GraphQL over HTTP, side by side on 127.0.0.1: gql-api as shipped against the strongest
fair versions of its competitors, wrk as the load generator.

Servers, one process each on core 0 (wrk on core 1), alternating, several rounds:

- gql-api: `gql-api serve` with its defaults (the access log on), the memory store
  seeded with 50 posts over the API; rate limits off (wrk is one address for many);
- gql-api-core: the same with GQL_API_COMPILED_OPERATIONS=false, every operation on
  graphql-core's executor (gql-api before compiled operations);
- strawberry: plain Strawberry on uvicorn (uvloop and httptools when installed), each
  post's author an ``async def`` resolver (the strict baseline; gql-api loads authors
  through a loader);
- strawberry-attached: the same with the authors held on the posts (no resolver);
- yoga, jit: graphql-yoga and graphql-jit on Node (bench/graphql_node, `make bench`);
- ceiling: bare Starlette answering gql-api's own response to the page query.

Workloads: ``page`` (20 posts with their authors), ``create`` (createPost with
variables, signed in) and ``fragments`` (variables, fragments and aliases). Prints req/s,
p50, p99, the server's CPU ms per request, and gql-api's ratios to each.
Usage: python bench/http_bench.py [--rounds 3] [--seconds 5] [--connections 16]
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gql_api.auth.dev import mint_dev_token  # noqa: E402
from gql_api.settings import Settings  # noqa: E402
from tests.helpers import NO_RATE_LIMITS, free_port  # noqa: E402
from tests.servers import running  # noqa: E402

NODE = ROOT / "bench" / "graphql_node"
BASELINES = ROOT / "bench" / "baselines"
SECRET = "bench-secret-" + "b" * 32
POSTS = 50
PAGE = (
    "{ posts(first: 20) { edges { node { id content tags author { userId nickname } "
    "createdAt } } } }"
)
CREATE = (
    "mutation Create($content: String!, $tags: [String!]) { "
    "createPost(input: {content: $content, tags: $tags}) { id content tags createdAt } }"
)
FRAGMENTS = """query Feed($first: Int!, $tag: String) {
  latest: posts(first: $first) { edges { node { ...Shown } } }
  tagged: posts(first: 5, tag: $tag) { edges { cursor node { ...Shown who: author { nickname } } } }
}
fragment Shown on Post { id body: content tags createdAt author { ...Who } }
fragment Who on Profile { userId nickname }"""
WORKLOADS: dict[str, tuple[str, dict[str, object]]] = {
    "page": (PAGE, {}),
    "create": (CREATE, {"content": "a new post", "tags": ["Bench", "new"]}),
    "fragments": (FRAGMENTS, {"first": 10, "tag": "t1"}),
}
# wrk's report, one line that wrk_result reads.
WRK_DONE = """
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %.1f %.1f\\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""
LUA = (
    """
wrk.method = "POST"
wrk.body = io.open(os.getenv("BENCH_REQUEST")):read("*a")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
"""
    + WRK_DONE
)


@dataclass(frozen=True)
class Server:
    command: Callable[[int], list[str]]
    ready: str  # the path that answers once it is up
    env: dict[str, str] = field(default_factory=dict)
    workloads: tuple[str, ...] = tuple(WORKLOADS)


def uvicorn_app(target: str) -> Callable[[int], list[str]]:
    return lambda port: [
        sys.executable, "-m", "uvicorn", target, "--app-dir", str(BASELINES),
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip


SERVERS = {
    "gql-api": Server(
        lambda port: [sys.executable, "-m", "gql_api", "serve", "--port", str(port)],
        "/healthz",
        {"GQL_API_STORE": "memory", "GQL_API_DEV_SECRET": SECRET, **NO_RATE_LIMITS},
    ),
    "gql-api-core": Server(
        lambda port: [sys.executable, "-m", "gql_api", "serve", "--port", str(port)],
        "/healthz",
        {
            "GQL_API_STORE": "memory",
            "GQL_API_DEV_SECRET": SECRET,
            "GQL_API_COMPILED_OPERATIONS": "false",
            **NO_RATE_LIMITS,
        },
    ),
    "strawberry": Server(uvicorn_app("strawberry_app:app"), "/graphql"),
    "strawberry-attached": Server(
        uvicorn_app("strawberry_app:app"), "/graphql", {"BENCH_AUTHORS": "attached"}
    ),
    "yoga": Server(lambda port: ["node", str(NODE / "yoga.mjs"), str(port)], "/graphql"),
    "jit": Server(lambda port: ["node", str(NODE / "jit.mjs"), str(port)], "/graphql"),
    "ceiling": Server(uvicorn_app("ceiling_app:app"), "/graphql", workloads=("page",)),
}
Result = dict[str, float]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--servers", default=",".join(SERVERS))
    options = parser.parse_args()
    for tool in ("wrk", "taskset", "node"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (apt-get install wrk util-linux nodejs)")
    if not (NODE / "node_modules").is_dir():
        raise SystemExit("the Node baselines are not installed: run `make bench`")
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("two cores are needed: the server on one, wrk on the other")
    workloads = options.workloads.split(",")
    servers = options.servers.split(",")
    token = mint_dev_token(Settings(store="memory", dev_secret=SECRET), SECRET, user_id="bench")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "post.lua").write_text(LUA)
        (folder / "body.json").write_bytes(page_body(folder, token))
        results: dict[tuple[str, str], list[Result]] = {}
        for _ in range(options.rounds):
            for workload in workloads:
                for name in servers:
                    if workload in SERVERS[name].workloads:
                        result = measure(folder, name, workload, token, options)
                        results.setdefault((workload, name), []).append(result)
    report(results, workloads, servers, options)


def environment(folder: Path, server: Server, workload: str, token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GQL_API_")}
    query, variables = WORKLOADS[workload]
    request = folder / f"{workload}.json"
    request.write_text(json.dumps({"query": query, "variables": variables}))
    env.update(BENCH_BODY=str(folder / "body.json"), BENCH_REQUEST=str(request))
    env.update(BENCH_TOKEN=token, BENCH_POSTS=str(POSTS), **server.env)
    return env


def post(url: str, query: str, variables: Mapping[str, object], token: str) -> dict[str, object]:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, object] = json.loads(response.read())
    if answer.get("errors") or not answer.get("data"):
        raise SystemExit(f"{url} answered {answer}")
    return answer


def seed(url: str) -> None:
    """gql-api's 50 posts, through the API: post i by user i % 5, as the baselines hold."""
    settings = Settings(store="memory", dev_secret=SECRET)
    tokens = [mint_dev_token(settings, SECRET, user_id=f"user{n}") for n in range(5)]
    for i in range(POSTS):
        variables = {"content": f"post number {i}", "tags": ["bench", f"t{i % 3}"]}
        post(url, CREATE, variables, tokens[i % 5])


def started(
    name: str, folder: Path, workload: str, token: str
) -> tuple[list[str], str, dict[str, str]]:
    server = SERVERS[name]
    port = free_port()
    command = ["taskset", "-c", "0", *server.command(port)]
    return command, f"http://127.0.0.1:{port}", environment(folder, server, workload, token)


def page_body(folder: Path, token: str) -> bytes:
    """gql-api's answer to the page query: what the ceiling answers."""
    command, url, env = started("gql-api", folder, "page", token)
    with running(command, url + "/healthz", env=env):
        seed(url)
        return json.dumps(post(url, PAGE, {}, token)).encode()


def measure(
    folder: Path, name: str, workload: str, token: str, options: argparse.Namespace
) -> Result:
    command, url, env = started(name, folder, workload, token)
    with running(command, url + SERVERS[name].ready, env=env) as server:
        if name.startswith("gql-api"):
            seed(url)
        if name != "ceiling":
            query, variables = WORKLOADS[workload]
            post(url, query, variables, token)  # a right answer, not only a fast one
        wrk = ["taskset", "-c", "1", "wrk", "-t1", "-s", str(folder / "post.lua")]
        warm = [*wrk, "-c4", "-d1s", f"{url}/graphql"]
        subprocess.run(warm, env=env, capture_output=True, check=True)
        cpu_before = cpu_seconds(server.pid)
        load = [*wrk, f"-c{options.connections}", f"-d{options.seconds}s", "--latency"]
        output = subprocess.run(
            [*load, f"{url}/graphql"], env=env, capture_output=True, text=True, check=True
        ).stdout
        cpu = cpu_seconds(server.pid) - cpu_before
    result = wrk_result(output, f"{name} {workload}", options.seconds)
    return {**result, "cpu_ms": 1000 * cpu / result["requests"]}


def wrk_result(output: str, what: str, seconds: int) -> Result:
    """Requests, req/s, p50 and p99 (ms) from WRK_DONE's line; none may have failed."""
    match = re.search(r"RESULT (\d+) (\d+) ([\d.]+) ([\d.]+)", output)
    if match is None:
        raise SystemExit(f"wrk said: {output}")
    requests, errors, p50, p99 = (float(g) for g in match.groups())
    if errors:
        raise SystemExit(f"{what}: {errors:.0f} failed or non-2xx answers")
    return {
        "requests": requests,
        "rps": requests / seconds,
        "p50_ms": p50 / 1000,
        "p99_ms": p99 / 1000,
    }


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(
    results: dict[tuple[str, str], list[Result]],
    workloads: list[str],
    servers: list[str],
    options: argparse.Namespace,
) -> None:
    def median(workload: str, name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[(workload, name)])

    print(
        f"median of {options.rounds} alternating rounds of {options.seconds} s, "
        f"wrk -c{options.connections} on core 1, each server on core 0"
    )
    for workload in workloads:
        shown = [n for n in servers if (workload, n) in results]
        print(f"\n{workload}: {' '.join(WORKLOADS[workload][0].split())[:90]}...")
        print(f"{'server':<21}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms/req':>12}")
        for name in shown:
            print(
                f"{name:<21}{median(workload, name, 'rps'):>8.0f}"
                f"{median(workload, name, 'p50_ms'):>9.2f}{median(workload, name, 'p99_ms'):>9.2f}"
                f"{median(workload, name, 'cpu_ms'):>12.3f}"
            )
        if "gql-api" not in shown:
            continue
        ours = median(workload, "gql-api", "rps")
        ratios = [f"{ours / median(workload, n, 'rps'):.2f}x {n}" for n in shown if n != "gql-api"]
        print("gql-api req/s: " + ", ".join(ratios))
        if "yoga" in shown:
            print(
                f"p99: gql-api {median(workload, 'gql-api', 'p99_ms'):.2f} ms, "
                f"yoga {median(workload, 'yoga', 'p99_ms'):.2f} ms "
                "(goals: req/s at least yoga's and 5x strawberry's, p99 at most yoga's)"
            )


if __name__ == "__main__":
    main()
