"""What the protocol (graphql-transport-ws) and the README say the server does: the
client's model of its connection, and the reaction each frame must bring."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from tests.live_fuzz.frames import Frame, has_surrogate
from tests.live_fuzz.server import DOCUMENTED_CODES, MAX_SUBSCRIPTIONS, Server


@dataclass(frozen=True)
class Expect:
    """A frame's reaction: one of ``closes``, or ``reply``: ``connection_ack``, ``pong``, ``result``
    (next and complete, or an error, for ``op_id``), ``error`` (an error for it with one of
    ``codes``) or ``nothing`` (taken without a word). No reply: a close is due."""

    closes: frozenset[int] = frozenset()
    reply: str | None = None
    op_id: str | None = None
    codes: frozenset[str] = DOCUMENTED_CODES

    def __str__(self) -> str:
        said = {
            None: [],
            "connection_ack": ["connection_ack"],
            "pong": ["pong"],
            "nothing": ["nothing (then the pong of the next ping)"],
            "result": [f"next and complete, or error, for {str(self.op_id)[:40]!r}"],
            "error": [f"error {set(self.codes)} for {str(self.op_id)[:40]!r}"],
        }[self.reply]
        if self.closes:
            said.append(f"a close with {' or '.join(map(str, sorted(self.closes)))}")
        return " or ".join(said)


def closes(*codes: int) -> frozenset[int]:
    return frozenset(codes)


def nullable_object(value: Any) -> bool:
    return value is None or isinstance(value, dict)


def well_formed_payload(payload: Any) -> bool:
    """A subscribe payload as the protocol has it (operationName, query, variables,
    extensions)."""
    return (
        isinstance(payload, dict)
        and isinstance(payload.get("query"), str)
        and nullable_object(payload.get("variables"))
        and nullable_object(payload.get("extensions"))
        and (payload.get("operationName") is None or isinstance(payload["operationName"], str))
    )


def authorization(payload: dict[str, Any]) -> tuple[str | None, bool]:
    """The Authorization value of a connection_init payload (the README: also under
    ``headers``), and whether some Authorization field held anything but text."""
    odd = False
    for holder in (payload, payload.get("headers")):
        if isinstance(holder, dict):
            for name in ("Authorization", "authorization"):
                if name in holder:
                    if isinstance(holder[name], str):
                        return holder[name], odd
                    odd = True
        elif holder is not None:
            odd = True
    return None, odd


def signs_in(server: Server, value: str) -> bool:
    scheme, _, token = value.strip().partition(" ")
    return scheme.lower() == "bearer" and token.strip() in (server.token, server.admin)


@dataclass
class Model:
    """What the client knows of its connection."""

    inited: bool = False
    acked: bool = False
    streams: dict[str, bool] = field(default_factory=dict)  # live subscriptions: matches
    ended: set[str] = field(default_factory=set)  # ids the server ended: no more for them
    dropped: set[str] = field(default_factory=set)  # ids the client completed
    pending: str | None = None  # the operation whose answer is awaited
    opened: float = field(default_factory=time.monotonic)


def expectation(server: Server, frame: Frame, message: Any, model: Model) -> Expect:
    """What graphql-transport-ws (and the README, for signing in) says follows ``frame``."""
    if frame.kind != "message" or not isinstance(message, dict):
        return Expect(closes(4400))  # not JSON, no object, a binary frame
    kind = message.get("type")
    # A lone surrogate (JSON's \\ud800) is no text: refusing such a message is fine too.
    odd = closes(4400) if has_surrogate(message) else closes()
    payload = message.get("payload")
    if kind == "connection_init":
        if model.acked:
            return Expect(closes(4429) | (odd if nullable_object(payload) else closes(4400)))
        if not nullable_object(payload):
            return Expect(closes(4400))
        value, strange = authorization(payload or {})
        if value is None:  # anonymous (a token of another type may be refused)
            return Expect(odd | (closes(4403) if strange else closes()), "connection_ack")
        if signs_in(server, value):
            return Expect(odd, "connection_ack")
        return Expect(closes(4403) | odd)  # the README: a bad token closes with 4403
    if kind in ("ping", "pong"):
        if not nullable_object(payload):
            return Expect(closes(4400))
        return Expect(odd, "pong" if kind == "ping" else "nothing")
    operation_id = message.get("id")
    good_id = isinstance(operation_id, str) and operation_id != ""
    if kind == "complete":
        if not good_id:
            return Expect(closes(4400))
        return Expect(odd | (closes() if model.acked else closes(4401)), "nothing")
    if kind != "subscribe":
        return Expect(closes(4400))  # unknown, or the server's own (next, error, ack)
    good = good_id and well_formed_payload(payload)
    if not model.acked:
        return Expect(closes(4401) | (odd if good else closes(4400)))
    if not good_id:
        return Expect(closes(4400))
    assert isinstance(operation_id, str)
    if operation_id in model.streams:
        return Expect(closes(4409) | (odd if good else closes(4400)))
    if not good:
        return Expect(closes(4400) | odd)
    if len(model.streams) >= MAX_SUBSCRIPTIONS:
        many = frozenset({"TOO_MANY_SUBSCRIPTIONS"})
        return Expect(odd, "error", operation_id, many)
    if frame.op == "stream":
        return Expect(odd, "nothing")
    return Expect(odd, "result", operation_id)


def record(model: Model, frame: Frame, message: Any, expect: Expect) -> None:
    """The model after a frame the server took without closing."""
    if not isinstance(message, dict) or not isinstance(message.get("id"), str):
        return
    operation_id = message["id"]
    if message.get("type") == "complete":
        if model.streams.pop(operation_id, None) is not None:
            model.dropped.add(operation_id)
    elif message.get("type") == "subscribe" and frame.op == "stream" and expect.reply == "nothing":
        model.streams[operation_id] = frame.matches
        model.dropped.discard(operation_id)
        model.ended.discard(operation_id)
