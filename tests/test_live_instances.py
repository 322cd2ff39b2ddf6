"""The live feed across instances, on every store, with the clients users have: two
`gql-api serve` processes on one database; a subscriber on instance A (the graphql-ws npm
client over WebSocket, graphql-sse over SSE) sees the posts created, edited and deleted
through instance B within 2 s, and only those its filter asks for."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gql_api.auth.dev import mint_dev_token
from gql_api.settings import Settings
from tests import servers
from tests.helpers import DEV_SECRET, run_cli
from tests.test_schemathesis import server_env

CLIENTS = Path(__file__).with_name("live_clients")
DELAY = 2.0  # what a write may take to reach a subscriber on another instance
EVENTS = (
    'subscription { postEvents(tag: "Live") { kind postId version post { content tags '
    "author { userId } } } }"
)


class Subscriber:
    """The npm client's subscription, read line by line in a thread."""

    def __init__(self, transport: str, url: str, token: str | None, count: int) -> None:
        if not (CLIENTS / "node_modules" / "graphql-ws").exists():
            raise RuntimeError("the live clients are not installed: run `make test`")
        endpoint = url.replace("http://", "ws://") if transport == "ws" else url
        command = ["node", str(CLIENTS / "subscribe.mjs"), transport, f"{endpoint}/graphql"]
        command += [EVENTS, token or "", str(count)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(json.loads(line))

    def next_event(self, timeout: float = DELAY) -> dict[str, Any]:
        while True:
            said = self.lines.get(timeout=timeout)
            if "next" in said:
                event: dict[str, Any] = said["next"]["data"]["postEvents"]
                return event
            assert "error" not in said and "closed" not in said, said

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture(params=["sqlite", "dynamodb", "firestore", "cosmos"])
def two_instances(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, str, dict[str, str]]]:
    env = server_env(request.param, tmp_path, request)
    provision = run_cli(["provision"], env)
    assert provision.returncode == 0, provision.stdout + provision.stderr
    with servers.gql_api_server(env) as (a, _), servers.gql_api_server(env) as (b, _):
        yield a, b, env


def write(url: str, token: str, query: str) -> dict[str, Any]:
    response = httpx.post(
        f"{url}/graphql",
        json={"query": query},
        headers={"authorization": f"Bearer {token}"},
        timeout=10,
    )
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


def create(url: str, token: str, content: str, tags: list[str]) -> str:
    fields = f"content: {json.dumps(content)}, tags: {json.dumps(tags)}"
    query = f"mutation {{ createPost(input: {{{fields}}}) {{ id }} }}"
    post_id: str = write(url, token, query)["createPost"]["id"]
    return post_id


def live_now(subscriber: Subscriber, url: str, token: str) -> None:
    """Write warm-up posts until the first reaches the subscriber: from then on, it is
    subscribed (a client says nothing of when the server has registered it)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        create(url, token, "warm-up", ["live"])
        try:
            event = subscriber.next_event(timeout=1.0)
        except queue.Empty:
            continue
        assert event["post"]["content"] == "warm-up"
        while True:  # the later warm-ups, if any, before what the test writes
            try:
                subscriber.next_event(timeout=DELAY)
            except queue.Empty:
                return
    raise AssertionError("the subscription never saw a write")


@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_a_subscriber_on_one_instance_sees_the_writes_of_another(
    two_instances: tuple[str, str, dict[str, str]], transport: str, tmp_path: Path
) -> None:
    a, b, env = two_instances
    settings = Settings(dev_secret=env["GQL_API_DEV_SECRET"], sqlite_path=tmp_path / "x.db")
    token = mint_dev_token(settings, DEV_SECRET, user_id="alice")
    subscriber = Subscriber(transport, a, token, count=1000)
    try:
        live_now(subscriber, b, token)
        create(b, token, "not for this filter", ["elsewhere"])
        post_id = create(b, token, "hello", ["LIVE", "news"])
        started = time.monotonic()
        created = subscriber.next_event()
        assert time.monotonic() - started < DELAY
        assert created == {
            "kind": "CREATED",
            "postId": post_id,
            "version": 1,
            "post": {"content": "hello", "tags": ["live", "news"], "author": {"userId": "alice"}},
        }
        edit = f'mutation {{ updatePost(id: "{post_id}", input: {{content: "edited"}}) {{ id }} }}'
        write(b, token, edit)
        updated = subscriber.next_event()
        assert (updated["kind"], updated["version"], updated["post"]["content"]) == (
            "UPDATED",
            2,
            "edited",
        )
        write(b, token, f'mutation {{ deletePost(id: "{post_id}") {{ id }} }}')
        deleted = subscriber.next_event()
        assert deleted == {"kind": "DELETED", "postId": post_id, "version": 2, "post": None}
        with pytest.raises(queue.Empty):  # the unmatched post never came
            subscriber.next_event(timeout=0.5)
    finally:
        subscriber.stop()
