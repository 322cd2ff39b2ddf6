"""What the client sends: the Frame type, and the hypothesis strategies that draw
graphql-transport-ws messages (the protocol's own and malformed ones) and sequences."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from tests.live_fuzz.server import FRESH, OVERSIZED, Server


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


def sequences(server: Server) -> st.SearchStrategy[list[Frame]]:
    start = st.sampled_from(["user", "anonymous", "admin", None])
    return st.tuples(start, st.lists(frames(server), max_size=8)).map(
        lambda t: opening(server, t[0]) + t[1]
    )
