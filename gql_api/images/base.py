"""The image-storage interface every provider speaks, and what they share.

An ``ImageStorage`` hands out signed upload URLs for fresh keys and read URLs for
stored keys. Both are computed locally from credentials the storage already holds:
no network call per image where the cloud can sign locally (the exceptions are
spelled out by each provider). It knows nothing of posts, users' rights or GraphQL.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol
from urllib.parse import quote

from gql_api.images.keys import extension_for, new_image_key

Clock = Callable[[], datetime]
Check = tuple[bool, str]

# Providers sign URLs valid for at most this long (S3 and Cloud Storage V4: 7 days).
MAX_URL_TTL = timedelta(days=7)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class UploadUrl:
    """Where and how a client uploads one image: send exactly ``method`` and ``headers``."""

    key: str
    url: str
    method: str
    headers: tuple[tuple[str, str], ...]
    expires_at: datetime


class ImageStorageError(Exception):
    """The storage cannot sign (missing credentials, unusable configuration)."""


class ImageStorage(Protocol):
    name: str  # "s3", "azure" or "gcs"
    bucket: str  # the bucket (S3, Cloud Storage) or container (Azure Blob)

    async def open(self) -> None:
        """Create the SDK client; the other methods open it on first use too."""

    async def upload_urls(
        self, user_id: str, content_types: Sequence[str], ttl: timedelta
    ) -> list[UploadUrl]:
        """One signed upload per content type, for fresh keys under ``{user_id}/``.

        Raises ``ImageInputError`` for a content type off the allow-list or a user id
        that cannot own keys.
        """

    async def read_urls(self, keys: Sequence[str]) -> list[str]:
        """One readable URL per key, in order: public base URL + key, or signed."""

    async def check(self) -> list[Check]:
        """For ``gql-api doctor``: the bucket answers and a URL can be signed."""

    async def close(self) -> None:
        """Release the client; safe to call twice or without ``open``."""


def plan_uploads(user_id: str, content_types: Sequence[str]) -> list[tuple[str, str]]:
    """(key, normalized content type) per requested upload, all validated first."""
    normalized = [c.strip().lower() for c in content_types]
    for content_type in normalized:
        extension_for(content_type)
    return [(new_image_key(user_id, c), c) for c in normalized]


def check_ttl(ttl: timedelta) -> None:
    if not timedelta(seconds=1) <= ttl <= MAX_URL_TTL:
        raise ValueError(f"a URL lifetime must be from 1 second to {MAX_URL_TTL}, not {ttl}")


def public_url(base_url: str, key: str) -> str:
    """``base_url`` + the key, percent-encoded except its slashes."""
    return f"{base_url.rstrip('/')}/{quote(key, safe='/~')}"


class ReadUrlCache:
    """Signed read URLs, reused while more than half of their lifetime is left.

    For providers whose signing is not free (RSA, or a remote signing service), so a
    page of posts read again soon costs no new signatures. Bounded: oldest out first.
    """

    def __init__(self, ttl: timedelta, clock: Clock, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self._clock = clock
        self._max_entries = max_entries
        self._entries: OrderedDict[str, tuple[str, datetime]] = OrderedDict()

    def get(self, key: str) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        url, reuse_until = entry
        if self._clock() >= reuse_until:
            del self._entries[key]
            return None
        return url

    def put(self, key: str, url: str, signed_at: datetime) -> None:
        self._entries[key] = (url, signed_at + self.ttl / 2)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
