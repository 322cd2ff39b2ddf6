"""Inputs for the properties of ``gql-api migrate`` (``test_properties_*.py``): legacy rows
with any value in any field, sources of clashing posts, crash points and throttling, and the
fake target that crashes, throttles and keeps a book of what it really did. Not a test module.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from gql_api.domain.records import PostRecord, ProfileRecord
from gql_api.ops.migration.sources import Kind
from gql_api.stores.base import DatabaseUnavailable
from gql_api.stores.sqlite import SqliteStore
from tests.migration.test_runner import legacy
from tests.property_strategies import huge_ints, nasty_text, short_text

FIELDS = (
    "postId",
    "userId",
    "nickname",
    "content",
    "isMarkdown",
    "tags",
    "imageKeys",
    "createdAt",
    "updatedAt",
)
MISSING = object()  # a field left out of the row


# --------------------------------------------------------------------------------------
# Wild legacy values
# --------------------------------------------------------------------------------------

offsets = st.builds(
    timezone,
    st.timedeltas(
        min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)
    ),
)
zones = st.one_of(
    st.none(),
    st.just(UTC),
    offsets,
    st.sampled_from(
        [ZoneInfo("America/New_York"), ZoneInfo("Asia/Kolkata"), ZoneInfo("Pacific/Kiritimati")]
    ),
)
EDGE_MOMENTS = [
    datetime(1, 1, 1),
    datetime(1, 1, 1, 0, 0, 1),
    datetime(1970, 1, 1),
    datetime(9999, 12, 31, 23, 59, 59, 999_999),
    datetime(2024, 2, 29, 12),
]
moments = st.one_of(
    st.datetimes(timezones=zones),
    st.datetimes(timezones=zones),
    st.builds(
        lambda moment, zone: moment.replace(tzinfo=zone), st.sampled_from(EDGE_MOMENTS), zones
    ),
)
ODD_ISO = [
    "2024-01-01",
    "2024-01-01T00:00:00Z",
    "2024-01-01t00:00:00z",
    "2024-01-01 00:00",
    "20240101T000000",
    "2024-01-01T00:00:00.123456789+00:00",
    "2024-01-01T24:00:00",
    "2024-02-30T00:00:00",
    "+002024-01-01T00:00:00",
    "2024-W01-1",
    "2024-001",
    "0001-01-01T00:00:00",
    "0001-01-01T00:00:00+00:01",
    "0001-01-01T00:00:00-00:01",
    "9999-12-31T23:59:59.999999",
    "9999-12-31T23:59:59.999999-00:01",
    "9999-12-31T23:59:59+23:59",
    "2024-01-01T00:00:00+24:00",
    "2024-01-01T00:00:00+05:30:15.5",
    "T00:00",
    "",
    " 2024-01-01",
    "2024-01-01T00:00:00\x00",
    "2024-01-01T00:00:00\ud800",
]
iso_texts = st.one_of(
    st.sampled_from(ODD_ISO),
    st.builds(
        lambda moment, sep, spec: moment.isoformat(sep=sep, timespec=spec),
        moments,
        st.sampled_from(["T", " ", "x"]),
        st.sampled_from(["auto", "hours", "minutes", "seconds", "milliseconds", "microseconds"]),
    ),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    huge_ints,
    # Built (a literal's repr would raise), past int's 4,300-digit str() limit.
    st.sampled_from([(4300, 1), (4300, -1), (5000, 1)]).map(lambda pair: pair[1] * 10 ** pair[0]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    nasty_text,
    moments,
    st.dates(),
)
wild: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.tuples(inner, inner),
        st.dictionaries(short_text, inner, max_size=3),
    ),
    max_leaves=10,
)

words = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=1, max_size=12
)
post_ids = st.one_of(st.uuids().map(str), st.uuids().map(lambda u: u.hex))
odd_post_ids = st.one_of(
    st.uuids().map(lambda u: str(u).upper()),
    st.uuids().map(lambda u: "{" + str(u) + "}"),
    st.sampled_from(["", "x" * 129, "\ud800" * 10, "0" * 32 + "\n"]),
    short_text,
)
user_ids = st.one_of(words, st.sampled_from(["user-1", "a/b", "a b", "\x00", "é", "x" * 256]))
odd_user_ids = st.one_of(st.sampled_from(["", "x" * 257, "\ud800"]), short_text)
nicknames = st.one_of(words, words, st.sampled_from(["Alice", " Bob ", "ǅ", "\U0001f600"]))
odd_nicknames = st.one_of(st.sampled_from(["bad\nname", "\u202e", "", " ", "x" * 51]), nasty_text)
contents = st.one_of(words, st.sampled_from(["hello", " x ", "\x00", "a\x00b", "x" * 10_000]))
odd_contents = nasty_text
tag_lists = st.lists(
    st.one_of(words, st.sampled_from(["Python", " python", "\uff27\uff2f", "İ"])), max_size=6
)
odd_tag_lists = st.one_of(
    st.lists(st.one_of(short_text, nasty_text), max_size=12),
    st.builds(lambda n: [f"t{i}" for i in range(n)], st.integers(0, 12)),
    st.builds(lambda tag, n: [tag] * n, short_text, st.sampled_from([11, 1001])),
)
key_names = st.one_of(
    words.map(lambda w: w + ".jpg"), st.sampled_from(["2023/cat photo.jpg", "x" * 1000])
)
odd_key_names = st.one_of(
    st.sampled_from(["", ".", "..", "a/../b", "a//b", "a/", "\x00.png", "x" * 1030, "\ud800"]),
    short_text,
)


@st.composite
def legacy_rows(draw: st.DrawFn, *, plausible: bool = False) -> dict[str, Any]:
    """A legacy row: each field mostly a value that passes (so the later rules are
    reached), else an odd one of its type, else anything at all, else missing.
    ``plausible``: rarely odd, never anything nor missing (rows that mostly come over)."""

    def field_value(valid: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> Any:
        # (one_of drops a repeated strategy: the weights are drawn as a number)
        if plausible:
            choices = [*[valid] * 12, odd]
        else:
            choices = [*[valid] * 6, odd, odd, wild, st.just(MISSING)]
        return st.integers(0, len(choices) - 1).flatmap(choices.__getitem__)

    user = draw(field_value(user_ids, odd_user_ids))
    prefix = f"{user}/" if isinstance(user, str) else ""
    valid_keys = st.lists(key_names.map(lambda name: prefix + name), max_size=4)
    odd_keys = st.lists(
        st.one_of(odd_key_names.map(lambda name: prefix + name), key_names, short_text), max_size=6
    ).flatmap(lambda ks: st.sampled_from([ks, ks + ks[:1], tuple(ks), ks * 2]))
    times = st.one_of(moments, iso_texts)
    values = {
        "postId": draw(field_value(post_ids, odd_post_ids)),
        "userId": user,
        "nickname": draw(
            field_value(nicknames, st.one_of(odd_nicknames, st.none()))
            if plausible
            else st.one_of(field_value(nicknames, odd_nicknames), st.none())
        ),
        "content": draw(field_value(contents, odd_contents)),
        "isMarkdown": draw(st.one_of(field_value(st.booleans(), wild), st.none())),
        "tags": draw(st.one_of(field_value(tag_lists, odd_tag_lists), st.none())),
        "imageKeys": draw(st.one_of(field_value(valid_keys, odd_keys), st.none())),
        "createdAt": draw(field_value(times, wild)),
        "updatedAt": draw(st.one_of(field_value(times, wild), st.none())),
    }
    data = {name: value for name, value in values.items() if value is not MISSING}
    extra = draw(st.dictionaries(short_text, wild, max_size=2))
    return extra | data


kinds = st.sampled_from(Kind)


# --------------------------------------------------------------------------------------
# Sources, crashes and throttling for the runs
# --------------------------------------------------------------------------------------

ID_POOL = 6
USERS = 3


def post_id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def post_row(shape: str, ident: int, index: int) -> dict[str, Any]:
    """A legacy post of ``shape``, its id one of ``ID_POOL``: rows of one id may clash."""
    base = legacy(ident) | {"postId": post_id(ident)}
    own = {"content": f"row {index}"}
    if shape == "same":  # identical to every other "same" row of its id
        return base
    if shape == "valid":
        return base | own
    if shape == "repaired_nickname":
        return base | own | {"nickname": "bad\nname"}
    if shape == "repaired_keys":
        return base | own | {"imageKeys": [f"user-{ident % 3}/a.jpg"] * 2}
    if shape == "bad_content":
        return base | {"content": " "}
    if shape == "bad_tags":
        return base | {"tags": [f"t{i}" for i in range(11)]}
    if shape == "bad_key":
        return base | {"imageKeys": ["someone-else/a.jpg"]}
    if shape == "bad_id":
        return base | {"postId": f"legacy-{ident}"}
    if shape == "missing_time":
        return {k: v for k, v in base.items() if k != "createdAt"}
    raise AssertionError(shape)


POST_SHAPES = [
    *["valid"] * 4,
    *["same"] * 3,
    "repaired_nickname",
    "repaired_keys",
    "bad_content",
    "bad_tags",
    "bad_key",
    "bad_id",
    "missing_time",
]


@st.composite
def sources(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    specs = draw(
        st.lists(
            st.tuples(st.sampled_from(POST_SHAPES), st.integers(0, ID_POOL - 1), st.booleans()),
            min_size=2,
            max_size=22,
        )
    )
    posts: list[dict[str, Any]] = []
    for index, (shape, ident, copied) in enumerate(specs):
        if copied and posts:  # an exact copy of an earlier row
            posts.append(dict(posts[draw(st.integers(0, len(posts) - 1))]))
        else:
            posts.append(post_row(shape, ident, index))
    profile_specs = st.tuples(
        st.integers(0, USERS - 1), st.sampled_from(["Nick", "Other", "bad\tname", None])
    )
    profiles = [
        {"userId": f"user-{user}", "nickname": nick}
        for user, nick in draw(st.lists(profile_specs, max_size=6))
    ]
    return posts, profiles


CRASH_POINTS = ("page_before", "page_after", "create_before", "create_after", "save")
# One crash point for each run but the last: where, and at its how-manieth call.
crashes = st.lists(
    st.tuples(st.sampled_from(CRASH_POINTS), st.integers(1, 5)), min_size=1, max_size=3
)


@dataclass(frozen=True)
class Throttle:
    """Creates refused as a throttled database does (``DatabaseUnavailable``), after
    writing the post (``landed``: a write whose answer was lost) or before: every
    ``every``-th create call of a run, or the calls numbered in ``calls``."""

    every: int = 0
    landed: bool = False
    calls: frozenset[int] = frozenset()

    def __call__(self, call: int) -> bool:
        return call in self.calls or (self.every > 0 and call % self.every == 0)


throttles = st.one_of(st.none(), st.builds(Throttle, st.integers(2, 5), st.booleans()))


@dataclass
class Book:
    """What the target really did, as the test saw it: each create and put that
    succeeded, and which of them a saved checkpoint counted (the rest belong to a page
    the crash made the next run do again)."""

    creates: Counter[str] = field(default_factory=Counter)
    pending: list[tuple[Kind, str]] = field(default_factory=list)
    persisted: list[tuple[Kind, str]] = field(default_factory=list)
    # Posts written, then refused all the same (the answer lost): their retry finds them
    # there, which the runner cannot tell from a write made before, and counts "already".
    lost_answers: set[str] = field(default_factory=set)

    def lost(self) -> None:
        self.pending.clear()

    def saved(self) -> None:
        self.persisted.extend(self.pending)
        self.pending.clear()


class Interrupted(KeyboardInterrupt):
    """The test's Ctrl-C (a subclass, to tell it from a real one in a traceback)."""


class Target(SqliteStore):
    def __init__(
        self,
        path: Path,
        book: Book,
        crash: tuple[str, int] | None,
        throttle: Throttle | None,
    ) -> None:
        super().__init__(path, synchronous="normal")
        self.book = book
        self.crash = crash
        self.throttle = throttle
        self.create_calls = 0

    def _crash(self, point: str, count: int) -> None:
        if self.crash == (point, count):
            raise Interrupted(point)

    async def create(self, post: PostRecord) -> PostRecord:
        self.create_calls += 1
        self._crash("create_before", self.create_calls)
        if self.throttle is not None and self.throttle(self.create_calls):
            if self.throttle.landed:
                await super().create(post)
                self._created(post)
                self.book.lost_answers.add(post.id)
            raise DatabaseUnavailable("throttled")
        result = await super().create(post)
        self._created(post)
        self._crash("create_after", self.create_calls)
        return result

    def _created(self, post: PostRecord) -> None:
        self.book.creates[post.id] += 1
        self.book.pending.append((Kind.POSTS, post.id))

    async def put_profile(self, profile: ProfileRecord) -> ProfileRecord:
        result = await super().put_profile(profile)
        self.book.pending.append((Kind.PROFILES, profile.user_id))
        return result
