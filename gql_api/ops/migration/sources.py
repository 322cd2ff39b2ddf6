"""What every legacy source offers the runner: pages of raw rows, in one stable order,
resumable after any page. Each cloud's reader is in a module of its own, whose SDK is
imported only when it is chosen."""

from __future__ import annotations

import base64
import binascii
import enum
from collections.abc import AsyncGenerator
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

    def pages(self, kind: Kind, after: str | None, size: int) -> AsyncGenerator[LegacyPage, None]:
        """The rows of ``kind`` in the source's stable order, ``size`` (or fewer) a
        page, starting just past ``after`` (a ``LegacyPage.position``; None: from the
        start). Reads only. Raises ``SourceUnavailable`` on throttling or an outage,
        ``ValueError`` for a position it did not make."""
        ...


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
