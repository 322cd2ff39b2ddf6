"""Hostile inputs shared by the property tests (``tests/test_properties_*.py``).

Strings include lone surrogates (JSON escapes let a client send them), NUL, invisible
and bidirectional characters, NFKC expanders and megabyte strings; numbers include
huge (past ``int``'s 4,300-digit ``str`` limit) and negative ones; JSON values are any
mix of null, booleans, floats (NaN, infinities), integers, strings, lists and objects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# The same examples on every run (CI is deterministic), no example database, no deadline
# (a megabyte string may take a few milliseconds), and few enough examples to stay fast.
PROPERTY = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow],
)
FEW = settings(PROPERTY, max_examples=80)

# Every code point, surrogates (category Cs) included: hypothesis leaves them out by default.
ANY_CHAR = st.characters(exclude_categories=())

SPECIAL_STRINGS = (
    "",
    " ",
    "\x00",
    "\ud800",
    "\udfff",
    "\ud83d\ude00",  # a surrogate pair as two code points: still two lone surrogates
    "\U0001f600",
    "\t",
    "\n",
    "\r\n",
    "\x7f",
    "\u00a0",
    "\u200b",
    "\u200d",
    "\u2028",
    "\u2029",
    "\u202e",
    "\u2066",
    "\u2800",
    "\u3164",
    "\ufeff",
    "\ufff9",
    "\ufffd",
    "\U000e0041",
    "\u0130",  # İ: lower() makes it two code points
    "\u1e9e",  # ẞ
    "\u00df",  # ß
    "\ufdfa",  # NFKC makes it 18 code points
    "\u00a8",  # ¨: NFKC makes it a space and a combining mark
    "\u02d8",  # ˘: likewise
    "\ufe49",  # ﹉: likewise
    "\u2126",  # Ω (ohm sign)
    "\u01c5",  # ǅ (title case)
    "\u0345",
    "\ufb00",  # ﬀ
    "\uff21",  # full-width A
    "\u3000",
    "a b",
    "a.b",
    "a/b",
    "..",
    ".",
    "\\",
    "0",
    "-1",
    "1e400",
    "NaN",
    "null",
    "true",
    "[]",
    "{}",
)


def _repeat(text: str, size: int) -> str:
    return (text * (size // len(text) + 1))[:size]


# Strings around the limits of each layer, and a megabyte.
BIG_SIZES = (50, 51, 128, 129, 256, 257, 1024, 1025, 10_000, 10_001, 20_000, 20_001, 1 << 20)
big_text = st.builds(
    _repeat,
    st.one_of(st.sampled_from(SPECIAL_STRINGS[1:]), st.text(ANY_CHAR, min_size=1, max_size=3)),
    st.sampled_from(BIG_SIZES),
)

# Short words mixed with the special strings: names, tags and keys with a twist.
mixed_text = st.lists(
    st.one_of(st.sampled_from(SPECIAL_STRINGS), st.sampled_from(["a", "Al", "ice", " ", "x1"])),
    min_size=1,
    max_size=6,
).map("".join)
# A short core inside padding of whitespace to past each limit.
padded_text = st.builds(
    lambda pad, core, size: _repeat(pad, size) + core + _repeat(pad, size // 3),
    st.sampled_from([" ", "\n", "\t", "\u3000", "\u00a0"]),
    st.text(ANY_CHAR, min_size=0, max_size=5),
    st.sampled_from(BIG_SIZES),
)
nasty_text = st.one_of(
    st.text(ANY_CHAR, max_size=60),
    st.sampled_from(SPECIAL_STRINGS),
    st.lists(
        st.one_of(st.sampled_from(SPECIAL_STRINGS), st.text(ANY_CHAR, max_size=4)), max_size=8
    ).map("".join),
    big_text,
    mixed_text,
    padded_text,
)
short_text = st.one_of(st.text(ANY_CHAR, max_size=20), st.sampled_from(SPECIAL_STRINGS))

huge_ints = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(
        [
            0,
            1,
            -1,
            2**31 - 1,
            2**31,
            -(2**31) - 1,
            2**53 + 1,
            2**63,
            -(2**63),
            2**64,
        ]
    ),
    # Past 4,300 digits str() of an int raises ValueError (built, since repr() would too).
    st.tuples(st.sampled_from([4299, 4300, 5000, 10_000]), st.sampled_from([1, -1])).map(
        lambda pair: pair[1] * 10 ** pair[0]
    ),
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    huge_ints,
    short_text,
)
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(short_text, inner, max_size=4)
    ),
    max_leaves=8,
)
not_a_string = json_values.filter(lambda value: not isinstance(value, str))


def is_surrogate(char: str) -> bool:
    return 0xD800 <= ord(char) <= 0xDFFF


T = TypeVar("T")
E = TypeVar("E", bound=Exception)


def attempt(error_type: type[E], call: Callable[..., T], *args: Any) -> T | E:
    """What ``call(*args)`` returns, or the ``error_type`` it raised: the layer's own error.
    Any other exception propagates and fails the test."""
    try:
        return call(*args)
    except error_type as error:
        return error
