"""The same anonymous feed page through a shared cache and straight from gql-api, side by
side on 127.0.0.1: what the HTTP caching headers buy (README, "HTTP caching").

- direct: wrk -> `gql-api serve` (the memory store seeded with 50 posts, as shipped:
  the access log on, rate limits off, the cache settings at their defaults);
- cached: wrk -> Debian's nginx with ``proxy_cache`` (tests/test_cdn_cache.py's
  configuration: keyed on the URL, kept for what gql-api's Cache-Control says) -> the
  same gql-api.

gql-api and nginx share core 0, wrk runs on core 1; the two alternate, several rounds.
Each answer is checked once before the load; the origin's request count during the
load says how many requests the cache passed on.
Usage: python bench/cdn_cache.py [--rounds 3] [--seconds 5] [--connections 16]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# This script's folder is on sys.path when it runs: the request bench's page and seeding.
from http_bench import PAGE, SECRET, WRK_DONE, cpu_seconds, seed, wrk_result  # noqa: E402

from tests.helpers import NO_RATE_LIMITS, free_port  # noqa: E402
from tests.servers import running  # noqa: E402
from tests.test_cdn_cache import CONFIG, NGINX  # noqa: E402

LUA = 'wrk.headers["Accept"] = "application/json"\n' + WRK_DONE
SETUPS = ("direct", "cached")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    options = parser.parse_args()
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (apt-get install wrk util-linux)")
    if not NGINX.exists():
        raise SystemExit(f"nginx is not unpacked: run `make {NGINX.relative_to(ROOT)}`")
    results: dict[str, list[dict[str, float]]] = {setup: [] for setup in SETUPS}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "get.lua").write_text(LUA)
        for round_number in range(options.rounds):
            for setup in SETUPS:
                run = folder / f"{setup}-{round_number}"
                run.mkdir()
                results[setup].append(measure(run, setup, options))
    report(results, options)


def measure(folder: Path, setup: str, options: argparse.Namespace) -> dict[str, float]:
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GQL_API_")}
    env.update(GQL_API_STORE="memory", GQL_API_DEV_SECRET=SECRET, **NO_RATE_LIMITS)
    command = ["taskset", "-c", "0", sys.executable, "-m", "gql_api", "serve"]
    log = folder / "origin.log"
    with ExitStack() as stack:
        server = stack.enter_context(
            running([*command, "--port", str(port)], f"{origin}/healthz", env=env, log_path=log)
        )
        seed(origin)
        url = origin
        if setup == "cached":
            url = f"http://127.0.0.1:{free_port()}"
            config = folder / "nginx.conf"
            config.write_text(
                CONFIG.format(folder=folder, port=url.rsplit(":", 1)[1], upstream=origin)
            )
            nginx = ["taskset", "-c", "0", str(NGINX), "-c", str(config), "-p", str(folder)]
            stack.enter_context(running(nginx, f"{url}/healthz"))
        target = f"{url}/graphql?" + urllib.parse.urlencode({"query": PAGE})
        check(target)
        wrk = ["taskset", "-c", "1", "wrk", "-t1", "-s", str(folder.parent / "get.lua")]
        subprocess.run([*wrk, "-c4", "-d1s", target], capture_output=True, check=True)
        before, cpu_before = origin_requests(log), cpu_seconds(server.pid)
        load = [*wrk, f"-c{options.connections}", f"-d{options.seconds}s", "--latency"]
        output = subprocess.run([*load, target], capture_output=True, text=True, check=True)
        cpu = cpu_seconds(server.pid) - cpu_before
        passed_on = origin_requests(log) - before
    result = wrk_result(output.stdout, setup, options.seconds)
    requests = result["requests"]
    return {
        **result,
        "origin_share": passed_on / requests,
        "origin_cpu_ms": 1000 * cpu / requests,
    }


def check(target: str) -> None:
    """The page, whole and public: a fast wrong answer measures nothing."""
    with urllib.request.urlopen(target, timeout=10) as answer:
        body = json.loads(answer.read())
        cache_control = answer.headers.get("cache-control", "")
    if len(body["data"]["posts"]["edges"]) != 20 or not cache_control.startswith("public"):
        raise SystemExit(f"{target} answered {cache_control!r} {str(body)[:200]}")


def origin_requests(log: Path) -> int:
    return sum('"GET /graphql' in line for line in log.read_text().splitlines())


def report(results: dict[str, list[dict[str, float]]], options: argparse.Namespace) -> None:
    def median(setup: str, key: str) -> float:
        return statistics.median(r[key] for r in results[setup])

    print(
        f"median of {options.rounds} alternating rounds of {options.seconds} s, "
        f"wrk -c{options.connections} on core 1, gql-api and nginx on core 0"
    )
    heads = f"{'setup':<8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'to origin':>11}"
    print(heads + f"{'origin CPU ms/req':>19}")
    for setup in SETUPS:
        print(
            f"{setup:<8}{median(setup, 'rps'):>9.0f}{median(setup, 'p50_ms'):>9.2f}"
            f"{median(setup, 'p99_ms'):>9.2f}{100 * median(setup, 'origin_share'):>10.2f}%"
            f"{median(setup, 'origin_cpu_ms'):>19.3f}"
        )
    print(
        f"cached / direct: req/s {median('cached', 'rps') / median('direct', 'rps'):.1f}x, "
        f"p99 {median('cached', 'p99_ms') / median('direct', 'p99_ms'):.2f}x"
    )


if __name__ == "__main__":
    main()
