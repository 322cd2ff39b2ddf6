"""A real shared cache in front of `gql-api serve`: Debian's nginx with ``proxy_cache``,
configured as a CDN is (keyed on the URL, no rule about Authorization of its own), so
what keeps users apart is gql-api's own headers. Repeated anonymous GETs reach the
server once, a signed-in answer reaches nobody else, the feed is fresh within
``s-maxage`` of a write, and ``If-None-Match`` gets 304 through it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gql_api.auth.dev import mint_dev_token
from gql_api.settings import Settings
from tests import servers
from tests.helpers import DEV_SECRET, NO_RATE_LIMITS, cli_env, free_port

NGINX = Path(__file__).parent / "cdn" / "nginx" / "usr" / "sbin" / "nginx"
S_MAXAGE = 2  # seconds the cache may keep an answer (GQL_API_CACHE_S_MAXAGE)
GRAIN = 1.0  # nginx counts validity in whole seconds: an answer may live a second more
FEED = "{ posts(first: 5) { edges { node { content } } } }"
VIEWER = "{ viewer { userId } }"
CREATE = "mutation($c: String!) { createPost(input: {content: $c}) { id } }"
CONFIG = """
daemon off;
master_process off;  # one process, as the user running the tests (workers would drop to nobody)
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log {folder}/access.log;
  client_body_temp_path {folder}/body;
  proxy_temp_path {folder}/proxy;
  fastcgi_temp_path {folder}/fastcgi;
  uwsgi_temp_path {folder}/uwsgi;
  scgi_temp_path {folder}/scgi;
  proxy_cache_path {folder}/cache keys_zone=api:1m;
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass {upstream};
      proxy_cache api;
      proxy_cache_revalidate on;  # an expired answer is checked with If-None-Match
      add_header X-Cache $upstream_cache_status always;
    }}
  }}
}}
"""


@dataclass
class Cdn:
    url: str  # nginx
    origin_log: Path  # gql-api's log: one access line per request that reached it
    http: httpx.Client  # one connection kept alive: 100 requests well inside s-maxage

    def origin_requests(self) -> int:
        lines = self.origin_log.read_text().splitlines()
        return sum('"GET /graphql' in line or '"POST /graphql' in line for line in lines)


@pytest.fixture
def cdn(tmp_path: Path) -> Iterator[Cdn]:
    if not NGINX.exists():
        raise RuntimeError(f"nginx is not unpacked: run `make test` (it makes {NGINX})")
    env = cli_env(
        GQL_API_DEV_SECRET=DEV_SECRET,
        GQL_API_SQLITE_PATH=str(tmp_path / "gql-api.db"),
        GQL_API_CACHE_S_MAXAGE=str(S_MAXAGE),
        **NO_RATE_LIMITS,
    )
    origin_log = tmp_path / "origin.log"
    with servers.gql_api_server(env, origin_log) as (origin, _):
        port = free_port()
        folder = tmp_path / "nginx"
        folder.mkdir()
        config = folder / "nginx.conf"
        config.write_text(CONFIG.format(folder=folder, port=port, upstream=origin))
        command = [str(NGINX), "-c", str(config), "-p", str(folder)]
        url = f"http://127.0.0.1:{port}"
        with servers.running(command, f"{url}/healthz"), httpx.Client(timeout=10) as http:
            yield Cdn(url, origin_log, http)


def token(user: str) -> str:
    settings = Settings(dev_secret=DEV_SECRET, sqlite_path=Path("unused.db"))
    return mint_dev_token(settings, DEV_SECRET, user_id=user)


def get(cdn: Cdn, query: str, **headers: str) -> httpx.Response:
    return cdn.http.get(f"{cdn.url}/graphql", params={"query": query}, headers=headers)


def create(cdn: Cdn, content: str) -> None:
    body = {"query": CREATE, "variables": {"c": content}}
    headers = {"authorization": f"Bearer {token('alice')}"}
    answer = cdn.http.post(f"{cdn.url}/graphql", json=body, headers=headers)
    assert "errors" not in answer.json(), answer.json()


def test_repeated_anonymous_gets_reach_the_server_once(cdn: Cdn) -> None:
    create(cdn, "hello")
    before = cdn.origin_requests()
    answers = [get(cdn, FEED) for _ in range(100)]
    assert cdn.origin_requests() == before + 1
    assert [a.headers["x-cache"] for a in answers] == ["MISS"] + ["HIT"] * 99
    assert all(a.json() == answers[0].json() for a in answers)
    assert answers[0].json()["data"]["posts"]["edges"][0]["node"]["content"] == "hello"


def test_a_signed_in_answer_is_never_served_to_anyone_else(cdn: Cdn) -> None:
    anonymous = get(cdn, VIEWER)
    assert anonymous.json()["data"]["viewer"] is None
    for user in ("alice", "bob", "alice"):
        mine = get(cdn, VIEWER, authorization=f"Bearer {token(user)}")
        assert mine.json()["data"]["viewer"]["userId"] == user
        assert mine.headers["x-cache"] != "HIT"
    again = get(cdn, VIEWER)
    assert again.json()["data"]["viewer"] is None
    # A public page asked for with a token is not answered from the anonymous copy either.
    get(cdn, FEED)
    before = cdn.origin_requests()
    signed_in = get(cdn, FEED, authorization=f"Bearer {token('bob')}")
    assert signed_in.headers["x-cache"] != "HIT" and cdn.origin_requests() == before + 1
    # Nor is it kept: the same token again goes to the server again.
    signed_in_again = get(cdn, FEED, authorization=f"Bearer {token('bob')}")
    assert signed_in_again.headers["x-cache"] != "HIT" and cdn.origin_requests() == before + 2
    assert get(cdn, FEED).headers["x-cache"] == "HIT"  # and the anonymous copy stays


def test_after_a_write_the_feed_is_fresh_within_s_maxage(cdn: Cdn) -> None:
    create(cdn, "first")
    get(cdn, FEED)  # cached
    create(cdn, "second")
    written = time.monotonic()
    stale = get(cdn, FEED)
    assert stale.headers["x-cache"] == "HIT"  # a cache: the write is not seen at once
    assert stale.json()["data"]["posts"]["edges"][0]["node"]["content"] == "first"
    while True:
        newest = get(cdn, FEED).json()["data"]["posts"]["edges"][0]["node"]["content"]
        if newest == "second":
            break
        assert time.monotonic() - written < S_MAXAGE + GRAIN + 0.5, "stale past s-maxage"
        time.sleep(0.1)


def test_a_304_round_trip_through_the_cache(cdn: Cdn) -> None:
    create(cdn, "tagged")
    first = get(cdn, FEED)
    etag = first.headers["etag"]
    from_cache = get(cdn, FEED, **{"if-none-match": etag})
    assert from_cache.status_code == 304 and from_cache.content == b""
    time.sleep(S_MAXAGE + GRAIN + 0.2)  # expired: nginx asks gql-api with If-None-Match
    before = cdn.origin_requests()
    revalidated = get(cdn, FEED)
    assert revalidated.headers["x-cache"] == "REVALIDATED"
    assert cdn.origin_requests() == before + 1
    assert json.loads(revalidated.content) == first.json()
    assert get(cdn, FEED, **{"if-none-match": etag}).status_code == 304
