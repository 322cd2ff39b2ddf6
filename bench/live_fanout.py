"""Live fan-out over graphql-transport-ws, side by side on 127.0.0.1: gql-api as shipped
against the strongest fair versions of its competitors, one asyncio client for all.

Servers, one process each on core 0 (the client, this process, on core 1), alternating,
each started afresh for each run:
- gql-api: `gql-api serve` on the memory store, rate limits off, the live connection
  limits above the subscribers, every subscriber signed in as the same user;
- gql-api-sqlite: the same on the SQLite store (the default; its feed polls every 0.1 s);
- gql-api-users: the memory store, each subscriber signed in as a user of its own;
- strawberry: plain Strawberry (bench/baselines/strawberry_live_app.py) on uvicorn with
  uvloop and httptools, an asyncio broadcast with one queue per subscriber;
- yoga: graphql-yoga's createPubSub over graphql-ws and ws (bench/graphql_node).

Each run: one subscriber checks that a post made over HTTP reaches it right; the server's
RSS (/proc VmRSS) is read when idle, N subscribers open (connection_init with a dev token,
then `postEvents`) and it is read again when idle: KiB per idle subscriber. A probe post
must reach all N; then E createPost mutations over HTTP, each once every subscriber got
the one before (and 50-150 ms more): the time from its send to each subscriber's `next`,
and the RSS grown from the idle subscribers' to after the posts, per post.
Usage: python bench/live_fanout.py [--rounds 3] [--subscribers 1000] [--events 30]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvloop
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gql_api.auth.dev import mint_dev_token  # noqa: E402
from gql_api.settings import Settings  # noqa: E402
from tests.helpers import NO_RATE_LIMITS, cli_env, free_port  # noqa: E402
from tests.servers import running  # noqa: E402

NODE = ROOT / "bench" / "graphql_node"
BASELINES = ROOT / "bench" / "baselines"
SECRET = "live-bench-secret-" + "l" * 32
SUBSCRIBE = "subscription { postEvents { kind postId post { id content tags } } }"
CREATE = (
    "mutation Create($content: String!, $tags: [String!]) { "
    "createPost(input: {content: $content, tags: $tags}) { id } }"
)
WAIT_SECONDS = 30.0  # the longest an event may take to reach every subscriber
HANDSHAKES = 50  # connections opening at once
Result = dict[str, float]


@dataclass(frozen=True)
class Server:
    command: Callable[[int], list[str]]
    ready: str  # the path that answers once it is up
    env: dict[str, str] = field(default_factory=dict)
    per_user: bool = False  # each subscriber signs in as a user of its own


def gql_api(store: str, per_user: bool = False) -> Server:
    command = [sys.executable, "-m", "gql_api", "serve", "--port"]
    return Server(
        lambda port: [*command, str(port)], "/healthz", {"GQL_API_STORE": store}, per_user
    )


def strawberry(port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "strawberry_live_app:app", "--app-dir", str(BASELINES),
        "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools",
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip


SERVERS = {
    "gql-api": gql_api("memory"),
    "gql-api-sqlite": gql_api("sqlite"),
    "gql-api-users": gql_api("memory", per_user=True),
    "strawberry": Server(strawberry, "/graphql"),
    "yoga": Server(lambda port: ["node", str(NODE / "yoga_live.mjs"), str(port)], "/graphql"),
}
BASELINE_NAMES = ("strawberry", "yoga")


def expected_event(content: str, tags: list[str], post_id: str) -> dict[str, Any]:
    post = {"id": post_id, "content": content, "tags": tags}
    return {"kind": "CREATED", "postId": post_id, "post": post}


class Client:
    """Subscribers on one event loop: each message's arrival time, by the post's content."""

    def __init__(self, url: str) -> None:
        self.url = url.replace("http://", "ws://") + "/graphql"
        self.sockets: list[ClientConnection] = []
        self.readers: list[asyncio.Task[None]] = []
        self.arrivals: dict[str, list[float]] = {}
        self.first: dict[str, dict[str, Any]] = {}  # each event as first received
        self.complete: dict[str, asyncio.Event] = {}
        self.wrong = 0  # events unlike the first of their post, or not events at all
        self.closed: list[str] = []  # connections the server closed, with their codes
        self.closing = False

    async def open(self, tokens: list[str]) -> None:
        gate = asyncio.Semaphore(HANDSHAKES)
        await asyncio.gather(*(self._open_one(token, gate) for token in tokens))

    async def _open_one(self, token: str, gate: asyncio.Semaphore) -> None:
        async with gate:
            protocols = [Subprotocol("graphql-transport-ws")]  # no compression, as browsers
            socket = await connect(self.url, subprotocols=protocols, compression=None,
                                   ping_interval=None, open_timeout=30, max_queue=None)  # fmt: skip
            init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
            await socket.send(orjson.dumps(init).decode())
            if (ack := orjson.loads(await socket.recv())).get("type") != "connection_ack":
                raise SystemExit(f"{self.url}: connection_init answered {ack}")
            subscribe = {"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}}
            await socket.send(orjson.dumps(subscribe).decode())
        self.sockets.append(socket)
        self.readers.append(asyncio.create_task(self._read(socket)))

    async def _read(self, socket: ClientConnection) -> None:
        try:
            async for raw in socket:
                now = time.perf_counter()
                message = orjson.loads(raw)
                kind = message.get("type")
                if kind == "next":
                    self._arrived(now, message)
                elif kind == "ping":
                    await socket.send('{"type":"pong"}')
                elif kind != "pong":
                    self.wrong += 1
        except ConnectionClosed:
            pass
        if not self.closing:
            self.closed.append(f"{socket.close_code} {socket.close_reason}")

    def _arrived(self, now: float, message: dict[str, Any]) -> None:
        event = ((message.get("payload") or {}).get("data") or {}).get("postEvents") or {}
        key = str((event.get("post") or {}).get("content"))
        got = self.arrivals.get(key)
        if got is None or self.first.setdefault(key, event) != event:
            self.wrong += 1
        if got is not None:
            got.append(now)
            if len(got) == len(self.sockets):
                self.complete[key].set()

    async def post(self, http: httpx.AsyncClient, content: str, tags: list[str]) -> float:
        """Make a post and wait until every subscriber got it: the mutation's send time."""
        self.arrivals[content], self.complete[content] = [], asyncio.Event()
        started = time.perf_counter()
        body = {"query": CREATE, "variables": {"content": content, "tags": tags}}
        answer = (await http.post("/graphql", json=body)).json()
        post_id = (answer.get("data") or {}).get("createPost", {}).get("id")
        if post_id is None:
            raise SystemExit(f"{self.url}: createPost answered {answer}")
        try:
            async with asyncio.timeout(WAIT_SECONDS):
                await self.complete[content].wait()
        except TimeoutError:
            pass  # counted as missed
        normalized = list(dict.fromkeys(t.strip().lower() for t in tags))
        if self.first.get(content, {}) != expected_event(content, normalized, post_id):
            raise SystemExit(f"{self.url}: wrong event {self.first.get(content)} for {post_id}")
        return started

    async def close(self) -> None:
        self.closing = True
        await asyncio.gather(*(s.close() for s in self.sockets), return_exceptions=True)
        await asyncio.gather(*self.readers, return_exceptions=True)


def rss_kib(pid: int) -> int:
    return int(Path(f"/proc/{pid}/status").read_text().split("VmRSS:", 1)[1].split()[0])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def idle(pid: int) -> None:
    """Wait until the server used at most a clock tick of CPU in 0.5 s (at most 20 s)."""
    deadline, last = time.monotonic() + 20, cpu_seconds(pid)
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        last, before = cpu_seconds(pid), last
        if last - before <= 1.5 / os.sysconf("SC_CLK_TCK"):
            return


async def measure(url: str, pid: int, tokens: list[str], writer: str, events: int) -> Result:
    headers = {"authorization": f"Bearer {writer}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
        checker = Client(url)  # a right answer first, not only a fast one
        await checker.open(tokens[:1])
        await idle(pid)  # its subscription started: nothing says so in the protocol
        await checker.post(http, "check post", ["Check", "live"])
        if len(checker.arrivals["check post"]) != 1 or checker.wrong:
            raise SystemExit(f"{url}: the checking subscriber did not get its event right")
        await checker.close()
        await idle(pid)
        before = rss_kib(pid)
        client = Client(url)
        try:
            await client.open(tokens)
            await idle(pid)
            after = rss_kib(pid)
            await client.post(http, "probe post", ["probe"])
            if len(client.arrivals["probe post"]) != len(tokens):
                raise SystemExit(f"{url}: {len(client.arrivals['probe post'])} got the probe")
            figures = await fan_out(client, http, pid, events)
            await idle(pid)
            end = rss_kib(pid)  # what the posts left behind
        finally:
            await client.close()
    figures.update(wrong=client.wrong, dropped=len(client.closed), rss_before=before / 1024)
    figures.update(rss_after=after / 1024, kib=(after - before) / len(tokens))
    figures.update(rss_end=end / 1024, growth=(end - after) / events)
    return figures


async def fan_out(client: Client, http: httpx.AsyncClient, pid: int, events: int) -> Result:
    """The posts, one after another: each subscriber's delay, and the first's and last's."""
    shuffle, count = random.Random(7), len(client.sockets)
    latencies: list[float] = []
    firsts: list[float] = []
    lasts: list[float] = []
    gc.collect()
    gc.freeze()  # the client's own collector passes would delay what it reads
    gc.disable()
    cpu_before, client_before = cpu_seconds(pid), time.process_time()
    for n in range(events):
        content = f"live post {n}"
        sent = await client.post(http, content, ["Live", f"t{n % 3}"])
        got = [moment - sent for moment in client.arrivals[content]]
        latencies += got
        firsts.append(min(got))
        lasts.append(max(got) if len(got) == count else WAIT_SECONDS)
        await asyncio.sleep(shuffle.uniform(0.05, 0.15))
    cpu, client_cpu = cpu_seconds(pid) - cpu_before, time.process_time() - client_before
    gc.enable()
    gc.unfreeze()
    latencies.sort()
    return {
        "p50": 1000 * latencies[len(latencies) // 2],
        "p99": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "max": 1000 * latencies[-1],
        "first_p50": 1000 * statistics.median(firsts),
        "last_p50": 1000 * statistics.median(lasts),
        "last_max": 1000 * max(lasts),
        "cpu": 1000 * cpu / events,
        "client_cpu": 1000 * client_cpu / events,
        "missed": events * count - len(latencies),
    }


def run(name: str, options: argparse.Namespace, tokens: dict[str, str]) -> Result:
    server, port = SERVERS[name], free_port()
    url = f"http://127.0.0.1:{port}"
    names = [f"user{i}" if server.per_user else "live-bench" for i in range(options.subscribers)]
    subscribers, limit = [tokens[n] for n in names], str(max(2 * options.subscribers, 2000))
    with tempfile.TemporaryDirectory() as scratch:
        env = cli_env(
            GQL_API_DEV_SECRET=SECRET,
            GQL_API_SQLITE_PATH=str(Path(scratch) / "gql-api.db"),
            GQL_API_MAX_CONNECTIONS=limit,
            GQL_API_MAX_SUBSCRIPTION_CONNECTIONS=limit,
            **NO_RATE_LIMITS,  # the client is one address for many
            **server.env,
        )
        command = ["taskset", "-c", "0", *server.command(port)]
        with running(command, url + server.ready, env=env) as process:
            figures = measure(url, process.pid, subscribers, tokens["writer"], options.events)
            return uvloop.run(figures)


def versions() -> str:
    def output(*command: str) -> str:
        return subprocess.run(command, capture_output=True, text=True).stdout.strip()

    cpu = output("sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2")
    node = [f"Node {output('node', '--version')}"] + [
        f"{p} {orjson.loads((NODE / 'node_modules' / p / 'package.json').read_bytes())['version']}"
        for p in ("graphql-yoga", "graphql-ws", "ws")
    ]
    python = [f"Python {platform.python_version()}"]
    python += [f"{p} {version(p)}" for p in ("uvicorn", "websockets", "strawberry-graphql")]
    commit = output("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD")
    return f"{cpu}, {os.cpu_count()} cores; {', '.join(python)}; {', '.join(node)}; at {commit}"


LATENCY = {"p50": "delivery p50 ms", "p99": "p99 ms", "max": "max ms",
           "first_p50": "first of each post: p50 ms", "last_p50": "last of each post: p50 ms",
           "last_max": "last: max ms", "cpu": "server CPU ms/post",
           "client_cpu": "client CPU ms/post"}  # fmt: skip
MEMORY = {"rss_before": "RSS before MiB", "rss_after": "RSS with the subscribers MiB",
          "kib": "KiB per idle subscriber", "rss_end": "RSS after the posts MiB",
          "growth": "growth KiB per post"}  # fmt: skip
RATIOS = {"p50": "delivery p50", "p99": "delivery p99", "last_p50": "last p50", "kib": "KiB"}


def table(first: str, titles: list[str], rows: dict[str, list[str]]) -> None:
    print(f"\n| {first} | {' | '.join(titles)} |\n" + "| --- " * (len(titles) + 1) + "|")
    for name, cells in rows.items():
        print(f"| {name} | {' | '.join(cells)} |")


def report(results: dict[str, list[Result]], options: argparse.Namespace) -> None:
    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    def total(name: str, key: str) -> str:
        return str(int(sum(r[key] for r in results[name])))

    print(
        f"\n{options.subscribers:,} subscribers, {options.events} posts a run; median of "
        f"{options.rounds} alternating rounds; each server on core 0, the client on core 1"
    )
    lost = ("missed", "dropped", "wrong")
    table(
        "server",
        [*LATENCY.values(), " / ".join(lost)],
        {n: [f"{median(n, k):.1f}" for k in LATENCY] + [" / ".join(total(n, k) for k in lost)]
         for n in results},
    )  # fmt: skip
    table("server", list(MEMORY.values()),
          {n: [f"{median(n, k):.1f}" for k in MEMORY] for n in results})  # fmt: skip
    pairs = [(ours, theirs) for ours in results if ours.startswith("gql-api")
             for theirs in results if theirs in BASELINE_NAMES]  # fmt: skip
    if pairs:
        print("\ngql-api's figure ÷ the baseline's (below 1: gql-api's is lower, better)")
        table("gql-api ÷ baseline", list(RATIOS.values()),
              {f"{a} ÷ {b}": [f"{median(a, k) / median(b, k):.2f}x" for k in RATIOS]
               for a, b in pairs})  # fmt: skip
    print(f"\n{versions()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--events", type=int, default=30)
    parser.add_argument("--servers", default=",".join(SERVERS))
    options = parser.parse_args()
    for tool in ("taskset", "node"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (apt-get install util-linux nodejs)")
    if not (NODE / "node_modules" / "graphql-ws").is_dir():
        raise SystemExit("the Node baselines are not installed: run `make bench`")
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("two cores are needed: the server on one, the client on the other")
    os.sched_setaffinity(0, {1})
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * options.subscribers + 1000  # the servers inherit it too
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    settings = Settings(store="memory", dev_secret=SECRET)
    tokens = {
        name: mint_dev_token(settings, SECRET, user_id=name)
        for name in ["writer", "live-bench"] + [f"user{i}" for i in range(options.subscribers)]
    }
    servers = options.servers.split(",")
    results: dict[str, list[Result]] = {}
    for round_number in range(options.rounds):
        for name in servers:
            result = run(name, options, tokens)
            results.setdefault(name, []).append(result)
            print(
                f"round {round_number + 1} {name}: p50 {result['p50']:.1f} ms, last "
                f"{result['last_p50']:.1f} ms, {result['kib']:.1f} KiB/subscriber",
                flush=True,
            )
    report(results, options)


if __name__ == "__main__":
    main()
