"""An outside attack on the live transports of a real `gql-api serve`, with tools this
project did not write.

1. hypothesis draws sequences of graphql-transport-ws messages, sent by the `websockets`
   client: the protocol's own (connection_init with and without a token, with bad
   tokens; subscribe with generated ids, documents and variables; complete, ping, pong),
   and malformed ones (not JSON, binary frames, fields of the wrong type, huge and
   duplicate ids, unknown types, subscribe before init, a second init, fragmented
   frames, a client's close). A model of the protocol
   (https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md) and of the README
   says what each one must bring: only the close codes the README names, always with a
   close frame; well-formed messages, about running operations only; every error with a
   documented ``extensions.code``. After each example /healthz answers and a fresh
   subscription (and every live one of the example) gets the event of a post created
   over HTTP. ``KNOWN`` holds the defects found, each as its least sequence.
2. hypothesis-graphql draws subscription documents from the schema, subscribed over
   WebSocket and sent as GraphQL over SSE: nothing 5xx, every error coded, never
   INTERNAL_SERVER_ERROR.
3. The server's log holds no traceback.

Each reaction is awaited at most ``DEADLINE`` seconds, so nothing hangs; the examples
are derandomized (the same every run). About 30 s when the server passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import graphql
import httpx
import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, queries

from gql_api.auth.dev import mint_dev_token
from gql_api.schema.root import sdl
from gql_api.settings import Settings
from tests.helpers import DEV_SECRET, NO_RATE_LIMITS, cli_env
from tests.servers import gql_api_server

PROTOCOL = websockets.Subprotocol("graphql-transport-ws")
DEADLINE = 3.0  # seconds any one reaction of the server may take (they take milliseconds)
MAX_SUBSCRIPTIONS = 3  # GQL_API_MAX_SUBSCRIPTIONS_PER_CONNECTION, low: the fuzz reaches it
INIT_TIMEOUT = 3  # GQL_API_SUBSCRIPTION_INIT_TIMEOUT
OVERSIZED = 1024 * 1024 + 1  # characters: over the server's 1 MiB a message

# The README's codes (docs/contract.md's table) a live operation may be refused with;
# never INTERNAL_SERVER_ERROR, and the local SQLite store is never unavailable.
DOCUMENTED_CODES = frozenset(
    {
        "BAD_USER_INPUT",
        "UNAUTHENTICATED",
        "FORBIDDEN",
        "NOT_FOUND",
        "CONFLICT",
        "BAD_REQUEST",
        "GRAPHQL_PARSE_FAILED",
        "GRAPHQL_VALIDATION_FAILED",
        "QUERY_TOO_DEEP",
        "TOO_MANY_ALIASES",
        "TOO_MANY_TOKENS",
        "TOO_MANY_DIRECTIVES",
        "QUERY_TOO_COMPLEX",
        "VALIDATION_TOO_COMPLEX",
        "RESPONSE_TOO_LARGE",
        "PERSISTED_QUERY_NOT_FOUND",
        "METHOD_NOT_ALLOWED",
        "NOT_ACCEPTABLE",
        "PAYLOAD_TOO_LARGE",
        "RATE_LIMITED",
        "TOO_MANY_SUBSCRIPTIONS",
        "TOO_MANY_CONNECTIONS",
    }
)
# What a server may send (graphql-transport-ws), and the close codes the README names.
SERVER_TYPES = frozenset({"connection_ack", "ping", "pong", "next", "error", "complete"})
CLOSE_CODES = frozenset({1000, 1001, 1012, 1013, 4400, 4401, 4403, 4406, 4408, 4409, 4429})

PROBE_POST = 'mutation { createPost(input: {content: "probe", tags: ["fuzz"]}) { id } }'
FRESH = "subscription { postEvents { kind postId } }"


# -- the server -------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    url: str
    log: Path
    token: str  # user "fuzzer"
    admin: str  # user "boss", an admin
    expired: str
    foreign: str  # signed with another secret
    tampered: str

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/graphql"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("live-fuzz")
    log = folder / "server.log"
    env = cli_env(
        GQL_API_DEV_SECRET=DEV_SECRET,
        GQL_API_SQLITE_PATH=str(folder / "gql-api.db"),
        GQL_API_MAX_SUBSCRIPTIONS_PER_CONNECTION=str(MAX_SUBSCRIPTIONS),
        GQL_API_SUBSCRIPTION_INIT_TIMEOUT=str(INIT_TIMEOUT),
        GQL_API_SUBSCRIPTION_KEEPALIVE="2",  # the server's pings come in the sequences too
        **NO_RATE_LIMITS,
    )
    settings_ = Settings(dev_secret=DEV_SECRET)
    token = mint_dev_token(settings_, DEV_SECRET, user_id="fuzzer")
    other = "another-secret-0123456789abcdef-012345"
    header, payload, signature = token.split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    with gql_api_server(env, log_path=log) as (url, _):
        yield Server(
            url=url,
            log=log,
            token=token,
            admin=mint_dev_token(settings_, DEV_SECRET, user_id="boss", admin=True),
            expired=mint_dev_token(settings_, DEV_SECRET, user_id="fuzzer", ttl_seconds=-3600),
            foreign=mint_dev_token(Settings(dev_secret=other), other, user_id="fuzzer"),
            tampered=".".join([header, payload, flipped]),
        )


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


def log_size(server: Server) -> int:
    return server.log.stat().st_size


def assert_no_traceback(server: Server, since: int = 0) -> None:
    with server.log.open("rb") as log:
        log.seek(since)
        said = log.read().decode(errors="replace")
    tracebacks = [line[:3000] for line in said.splitlines() if "Traceback" in line]
    assert not tracebacks, "\n".join(tracebacks)


# -- what the client sends --------------------------------------------------------------


class Missing:
    """A field left out of a message."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING = Missing()


@dataclass(frozen=True)
class Long:
    """A long string, short in hypothesis's reports: ``before``, ``char`` ``n`` times,
    ``closing`` ``n`` times, ``after``."""

    char: str
    n: int
    before: str = ""
    after: str = ""
    closing: str = ""

    def __str__(self) -> str:
        return self.before + self.char * self.n + self.closing * self.n + self.after


def expand(value: Any) -> Any:
    """The message as sent: Long strings spelled out, MISSING fields left out."""
    if isinstance(value, Long):
        return str(value)
    if isinstance(value, dict):
        return {k: expand(v) for k, v in value.items() if not isinstance(v, Missing)}
    if isinstance(value, list):
        return [expand(v) for v in value]
    return value


@dataclass(frozen=True)
class Frame:
    """One frame the client sends: ``kind`` is ``message`` (a JSON value, sent as text),
    ``text`` or ``binary`` (sent as they are), or ``close`` (the client closes with the
    code ``message``). For a subscribe, ``op`` says what its payload is: ``stream`` (a
    valid subscription, ``matches`` the probe's post or not), ``finite`` (a query, a
    mutation or an operation refused: it ends with next and complete, or error),
    ``cancelled`` (a finite one completed by the client at once) or ``malformed`` (not
    the protocol's payload). ``split``: sent as three fragments."""

    kind: str
    message: Any
    op: str = ""
    matches: bool = False
    split: bool = False

    def wire(self) -> str | bytes:
        if self.kind == "binary":
            assert isinstance(self.message, bytes)
            return self.message
        if self.kind == "text":
            text = expand(self.message)
            assert isinstance(text, str)
            return text
        value = expand(self.message)
        # Raw UTF-8, as browsers send it; a lone surrogate can only go escaped (\\ud800).
        return json.dumps(value, ensure_ascii=has_surrogate(value))


def has_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, dict):
        return any(has_surrogate(k) or has_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_surrogate(v) for v in value)
    return False


CHARACTERS = st.one_of(st.characters(), st.sampled_from(["\ud800", "\udfff", "\u65e5", "\x00"]))
TEXT = st.text(CHARACTERS, max_size=20)
JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**30]),  # past 64 bits, as JSON allows
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
OBJECTS = st.dictionaries(TEXT, JSON_VALUES, max_size=4)
NOT_OBJECTS = st.one_of(
    st.sampled_from(["x", "", 0, 5, -1.5, True, False, [], [{}], ["x"]]),
    st.lists(JSON_VALUES, max_size=2),
)
OPTIONAL_PAYLOADS = st.one_of(st.just(MISSING), st.none(), OBJECTS)

IDS = st.one_of(
    st.sampled_from(["1", "2", "a", "x" * 100, "\u65e5" * 40]),
    st.sampled_from([Long("i", 100_000), Long("\u00e9", 200)]),
    st.text(CHARACTERS, min_size=1, max_size=30),
)
BAD_IDS = st.sampled_from([MISSING, None, "", 0, 1, 1.5, True, [], {}, ["1"], {"id": "1"}])


def header_values(server: Server) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(
            [
                f"Bearer {server.token}",
                f"bearer  {server.token} ",
                f"Bearer {server.admin}",
                f"Bearer {server.expired}",
                f"Bearer {server.foreign}",
                f"Bearer {server.tampered}",
                f"Bearer {server.token}x",
                f"Basic {server.token}",
                "Bearer",
                "Bearer ",
                "",
                "Bearer a.b.c",
                "Bearer \ud800",
                Long("x", 20_000, before="Bearer "),
            ]
        ),
        TEXT.map(lambda text: f"Bearer {text}"),
        TEXT,
        st.sampled_from([5, None, True, [], {"x": 1}, [f"Bearer {server.token}"]]),
    )


def init_frames(server: Server) -> st.SearchStrategy[Frame]:
    value = header_values(server)
    payloads = st.one_of(
        OPTIONAL_PAYLOADS,
        value.map(lambda v: {"Authorization": v}),
        value.map(lambda v: {"authorization": v}),
        value.map(lambda v: {"headers": {"Authorization": v}}),
        value.map(lambda v: {"headers": v}),
        st.tuples(value, value).map(
            lambda p: {"Authorization": p[0], "headers": {"authorization": p[1]}}
        ),
        NOT_OBJECTS,
    )
    return payloads.map(lambda p: Frame("message", {"type": "connection_init", "payload": p}))


PING_FRAMES = st.one_of(OPTIONAL_PAYLOADS, NOT_OBJECTS).map(
    lambda p: Frame("message", {"type": "ping", "payload": p})
)
PONG_FRAMES = st.one_of(OPTIONAL_PAYLOADS, NOT_OBJECTS).map(
    lambda p: Frame("message", {"type": "pong", "payload": p})
)
COMPLETE_FRAMES = st.one_of(IDS, BAD_IDS).map(
    lambda i: Frame("message", {"id": i, "type": "complete"})
)

# (payload, whether the probe's post, by "fuzzer" and tagged "fuzz", is one of its events)
STREAMS: list[tuple[dict[str, Any], bool]] = [
    ({"query": FRESH}, True),
    (
        {
            "query": "subscription Live($t: String) { postEvents(tag: $t) { kind postId "
            "version post { id content tags createdAt author { userId nickname } } } }",
            "variables": {"t": " FUZZ "},
            "operationName": "Live",
        },
        True,
    ),
    (
        {
            "query": 'subscription { postEvents(authorId: "fuzzer") { postId kind '
            "post { imageUrls updatedAt isMarkdown } } }",
            "variables": None,
            "extensions": {},
            "operationName": None,
        },
        True,
    ),
    ({"query": "subscription { e: postEvents { kind k: kind postId __typename } }"}, True),
    ({"query": 'subscription { postEvents(tag: "nomatch") { kind postId } }'}, False),
]
ALIASES = " ".join(f"a{i}: limits {{ maxTags }}" for i in range(31))
FINITE: list[dict[str, Any]] = [
    {"query": "{ limits { maxTags maxPageSize } }"},
    {
        "query": "query Feed($n: Int) { posts(first: $n) { nodes { id content } } }",
        "variables": {"n": 2},
        "operationName": "Feed",
    },
    {"query": "{ posts(first: 1000) { nodes { id } } }"},
    {"query": '{ post(id: "../x") { id } viewer { userId } }'},
    # Mutations that store nothing: no event comes but the probe's.
    {"query": 'mutation { createPost(input: {content: " ", tags: ["fuzz"]}) { id } }'},
    # One that does (with a token): its event reaches the live subscriptions meanwhile.
    {"query": 'mutation { createPost(input: {content: "over ws", tags: ["fuzz"]}) { id } }'},
    {"query": 'mutation { updatePost(id: "0", input: {content: "x"}) { id } }'},
    {"query": "subscription {"},
    {"query": "subscription { nope }"},
    {"query": "subscription { a: postEvents { kind } b: postEvents { kind } }"},
    {"query": "subscription { postEvents @skip(if: true) { kind } }"},
    {"query": "subscription { __typename }"},
    {"query": 'subscription { postEvents(tag: "a b") { kind } }'},
    {"query": 'subscription { postEvents(authorId: "") { kind } }'},
    {"query": "subscription($t: String) { postEvents(tag: $t) { kind } }", "variables": {"t": 5}},
    {"query": "subscription($t: String!) { postEvents(tag: $t) { kind } }"},
    {"query": "subscription S { postEvents { kind } }", "operationName": "T"},
    {"query": "   "},
    {"query": ""},
    {"query": "{ limits { maxTags } }", "operationName": ""},
    {
        "query": "{ limits { maxTags } }",
        "extensions": {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}},
    },
    {"query": "{ " + ALIASES + " }"},
    {"query": Long("limits { maxTags } ", 2000, "{ ", "}")},
]
GOOD_QUERY = "{ limits { maxTags } }"
MALFORMED: list[Any] = [
    MISSING,
    None,
    "x",
    5,
    [],
    [{"query": GOOD_QUERY}],
    {},
    {"variables": {}},
    {"query": 5},
    {"query": None},
    {"query": [GOOD_QUERY]},
    {"query": {"query": GOOD_QUERY}},
    {"query": GOOD_QUERY, "variables": [1]},
    {"query": GOOD_QUERY, "variables": "x"},
    {"query": GOOD_QUERY, "operationName": 5},
    {"query": GOOD_QUERY, "operationName": {}},
    {"query": GOOD_QUERY, "extensions": "x"},
    {"query": GOOD_QUERY, "extensions": [1]},
    {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}},
]


def subscribe(operation_id: Any, payload: Any, op: str, matches: bool = False) -> Frame:
    message = {"id": operation_id, "type": "subscribe", "payload": payload}
    return Frame("message", message, op, matches)


STREAM_FRAMES = st.tuples(IDS, st.sampled_from(STREAMS)).map(
    lambda t: subscribe(t[0], t[1][0], "stream", t[1][1])
)
FINITE_FRAMES = st.tuples(
    IDS, st.sampled_from(FINITE), st.sampled_from(["finite", "cancelled"])
).map(lambda t: subscribe(t[0], t[1], t[2]))
CLOSE_FRAMES = st.sampled_from([1000, 1001, 3000, 4000, 4500]).map(
    lambda code: Frame("close", code)
)
MALFORMED_FRAMES = st.one_of(
    st.tuples(IDS, st.one_of(st.sampled_from(MALFORMED), NOT_OBJECTS)).map(
        lambda t: subscribe(t[0], t[1], "malformed")
    ),
    st.tuples(BAD_IDS, st.sampled_from(FINITE[:2])).map(
        lambda t: subscribe(t[0], t[1], "malformed")
    ),
)
RAW_FRAMES = st.one_of(
    st.sampled_from(
        [
            "",
            "not json",
            "{",
            "[]",
            "null",
            "5",
            '"ping"',
            "{}",
            '{"id": "1"}',
            '{"type": 5}',
            '{"type": null}',
            '{"type": ["ping"]}',
            '{"type": "ping"}{"type": "ping"}',
            Long("[", 100_000, closing="]"),  # valid JSON, nested past any recursion
            '{"type": "ping", "payload": NaN}x',
        ]
    ).map(lambda text: Frame("text", text)),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=30).map(
        lambda text: Frame("text", text)
    ),
    st.binary(max_size=40).map(lambda raw: Frame("binary", raw)),
    st.sampled_from([b'{"type": "connection_init"}', b'{"type": "ping"}']).map(
        lambda raw: Frame("binary", raw)
    ),
    st.one_of(
        st.sampled_from(
            ["next", "error", "connection_ack", "Ping", "PING", " ping", "subscribe ", "start"]
        ),
        st.sampled_from([Long("\u65e5", 40), Long("t", 300)]),
        TEXT,
    ).map(lambda kind: Frame("message", {"type": kind, "id": "1", "payload": {}})),
    st.just(Frame("text", Long("x", OVERSIZED, '{"type": "ping", "payload": {"x": "', '"}}'))),
)


def frames(server: Server) -> st.SearchStrategy[Frame]:
    # Weighed towards the protocol's own messages, a second connection_init (which ends
    # the connection) the least.
    kinds = [
        *[STREAM_FRAMES] * 4,
        *[FINITE_FRAMES] * 4,
        *[COMPLETE_FRAMES] * 3,
        *[PING_FRAMES] * 2,
        PONG_FRAMES,
        MALFORMED_FRAMES,
        RAW_FRAMES,
        init_frames(server),
        CLOSE_FRAMES,
    ]
    split = st.sampled_from([False, False, False, True])
    return st.tuples(st.sampled_from(kinds).flatmap(lambda kind: kind), split).map(
        lambda t: dataclasses.replace(t[0], split=t[1]) if t[0].kind != "close" else t[0]
    )


def opening(server: Server, kind: str | None) -> list[Frame]:
    """The connection_init a sequence starts with (None: none)."""
    if kind is None:
        return []
    payload: dict[str, Any] = {}
    if kind != "anonymous":
        payload["Authorization"] = f"Bearer {server.token if kind == 'user' else server.admin}"
    return [Frame("message", {"type": "connection_init", "payload": payload})]


# -- what the protocol says the server does ---------------------------------------------


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


# -- the client -------------------------------------------------------------------------

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


# -- 1. sequences of graphql-transport-ws messages --------------------------------------

SEQUENCES = 60


def sequences(server: Server) -> st.SearchStrategy[list[Frame]]:
    start = st.sampled_from(["user", "anonymous", "admin", None])
    return st.tuples(start, st.lists(frames(server), max_size=8)).map(
        lambda t: opening(server, t[0]) + t[1]
    )


def test_generated_message_sequences(server: Server) -> None:
    since = log_size(server)

    @fuzz_settings(SEQUENCES)
    @given(sequence=sequences(server))
    def run(sequence: list[Frame]) -> None:
        asyncio.run(play(server, sequence))

    run()
    assert_no_traceback(server, since)


def init(payload: Any = MISSING) -> Frame:
    return Frame("message", {"type": "connection_init", "payload": payload})


def stream(operation_id: Any) -> Frame:
    return subscribe(operation_id, {"query": FRESH}, "stream", True)


LIMITS = {"query": GOOD_QUERY}
# The defects the fuzz found, each as the least sequence that shows it (the fuzz itself
# reports the first it meets, shrunk): what the server should do is in each name.
KNOWN = {
    # A close reason is at most 123 bytes (RFC 6455 5.5): the server's "Subscriber for
    # <id> already exists" and "Invalid message type <type>" outgrow it, the close frame
    # cannot be sent, and the connection is dropped (the client sees 1006).
    "duplicate id of 100 characters: 4409": [init(), stream("x" * 100), stream("x" * 100)],
    "unknown type of 40 non-ASCII characters: 4400": [Frame("message", {"type": "\u65e5" * 40})],
    # A ping's payload is echoed in its pong by orjson, which refuses integers past 64
    # bits and lone surrogates: the ASGI app raises, uvicorn logs a traceback and drops
    # the connection without a close frame.
    "ping payload with an integer past 64 bits: pong": [
        Frame("message", {"type": "ping", "payload": {"n": 2**64}})
    ],
    "ping payload with a lone surrogate: pong or 4400": [
        Frame("message", {"type": "ping", "payload": {"s": "\ud800"}})
    ],
    # The same for an operation id: its answer's task dies ("Task exception was never
    # retrieved" in the log) and the client hears nothing of the operation.
    "subscribe id with a lone surrogate: answered or 4400": [
        init(),
        subscribe("\ud800", LIMITS, "finite"),
    ],
    # PyJWT encodes the token: UnicodeEncodeError, a traceback, a dropped connection.
    "token with a lone surrogate: 4403 or 4400": [init({"Authorization": "Bearer \ud800"})],
    # The protocol: a ping's or pong's payload is an object or null, a subscribe's an
    # object with a string query (variables and extensions objects, operationName a
    # string); any other message is invalid, "an immediate socket closure with 4400".
    # The server answers such a ping, ignores such a pong, and sends the subscribe an
    # error (BAD_REQUEST) instead.
    "ping payload that is no object: 4400": [Frame("message", {"type": "ping", "payload": "x"})],
    "pong payload that is no object: 4400": [Frame("message", {"type": "pong", "payload": 5})],
    "subscribe without a payload: 4400": [init(), subscribe("1", MISSING, "malformed")],
    "subscribe whose query is no string: 4400": [init(), subscribe("1", {"query": 5}, "malformed")],
    "subscribe whose variables are no object: 4400": [
        init(),
        subscribe("1", {"query": GOOD_QUERY, "variables": [1]}, "malformed"),
    ],
}


@pytest.mark.parametrize("name", list(KNOWN))
def test_known_sequences(server: Server, name: str) -> None:
    since = log_size(server)
    asyncio.run(play(server, KNOWN[name]))
    assert_no_traceback(server, since)


async def closed_with(ws: websockets.ClientConnection) -> int | None:
    """The code the server closes ``ws`` with (1006: dropped, without a close frame)."""
    async with asyncio.timeout(INIT_TIMEOUT + DEADLINE):
        await ws.wait_closed()
    return ws.close_code


def test_the_timeouts_and_the_subprotocol(server: Server) -> None:
    """No connection_init within GQL_API_SUBSCRIPTION_INIT_TIMEOUT: 4408; without the
    graphql-transport-ws subprotocol: 4406."""

    async def run() -> None:
        async with websockets.connect(server.ws_url, subprotocols=[PROTOCOL]) as ws:
            assert await closed_with(ws) == 4408
        async with websockets.connect(server.ws_url) as ws:
            assert await closed_with(ws) == 4406
        await probe(server, None)

    since = log_size(server)
    asyncio.run(run())
    assert_no_traceback(server, since)


# -- 2. subscription documents from the schema (hypothesis-graphql) ---------------------


def subscriptions(mode: Mode) -> st.SearchStrategy[str]:
    """Subscription operations of the schema. hypothesis-graphql 0.13 draws queries and
    mutations only: it draws them here from a schema whose query type is the
    Subscription type, printed as subscriptions."""
    schema = graphql.build_schema(sdl())
    assert schema.subscription_type is not None
    rooted = graphql.GraphQLSchema(query=schema.subscription_type)

    def as_subscription(document: graphql.DocumentNode) -> str:
        definitions = tuple(
            dataclasses.replace(d, operation=graphql.OperationType.SUBSCRIPTION)
            if isinstance(d, graphql.OperationDefinitionNode)
            else d
            for d in document.definitions
        )
        return graphql.print_ast(dataclasses.replace(document, definitions=definitions))

    return queries(rooted, print_ast=as_subscription, mode=mode)


DOCUMENTS = st.one_of(subscriptions(Mode.POSITIVE), subscriptions(Mode.NEGATIVE))
WS_EXAMPLES = 25
SSE_EXAMPLES = 150


async def subscribe_documents(server: Server, documents: list[str], signed_in: bool) -> None:
    """The documents subscribed at once on one connection: each is refused with a coded
    error, or runs (at most MAX_SUBSCRIPTIONS at once, then TOO_MANY_SUBSCRIPTIONS);
    nothing closes the connection, and no id is spoken of after its error."""
    async with asyncio.timeout(60):
        session = Session(await connect(server))
        try:
            session.model.inited = True
            await session.send(opening(server, "user" if signed_in else "anonymous")[0])
            await session.react(Expect(reply="connection_ack"))
            ids = [f"g{i}" for i in range(len(documents))]
            for operation_id, document in zip(ids, documents, strict=True):
                await session.send(subscribe(operation_id, {"query": document}, "finite"))
            refused: set[str] = set()
            quiet_until = time.monotonic() + 0.3  # errors come at once; 0.3 s without one
            while len(refused) < len(ids):
                try:
                    async with asyncio.timeout(max(0.0, quiet_until - time.monotonic())):
                        raw = await session.ws.recv()
                except TimeoutError:
                    break
                except websockets.ConnectionClosed as closed:
                    raise session.closed(closed, frozenset()) from None
                session.log.append(f"< {str(raw)[:300]}")
                if await pong_back(session.ws, raw):
                    continue
                message = json.loads(raw)
                operation_id = message.get("id")
                assert operation_id in ids and operation_id not in refused, session.fail("id")
                if message["type"] == "next":  # an event of a post made before: checked
                    session.model.streams[operation_id] = True
                    session.check(raw)
                    continue
                assert message["type"] == "error", session.fail("a subscription completed")
                session.model.pending = operation_id
                session.check(raw)
                refused.add(operation_id)
                quiet_until = time.monotonic() + 0.3
            running = len(ids) - len(refused)
            assert running <= MAX_SUBSCRIPTIONS, session.fail(f"{running} running at once")
            await session.send(PING)
            await session.react(Expect(reply="pong"))
            await probe(server, None)
        finally:
            await session.ws.close()


def test_generated_subscriptions_over_websocket(server: Server) -> None:
    since = log_size(server)

    @fuzz_settings(WS_EXAMPLES)
    @given(documents=st.lists(DOCUMENTS, min_size=1, max_size=6), signed_in=st.booleans())
    def run(documents: list[str], signed_in: bool) -> None:
        asyncio.run(subscribe_documents(server, documents, signed_in))

    run()
    assert_no_traceback(server, since)


async def sse_request(
    http: httpx.AsyncClient, document: str, method: str, token: str | None
) -> None:
    """A GraphQL-over-SSE request: a refusal is a coded JSON error under 500; a stream
    starts at once (a comment, or events whose errors are coded)."""
    headers = {"accept": "text/event-stream"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    if method == "GET":
        request = http.build_request("GET", "/graphql", params={"query": document}, headers=headers)
    else:
        request = http.build_request("POST", "/graphql", json={"query": document}, headers=headers)
    context = f"{method} {document[:500]!r}"
    async with asyncio.timeout(DEADLINE):
        response = await http.send(request, stream=True)
        try:
            assert response.status_code < 500, context
            if response.headers.get("content-type", "").startswith("text/event-stream"):
                assert response.status_code == 200, context
                buffer = b""
                async for chunk in response.aiter_bytes():
                    buffer += chunk
                    if b"\n\n" in buffer:
                        break
                for event in buffer.split(b"\n\n")[:-1]:
                    if event.startswith(b":"):
                        continue
                    lines = dict(line.split(b": ", 1) for line in event.split(b"\n"))
                    assert lines[b"event"] == b"next", context
                    payload = json.loads(lines[b"data"])
                    if "errors" in payload:
                        check_errors(payload["errors"], context)
            else:
                body = json.loads(await response.aread())
                check_errors(body.get("errors"), context)
        finally:
            await response.aclose()


async def sse_event(server: Server) -> None:
    """A fresh SSE subscription gets the event of a post created over HTTP."""
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=DEADLINE) as http,
        http.stream(
            "POST", "/graphql", json={"query": FRESH}, headers={"accept": "text/event-stream"}
        ) as response,
    ):
        assert response.status_code == 200
        chunks = response.aiter_bytes()
        assert (await anext(chunks)).startswith(b":")  # started: subscribed
        created = await http.post(
            "/graphql",
            json={"query": PROBE_POST},
            headers={"authorization": f"Bearer {server.token}"},
        )
        post_id = created.json()["data"]["createPost"]["id"]
        async with asyncio.timeout(DEADLINE):
            buffer = b""
            while post_id.encode() not in buffer:
                buffer += await anext(chunks)


def test_generated_subscriptions_over_sse(server: Server) -> None:
    since = log_size(server)

    async def run_one(document: str, method: str, signed_in: bool) -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=DEADLINE) as http:
            await sse_request(http, document, method, server.token if signed_in else None)
            health = await http.get("/healthz")
            assert health.status_code == 200

    @fuzz_settings(SSE_EXAMPLES)
    @given(document=DOCUMENTS, method=st.sampled_from(["POST", "GET"]), signed_in=st.booleans())
    def run(document: str, method: str, signed_in: bool) -> None:
        asyncio.run(run_one(document, method, signed_in))

    run()
    asyncio.run(sse_event(server))
    asyncio.run(probe(server, None))
    assert_no_traceback(server, since)


# -- 3. the log -------------------------------------------------------------------------


def test_the_server_log_has_no_traceback(server: Server) -> None:
    assert_no_traceback(server)
