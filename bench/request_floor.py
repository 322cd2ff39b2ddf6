"""Where a page request's CPU goes inside gql-api, and the least a perfect compiler of the
page could leave: in-process, no sockets, one core.

- request, one field: ``{ limits { maxTags } }`` through the whole ASGI app (Starlette,
  the endpoint, parsing the body, the token, the graphql-core executor set up for the
  request, the access log line): what every request costs before any field;
- request, page: the page query (20 posts with their authors) through the same app;
- plan, page: the compiled plan completing the page's connection (what ``posts``
  answered: 20 edges, 20 posts, 20 authors), with the response budget off;
- hand-written, page: the same response built by code written for this one query with
  none of the plan's checks (no error paths, no budget): the least any compiler of
  this operation could spend on completion.

The difference between the plan and the hand-written code is all a better compiler could
save; the rest of the page request is spent outside the completion.
Usage: python bench/request_floor.py [--rounds 7] [--requests 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gql_api.app import create_app  # noqa: E402
from gql_api.auth.dev import mint_dev_token  # noqa: E402
from gql_api.execution import plan_run  # noqa: E402
from gql_api.logs import configure_logging  # noqa: E402
from gql_api.settings import Settings  # noqa: E402
from tests.helpers import NO_RATE_LIMITS  # noqa: E402

SECRET = "bench-secret-" + "b" * 32
PAGE = (
    "{ posts(first: 20) { edges { node { id content tags author { userId nickname } "
    "createdAt } } } }"
)
ONE_FIELD = "{ limits { maxTags } }"
CREATE = "mutation Create($content: String!) { createPost(input: {content: $content}) { id } }"


class InProcess:
    """The app as `gql-api serve` builds it (memory store, access log on, to /dev/null)."""

    def __init__(self) -> None:
        os.environ.update(GQL_API_STORE="memory", GQL_API_DEV_SECRET=SECRET, **NO_RATE_LIMITS)
        self.settings = Settings()
        configure_logging("INFO")
        handler = logging.getLogger().handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 - for the process's life
        self.app = create_app(self.settings)

    async def start(self) -> None:
        started = asyncio.Event()
        messages: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        await messages.put({"type": "lifespan.startup"})

        async def send(message: MutableMapping[str, Any]) -> None:
            started.set()

        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self.lifespan = asyncio.create_task(self.app(scope, messages.get, send))
        await started.wait()
        for i in range(50):
            user = f"user{i % 5}"
            await self.post({"query": CREATE, "variables": {"content": f"post {i}"}}, user)

    async def post(self, payload: dict[str, Any], user: str = "bench") -> bytes:
        return await self.call(self.request(payload, user))

    def request(self, payload: dict[str, Any], user: str = "bench") -> tuple[dict[str, Any], bytes]:
        body = json.dumps(payload).encode()
        token = mint_dev_token(self.settings, SECRET, user_id=user)
        headers = [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"accept", b"application/json"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": "/graphql", "raw_path": b"/graphql",
            "query_string": b"", "root_path": "", "headers": headers,
            "client": ("127.0.0.1", 5555), "server": ("127.0.0.1", 8000), "state": {},
        }  # fmt: skip
        return scope, body

    async def call(self, request: tuple[dict[str, Any], bytes]) -> bytes:
        scope, body = request
        answer: list[bytes] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.body":
                answer.append(message["body"])

        await self.app(dict(scope), receive, send)
        return b"".join(answer)


def best_us(work: Callable[[], object], rounds: int, requests: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(requests):
            work()
        best = min(best, (time.process_time() - start) / requests)
    return 1e6 * best


def hand_written(connection: Any, profiles: dict[str, Any]) -> dict[str, Any]:
    """The page's connection as this one query answers it, with no checks at all."""
    edges = []
    for edge in connection.edges:
        post = edge.node
        author = profiles[post.author_id]
        created = post.created_at.isoformat(timespec="microseconds")[:-6] + "Z"
        node = {
            "id": post.id,
            "content": post.content,
            "tags": list(post.tags),
            "author": {"userId": post.author_id, "nickname": author.nickname},
            "createdAt": created,
        }
        edges.append({"node": node})
    return {"edges": edges}


async def measure(options: argparse.Namespace) -> None:
    served = InProcess()
    await served.start()
    page = served.request({"query": PAGE})
    one_field = served.request({"query": ONE_FIELD})

    def through_app(request: tuple[dict[str, Any], bytes]) -> Callable[[], Awaitable[None]]:
        async def many() -> None:
            for _ in range(options.requests):
                await served.call(request)

        return many

    async def timed(work: Callable[[], Awaitable[None]]) -> float:
        best = float("inf")
        for _ in range(options.rounds):
            start = time.process_time()
            await work()
            best = min(best, (time.process_time() - start) / options.requests)
        return 1e6 * best

    # One page request, its connection and the plan that completed it captured.
    captured: dict[str, Any] = {}
    original = plan_run.Run.object

    def spy(run: plan_run.Run, plan: Any, source: Any, path: Any) -> Any:
        if plan.type.name == "PostConnection":
            captured.update(run=run, plan=plan, source=source, path=path)
        return original(run, plan, source, path)

    plan_run.Run.object = spy  # type: ignore[method-assign,assignment]
    answer = json.loads(await served.call(page))
    plan_run.Run.object = original  # type: ignore[method-assign]
    assert "errors" not in answer, answer
    assert len(answer["data"]["posts"]["edges"]) == 20, answer
    run, plan, source, path = (captured[k] for k in ("run", "plan", "source", "path"))
    run.budget = None  # the hand-written code keeps none
    profiles = run.executor.context_value.known_profiles
    by_plan = original(run, plan, source, path)
    by_hand = hand_written(source, profiles)
    assert by_plan == by_hand == answer["data"]["posts"], "the two completions differ"

    for _ in range(200):  # warm: caches filled
        await served.call(page)
        await served.call(one_field)
    figures = {
        "request, one field": await timed(through_app(one_field)),
        "request, page": await timed(through_app(page)),
        "plan, page": best_us(lambda: original(run, plan, source, path), options.rounds, 2000),
        "hand-written, page": best_us(lambda: hand_written(source, profiles), options.rounds, 2000),
    }
    print(f"CPU µs, best of {options.rounds} rounds, one process")
    for name, value in figures.items():
        print(f"{name:<20}{value:>8.1f}")
    saved = figures["plan, page"] - figures["hand-written, page"]
    page_us = figures["request, page"]
    print(
        f"a perfect compiler saves at most {saved:.0f} µs of the page request's "
        f"{page_us:.0f} ({100 * saved / page_us:.0f}%): the page request would cost "
        f"{page_us - saved:.0f} µs before HTTP"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=1000)
    options = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(measure(options))
    else:
        uvloop.run(measure(options))


if __name__ == "__main__":
    main()
