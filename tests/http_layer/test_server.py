"""`gql-api serve` bounds slow and greedy clients: a request head or body sent a byte at a
time, idle keep-alive connections, requests per connection, connections at once. Raw
sockets against a live server with small bounds; a bound's default is its setting's."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gql_api.settings import Settings
from tests.helpers import DEV_SECRET, cli_env
from tests.servers import gql_api_server

BOUNDS = {
    "GQL_API_HEAD_TIMEOUT": "1",
    "GQL_API_BODY_TIMEOUT": "1",
    "GQL_API_KEEPALIVE_TIMEOUT": "1",
    "GQL_API_KEEPALIVE_MAX_REQUESTS": "3",
    "GQL_API_MAX_CONNECTIONS": "6",
}
BODY = json.dumps({"query": "{ limits { maxTags } }"}).encode()
REQUEST = (
    b"POST /graphql HTTP/1.1\r\nHost: t\r\ncontent-type: application/json\r\n"
    b"content-length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    folder: Path = tmp_path_factory.mktemp("slow")
    env = cli_env(
        GQL_API_STORE="memory",
        GQL_API_DEV_SECRET=DEV_SECRET,
        GQL_API_SQLITE_PATH=str(folder / "db.sqlite"),
        **BOUNDS,
    )
    with gql_api_server(env) as (url, _):
        host, port = url.removeprefix("http://").split(":")
        yield host, int(port)


def connect(server: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(server, timeout=10)
    sock.settimeout(10)
    return sock


def closed_within(sock: socket.socket, seconds: float, trickle: bytes = b"") -> float:
    """Seconds until the server closes ``sock`` (sending ``trickle`` a byte at a time,
    one every 0.2 s, meanwhile); fails after ``seconds``."""
    started = time.monotonic()
    for byte in trickle:
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - started
        sock.settimeout(0.2)
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - started
        except TimeoutError:
            pass
        except ConnectionResetError:
            return time.monotonic() - started
        assert time.monotonic() - started < seconds, "still open"
    sock.settimeout(seconds)
    while sock.recv(65536):
        pass
    return time.monotonic() - started


def answer(sock: socket.socket) -> bytes:
    """One response head and body (the body's length from its head)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head


def test_a_head_sent_a_byte_at_a_time_is_cut_off(server: tuple[str, int]) -> None:
    with connect(server) as sock:
        trickle = b"POST /graphql HTTP/1.1\r\nHost: t\r\n" + b"x-slow: " + b"a" * 200
        assert closed_within(sock, 5, trickle) < 3


def test_a_body_sent_a_byte_at_a_time_is_answered_408(server: tuple[str, int]) -> None:
    with connect(server) as sock:
        sock.sendall(REQUEST[: -len(BODY)] + BODY[:5])
        for byte in BODY[5:25]:  # 2 s of trickle: the server answers and closes midway
            time.sleep(0.1)
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
        head = answer(sock)
    assert head.startswith(b"HTTP/1.1 408")


def test_an_idle_connection_is_closed_after_the_keepalive_timeout(
    server: tuple[str, int],
) -> None:
    with connect(server) as sock:
        sock.sendall(REQUEST)
        assert answer(sock).startswith(b"HTTP/1.1 200")
        assert closed_within(sock, 5) < 3


def test_a_connection_serves_a_bounded_number_of_requests(server: tuple[str, int]) -> None:
    with connect(server) as sock:
        heads = []
        for _ in range(3):
            sock.sendall(REQUEST)
            heads.append(answer(sock).lower())
        assert [b"connection: close" in head for head in heads] == [False, False, True]
        assert closed_within(sock, 5) < 1


def test_connections_over_the_limit_are_answered_503(server: tuple[str, int]) -> None:
    held = [connect(server) for _ in range(6)]
    try:
        time.sleep(0.2)
        with connect(server) as extra:
            extra.sendall(REQUEST)
            assert answer(extra).startswith(b"HTTP/1.1 503")
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    with connect(server) as again:
        again.sendall(REQUEST)
        assert answer(again).startswith(b"HTTP/1.1 200")


def test_the_defaults_bound_every_client() -> None:
    defaults = Settings()
    assert (
        defaults.head_timeout,
        defaults.body_timeout,
        defaults.keepalive_timeout,
        defaults.keepalive_max_requests,
        defaults.max_connections,
    ) == (10.0, 30.0, 5, 1000, 1000)


def test_serve_runs_on_uvloop_and_httptools_with_its_bounds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from uvicorn.protocols.http.h11_impl import H11Protocol
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from gql_api.http import server

    settings = Settings(head_timeout=2, keepalive_max_requests=7)
    options = server.uvicorn_options(settings)
    assert options["loop"] == "uvloop"
    assert issubclass(options["http"], server.Bounded)
    assert issubclass(options["http"], HttpToolsProtocol)
    assert (options["http"].head_timeout, options["http"].max_requests) == (2, 7)
    # Where the C parts are missing: h11 on asyncio, with the same bounds.
    monkeypatch.setattr(server, "fast_stack", lambda: False)
    fallback = server.uvicorn_options(settings)
    assert fallback["loop"] == "asyncio"
    assert issubclass(fallback["http"], server.Bounded)
    assert issubclass(fallback["http"], H11Protocol)
