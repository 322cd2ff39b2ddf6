"""`gql-api serve`: uvicorn on uvloop and httptools, bounded against slow and greedy clients.

uvicorn bounds idle keep-alive connections (``timeout_keep_alive``) and, with
``limit_concurrency``, how many connections it serves; nothing bounds a client that
sends its request head a byte at a time, which holds a connection as long as it likes.
The bounded protocols close a connection whose request head is not complete within
``head_timeout`` seconds (from the connection's start, or from the previous answer), and
end a connection after ``max_requests`` answers. The body has its own timeout in the
endpoint (``GQL_API_BODY_TIMEOUT``), which also holds on Lambda and elsewhere.

httptools parses in C and uvloop runs the event loop in C: about 2.5 times the requests
a second of h11 on asyncio for the same app (bench/http_bench.py's ceiling). Without them
(a platform they do not build on) serve falls back to h11 and asyncio, with the same bounds.
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from gql_api.settings import Settings

if TYPE_CHECKING:
    _Protocol = H11Protocol  # what the bounds use of either protocol: the same names
else:
    _Protocol = object


class Bounded(_Protocol):
    """The bounds, over uvicorn's h11 or httptools protocol (placed before it)."""

    head_timeout = 10.0  # set by protocol_for
    max_requests = 1000

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_timer: asyncio.TimerHandle | None = None
        self._requests = 0
        self._last_cycle: object = None
        super().connection_made(transport)
        self._await_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._note_cycle()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._note_cycle()  # a pipelined request may have started
        if not self._in_flight():
            self._await_head()

    def handle_websocket_upgrade(self, *args: Any) -> Any:
        """The connection is a WebSocket's from now on: its own timeouts hold it."""
        self._cancel_head_timer()
        return super().handle_websocket_upgrade(*args)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _note_cycle(self) -> None:
        """A request whose head is complete has started: count it, stop its head timer."""
        if self.cycle is not None and self.cycle is not self._last_cycle:
            self._last_cycle = self.cycle
            self._requests += 1
            if self._requests >= self.max_requests:
                # Its answer says it closes the connection, and closes it.
                self.cycle.keep_alive = False
                if isinstance(self, H11Protocol):  # h11 adds the header only if asked to
                    self.headers.append((b"connection", b"close"))  # the scope's own list
        if self._in_flight():
            self._cancel_head_timer()

    def _in_flight(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _await_head(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._in_flight() and not self.transport.is_closing():
            if isinstance(self, H11Protocol):
                import h11

                if self.conn.our_state in (h11.IDLE, h11.DONE):
                    self.conn.send(h11.ConnectionClosed())
            self.transport.close()


def fast_stack() -> bool:
    """Whether httptools and uvloop are installed (they are dependencies where they build)."""
    return all(importlib.util.find_spec(name) is not None for name in ("httptools", "uvloop"))


def protocol_for(settings: Settings) -> type[Any]:
    """The protocol class with this server's bounds: over httptools, else h11."""
    if fast_stack():
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        base: type[Any] = HttpToolsProtocol
    else:
        base = H11Protocol
    bounds = {
        "head_timeout": settings.head_timeout,
        "max_requests": settings.keepalive_max_requests,
    }
    return type("ServedProtocol", (Bounded, base), bounds)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The stack and the bounds `gql-api serve` gives uvicorn."""
    return {
        "http": protocol_for(settings),
        "loop": "uvloop" if fast_stack() else "asyncio",
        "timeout_keep_alive": settings.keepalive_timeout,
        # Every connection, live ones (WebSocket, SSE) included: those have their own
        # limit within it (GQL_API_MAX_SUBSCRIPTION_CONNECTIONS).
        "limit_concurrency": settings.max_connections,
    }
