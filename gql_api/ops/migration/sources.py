"""What every legacy source offers the runner: pages of raw rows, in one stable order,
resumable after any page. Each cloud's reader is in a module of its own, whose SDK is
imported only when it is chosen."""

from __future__ import annotations

import base64
import binascii
import enum
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from gql_api.settings import Settings


class Kind(enum.Enum):
    """What a migration brings over, in the order it does: profiles, then posts."""

    PROFILES = "profiles"
    POSTS = "posts"


@dataclass(frozen=True, slots=True)
class LegacyRow:
    """One legacy item as plain Python values (str, bool, int, float, Decimal, list,
    dict, datetime, None); ``ref`` names it in the source for a report (a sort key,
    a document id)."""

    ref: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class LegacyPage:
    rows: list[LegacyRow]
    # Where the next page starts: given back to ``pages`` as ``after``, it resumes just
    # past this page's last row. None: this was the last page.
    position: str | None


class SourceUnavailable(Exception):
    """The source throttled or did not answer: worth retrying after a pause."""


class LegacySource(Protocol):
    name: str  # "dynamodb", "firestore", "cosmos"

    @property
    def location(self) -> str:
        """Where the data is, in one line (endpoint, table or collections): a
        checkpoint is for one location only."""
        ...

    def overlaps(self, settings: Settings) -> str | None:
        """Why the store ``settings`` configure would write into this source's own
        table, collections or containers (then nothing is migrated); None if it would not."""
        ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def count(self, kind: Kind) -> int:
        """The rows of ``kind`` (for the progress bar and ``--verify``)."""
        ...

    async def page(self, kind: Kind, after: str | None, size: int) -> LegacyPage:
        """The next ``size`` (or fewer) rows of ``kind`` in the source's stable order,
        just past ``after`` (a ``LegacyPage.position``; None: from the start): one query,
        so a retry starts again from the same place. Reads only. Raises
        ``SourceUnavailable`` on throttling or an outage, ``ValueError`` for a position
        it did not make."""
        ...


def page_of(kind: Kind, rows: list[LegacyRow], size: int) -> LegacyPage:
    """A page from up to ``size + 1`` rows read in order: the extra one only says that
    another page follows (so the last page knows it is the last)."""
    shown = rows[:size]
    more = len(rows) > size
    return LegacyPage(shown, encode_position(kind, shown[-1].ref) if more else None)


def encode_position(kind: Kind, key: str) -> str:
    """A page's ``position``: the kind and the source's key of its last row, URL-safe
    (a sort key may hold any character), so only a position made here decodes."""
    encoded = base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")
    return f"{kind.value}.{encoded}"


def decode_position(kind: Kind, position: str) -> str:
    """The key that ``encode_position`` put in ``position``; ValueError for any other string
    (another kind's position included)."""
    prefix, _, encoded = position.partition(".")
    if prefix != kind.value or not encoded:
        raise ValueError(f"not a {kind.value} position of this source: {position!r}")
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        key = raw.decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError(f"not a {kind.value} position of this source: {position!r}") from None
    if not key or encode_position(kind, key) != position:  # one spelling per key only
        raise ValueError(f"not a {kind.value} position of this source: {position!r}")
    return key


def normal_url(url: str) -> str:
    """An endpoint URL spelt one way (scheme, host and port only; loopback as 127.0.0.1),
    to tell whether two settings name the same server."""
    parts = urlsplit(url.strip().lower())
    host = parts.hostname or ""
    host = "127.0.0.1" if host in {"localhost", "::1"} else host
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{host}:{port}"
