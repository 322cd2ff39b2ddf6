"""The client that drives a fuzzed connection: Session checks every message it
receives, play sends a sequence, probe checks the server still serves."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets

from tests.live_fuzz.frames import Frame, expand
from tests.live_fuzz.model import Expect, Model, expectation, nullable_object, record
from tests.live_fuzz.server import (
    CLOSE_CODES,
    DEADLINE,
    DOCUMENTED_CODES,
    FRESH,
    INIT_TIMEOUT,
    PROBE_POST,
    PROTOCOL,
    SERVER_TYPES,
    Server,
)

PING = Frame("message", {"type": "ping"})


class Closed(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Session:
    """One fuzzed connection: every message it receives is checked here."""

    ws: websockets.ClientConnection
    model: Model = field(default_factory=Model)
    log: list[str] = field(default_factory=list)
    seen_posts: dict[str, set[str]] = field(default_factory=dict)  # stream id: postIds
    expecting: Expect | None = None

    def fail(self, why: str) -> str:
        expected = "" if self.expecting is None else f"; expected {self.expecting}"
        return why + expected + "\n" + "\n".join(self.log[-30:])

    async def send(self, frame: Frame, allowed: frozenset[int] = frozenset()) -> None:
        wire = frame.wire()
        self.log.append(f"> {'(in 3 fragments) ' if frame.split else ''}{str(wire)[:300]}")
        third = len(wire) // 3
        try:
            if frame.split and third > 0:  # one message in three frames (RFC 6455 5.4)
                await self.ws.send([wire[:third], wire[third : 2 * third], wire[2 * third :]])
            else:
                await self.ws.send(wire)
        except websockets.ConnectionClosed as closed:
            raise self.closed(closed, allowed) from None

    async def receive_raw(self, allowed: frozenset[int] = frozenset()) -> str | bytes:
        try:
            async with asyncio.timeout(DEADLINE):
                raw = await self.ws.recv()
        except websockets.ConnectionClosed as closed:
            raise self.closed(closed, allowed) from None
        self.log.append(f"< {str(raw)[:300]}")
        if await pong_back(self.ws, raw):
            self.log.append("> pong (the answer to the server's ping)")
        return raw

    async def receive(self, allowed: frozenset[int] = frozenset()) -> dict[str, Any]:
        return self.check(await self.receive_raw(allowed))

    def closed(self, closed: websockets.ConnectionClosed, allowed: frozenset[int]) -> Closed:
        # Never a dropped connection (1006): the server always says why it closes.
        assert closed.rcvd is not None, self.fail("dropped by the server without a close frame")
        code = closed.rcvd.code
        self.log.append(f"< close {code} {closed.rcvd.reason!r}")
        assert code in CLOSE_CODES, self.fail(f"close code {code}: not one the README names")
        if not self.model.acked and time.monotonic() - self.model.opened > INIT_TIMEOUT - 1:
            allowed |= {4408}
        assert code in allowed, self.fail(f"closed with {code} {closed.rcvd.reason!r}")
        return Closed(code)

    def check(self, raw: str | bytes) -> dict[str, Any]:
        """A message the server sent: well-formed, about an operation it may speak of."""
        assert isinstance(raw, str), self.fail("the server sent a binary frame")
        message = json.loads(raw)
        assert isinstance(message, dict), self.fail("not a JSON object")
        kind = message.get("type")
        assert kind in SERVER_TYPES, self.fail(f"type {kind!r} is not the server's to send")
        if kind == "connection_ack":
            assert self.model.inited and not self.model.acked, self.fail("unasked connection_ack")
            assert set(message) <= {"type", "payload"}, self.fail("connection_ack's fields")
            self.model.acked = True
            return message
        if kind in ("ping", "pong"):
            assert nullable_object(message.get("payload")), self.fail(f"{kind}'s payload")
            return message
        operation_id = message.get("id")
        assert isinstance(operation_id, str) and operation_id, self.fail("no id")
        known = operation_id in self.model.streams or operation_id == self.model.pending
        late = operation_id in self.model.dropped  # completed by the client: in flight
        assert known or late, self.fail(f"got {kind} for {operation_id[:40]!r}")
        if kind == "next":
            self.check_result(message.get("payload"), operation_id)
        elif kind == "error":
            check_errors(message.get("payload"), self.fail("error's payload"))
            assert set(message) == {"id", "type", "payload"}, self.fail("error's fields")
        else:
            assert set(message) == {"id", "type"}, self.fail("complete's fields")
        if kind != "next" and known:
            assert operation_id not in self.model.streams, self.fail(
                f"a valid subscription ended by the server ({kind})"
            )
            self.model.ended.add(operation_id)
            self.model.pending = None
        return message

    def check_result(self, payload: Any, operation_id: str) -> None:
        assert isinstance(payload, dict) and payload, self.fail("next's payload: no object")
        assert set(payload) <= {"data", "errors", "extensions"}, self.fail(
            "next's payload: no execution result"
        )
        if "errors" in payload:
            check_errors(payload["errors"], self.fail("next's errors"))
        if operation_id in self.model.streams:
            assert "errors" not in payload, self.fail("an event with errors")
            event = next(iter(payload["data"].values()))
            assert event["kind"] in ("CREATED", "UPDATED", "DELETED"), self.fail("its kind")
            assert self.model.streams[operation_id], self.fail("an event its filter excludes")
            self.seen_posts.setdefault(operation_id, set()).add(event["postId"])

    async def react(self, expect: Expect) -> None:
        """Read until ``expect`` is met (``Closed`` when the server closed as allowed)."""
        ended_before = set(self.model.ended)
        reused = expect.op_id in self.model.dropped
        if expect.op_id is not None:
            self.model.pending = expect.op_id
            self.model.ended.discard(expect.op_id)
            self.model.dropped.discard(expect.op_id)
        self.expecting = expect
        try:
            async with asyncio.timeout(DEADLINE):
                await self._react(expect, ended_before, reused)
        except TimeoutError:
            raise AssertionError(self.fail(f"no reaction within {DEADLINE} s")) from None
        finally:
            self.expecting = None

    async def _react(self, expect: Expect, ended_before: set[str], reused: bool) -> None:
        if expect.reply is None:
            # A close is due (a ping was sent after the frame): whatever the server says
            # before its pong (in whichever order), the pong says it went on.
            said: list[str] = []
            while True:
                raw = await self.receive_raw(expect.closes)
                message = json.loads(raw)
                if message.get("type") == "pong":
                    raise AssertionError(self.fail(f"not closed: the server went on {said}"))
                if message.get("type") != "ping":
                    said.append(str(message.get("type")))
        while True:
            message = await self.receive(expect.closes)
            kind, operation_id = message["type"], message.get("id")
            if kind == expect.reply == "connection_ack" or kind == expect.reply == "pong":
                return
            if kind == "ping" or (kind == "next" and operation_id in self.model.streams):
                continue  # the server's keep-alive; events of live subscriptions
            if operation_id is not None and operation_id == expect.op_id:
                if (
                    reused
                    and kind == "next"
                    and "postEvents" in (message["payload"].get("data") or {})
                ):
                    continue  # a late event of the subscription the id was used for
                if kind == "error":
                    codes = {e["extensions"]["code"] for e in message["payload"]}
                    assert codes <= expect.codes, self.fail(f"error with codes {codes}")
                    return
                assert expect.reply == "result", self.fail(f"got {kind}")
                if kind == "complete":
                    return
                continue
            if operation_id in self.model.dropped:
                continue
            assert operation_id not in ended_before, self.fail("a message after the end")
            raise AssertionError(self.fail(f"got {kind}"))


async def pong_back(ws: websockets.ClientConnection, raw: str | bytes) -> bool:
    """Answer a ping of the server's as graphql-ws's client does: a pong with its payload
    (a send to a connection the server closed meanwhile is dropped: its close comes next)."""
    try:
        message = json.loads(raw)
    except ValueError:
        return False
    if not isinstance(message, dict) or message.get("type") != "ping":
        return False
    payload = message.get("payload")
    pong = {"type": "pong", **({"payload": payload} if isinstance(payload, dict) else {})}
    with contextlib.suppress(websockets.ConnectionClosed):
        await ws.send(json.dumps(pong))
    return True


def check_errors(errors: Any, context: str) -> None:
    """GraphQL errors as the contract has them: each with a message and a documented code."""
    assert isinstance(errors, list) and errors, context
    for error in errors:
        assert isinstance(error, dict) and isinstance(error.get("message"), str), context
        code = (error.get("extensions") or {}).get("code")
        assert code in DOCUMENTED_CODES, f"error code {code!r}: {context}"
        assert "Traceback" not in error["message"], context


async def connect(server: Server) -> websockets.ClientConnection:
    return await websockets.connect(
        server.ws_url,
        subprotocols=[PROTOCOL],
        max_size=None,
        open_timeout=DEADLINE,
        close_timeout=DEADLINE,
    )


async def play(server: Server, frames_: list[Frame]) -> None:
    """Send ``frames_``, each reaction checked (a ping after each frame that expects no
    answer: its pong says the frame was taken, or a close comes first); then the probe."""
    async with asyncio.timeout(60):
        session = Session(await connect(server))
        model = session.model
        try:
            for frame in frames_:
                if frame.kind == "close":
                    await client_close(session, frame.message)
                message = expand(frame.message) if frame.kind == "message" else None
                expect = expectation(server, frame, message, model)
                if isinstance(message, dict) and message.get("type") == "connection_init":
                    model.inited = True
                if frame.op == "cancelled" and expect.reply == "result":
                    # Completed at once: whatever of its answer was on its way is late.
                    assert isinstance(message, dict)
                    expect = Expect(expect.closes, "nothing")
                    model.dropped.add(message["id"])
                await session.send(frame, expect.closes)
                if frame.op == "cancelled" and isinstance(message, dict):
                    complete = {"id": message.get("id"), "type": "complete"}
                    await session.send(Frame("message", complete), expect.closes)
                if expect.reply in (None, "nothing"):
                    await session.send(PING, expect.closes)
                    taken = expect.reply == "nothing"
                    await session.react(
                        dataclasses.replace(expect, reply="pong" if taken else None)
                    )
                else:
                    await session.react(expect)
                record(model, frame, message, expect)
            await session.send(PING)
            await session.react(Expect(reply="pong"))
            await probe(server, session)
        except Closed:
            await probe(server, None)
        finally:
            await session.ws.close()


async def client_close(session: Session, code: int) -> None:
    """The client closes: the server answers with a close frame of its own."""
    session.log.append(f"> close {code}")
    await session.ws.close(code, "the client leaves")
    assert session.ws.close_code not in (None, 1006), session.fail("no close frame back")
    raise Closed(code)


async def fresh_subscription(server: Server) -> websockets.ClientConnection:
    ws = await connect(server)
    await ws.send(json.dumps({"type": "connection_init"}))
    async with asyncio.timeout(DEADLINE):
        assert json.loads(await ws.recv()) == {"type": "connection_ack"}
    await ws.send(json.dumps({"id": "fresh", "type": "subscribe", "payload": {"query": FRESH}}))
    return ws


async def watch(ws: websockets.ClientConnection, seen: set[str]) -> None:
    while True:
        raw = await ws.recv()
        await pong_back(ws, raw)
        message = json.loads(raw)
        if message["type"] == "next":
            seen.add(message["payload"]["data"]["postEvents"]["postId"])
        else:
            assert message["type"] == "ping", message


async def watch_session(session: Session) -> None:
    while True:
        raw = await session.ws.recv()
        session.log.append(f"< {str(raw)[:300]}")
        await pong_back(session.ws, raw)
        message = session.check(raw)
        assert message["type"] in ("ping", "next"), session.fail("unexpected")


async def probe(server: Server, session: Session | None) -> None:
    """The server still serves: /healthz answers, and a fresh subscription (and every
    live one of ``session`` its filter lets through) gets the event of a post created
    over HTTP. A subscription is not acknowledged: a post it missed is made again."""
    streams = {} if session is None else session.model.streams
    seen_posts = {} if session is None else session.seen_posts
    waiting = [operation_id for operation_id, matches in streams.items() if matches]
    async with httpx.AsyncClient(base_url=server.url, timeout=DEADLINE) as http:
        health = await http.get("/healthz")
        assert health.status_code == 200, health.text
        assert health.json()["status"] == "ok"
        fresh = await fresh_subscription(server)
        seen: set[str] = set()
        watchers = [asyncio.ensure_future(watch(fresh, seen))]
        if session is not None and waiting:
            watchers.append(asyncio.ensure_future(watch_session(session)))
        created: set[str] = set()

        def missing() -> list[str]:
            return [i for i in waiting if not seen_posts.get(i, set()) & created]

        try:
            for _ in range(5):
                answer = await http.post(
                    "/graphql",
                    json={"query": PROBE_POST},
                    headers={"authorization": f"Bearer {server.token}"},
                )
                created.add(answer.json()["data"]["createPost"]["id"])
                until = time.monotonic() + 1.0
                while time.monotonic() < until:
                    for watcher in watchers:
                        if watcher.done():
                            watcher.result()  # raises what it met
                            raise AssertionError("a watched connection ended")
                    if seen & created and not missing():
                        return
                    await asyncio.sleep(0.02)
            trail = "" if session is None else session.fail("")
            raise AssertionError(
                f"no event of {len(created)} posts: on a fresh subscription "
                f"{bool(seen & created)}, on {[i[:50] for i in missing()]} of the live ones" + trail
            )
        finally:
            for watcher in watchers:
                watcher.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            await fresh.close()
