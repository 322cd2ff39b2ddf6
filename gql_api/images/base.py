"""The image-storage interface every provider speaks, and what they share.

An ``ImageStorage`` hands out signed upload URLs for fresh keys and read URLs for
stored keys. Both are computed locally from credentials the storage already holds:
no network call per image where the cloud can sign locally (the exceptions are
spelled out by each provider). It knows nothing of posts, users' rights or GraphQL.

Uploads land under ``uploads/`` (``pending_name``), never at the key itself: only the
server writes ``{key}``, by a server-side copy (``attach``) of the pending object it
has inspected, so a still-valid upload URL cannot replace an image after its checks,
and a lifecycle rule on ``uploads/`` removes uploads never attached to a post.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, Protocol, TypeVar
from urllib.parse import quote

from gql_api.caches import ByteBoundedCache
from gql_api.images.keys import ImageInputError, extension_for, new_image_key

Clock = Callable[[], datetime]
Client = TypeVar("Client")  # a provider's SDK client
Check = tuple[bool, str]

# A cached read URL's bookkeeping beyond its two strings: the tuple, the expiry, the node.
URL_ENTRY_OVERHEAD = 200

# Providers sign URLs valid for at most this long (S3 and Cloud Storage V4: 7 days).
MAX_URL_TTL = timedelta(days=7)
# The default of GQL_API_MAX_IMAGE_BYTES: the largest upload, 10 MiB.
DEFAULT_MAX_IMAGE_BYTES = 10 * 1024 * 1024
# Where uploads land until a post attaches them (and where the lifecycle rule looks).
PENDING_PREFIX = "uploads/"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class UploadUrl:
    """Where and how a client uploads one image: send exactly ``method`` and ``headers``;
    for a POST, a multipart form of ``fields`` (in order) with the file as its last part."""

    key: str
    url: str
    method: str
    headers: tuple[tuple[str, str], ...]
    expires_at: datetime
    fields: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ImageObject:
    """A pending upload as the storage holds it; ``token`` names this very version
    (S3 ETag, Cloud Storage generation and MD5, Azure ETag), so ``attach`` copies only
    it, and recognises a copy of it already at the key."""

    size: int
    content_type: str | None
    token: str


class ImageStorageError(Exception):
    """The storage cannot sign (missing credentials, unusable configuration)."""


class NotAttachable(Exception):
    """``attach`` refused by the storage's conditions: the pending upload is gone or was
    replaced since it was inspected, or the key already holds another image."""

    def __init__(self, key: str) -> None:
        super().__init__(f"{key!r} cannot be attached: changed, gone or already attached")
        self.key = key


class ImageStorage(Protocol):
    name: str  # "s3", "azure" or "gcs"
    bucket: str  # the bucket (S3, Cloud Storage) or container (Azure Blob)
    max_bytes: int  # the largest upload accepted (GQL_API_MAX_IMAGE_BYTES)

    async def open(self) -> None:
        """Create the SDK client; the other methods open it on first use too."""

    async def upload_urls(
        self,
        user_id: str,
        content_types: Sequence[str],
        ttl: timedelta,
        sizes: Sequence[int] | None = None,
    ) -> list[UploadUrl]:
        """One signed upload per content type, for fresh keys under ``{user_id}/``;
        ``sizes`` (one per upload, 1 to ``max_bytes``) states each file's exact size,
        which S3 and Cloud Storage then bind (and S3 makes its upload single-use).

        Raises ``ImageInputError`` for a content type off the allow-list, a user id
        that cannot own keys, or sizes that are not one per upload within the limit.
        """

    async def read_urls(self, keys: Sequence[str]) -> list[str]:
        """One readable URL per key, in order: public base URL + key, or signed."""

    async def inspect(self, key: str) -> ImageObject | None:
        """The pending upload of ``key`` (None: nothing uploaded); one storage call."""

    async def attach(self, key: str, token: str) -> bool:
        """Copy the pending upload of ``key`` to ``key``, inside the storage, only if it
        is still the version ``token`` names and ``key`` holds nothing yet: True. Idempotent:
        when the copy is refused but ``key`` already holds the bytes of that version (an
        earlier attach's copy), False, at the cost of one more storage call on that path
        only; otherwise ``NotAttachable``."""

    async def discard_pending(self, keys: Sequence[str]) -> None:
        """Delete the pending uploads of ``keys`` (missing ones are no error)."""

    async def delete(self, keys: Sequence[str]) -> None:
        """Delete the attached images ``keys`` (missing ones are no error)."""

    async def check(self) -> list[Check]:
        """For ``gql-api doctor``: the bucket answers and a URL can be signed."""

    async def close(self) -> None:
        """Release the client; safe to call twice or without ``open``."""


def plan_uploads(
    user_id: str, content_types: Sequence[str], sizes: Sequence[int] | None, max_bytes: int
) -> list[tuple[str, str, int | None]]:
    """(key, normalized content type, stated size or None) per requested upload, all
    validated first."""
    normalized = [c.strip().lower() for c in content_types]
    for content_type in normalized:
        extension_for(content_type)
    if sizes is None:
        return [(new_image_key(user_id, c), c, None) for c in normalized]
    if len(sizes) != len(normalized):
        raise ImageInputError(f"{len(sizes)} sizes for {len(normalized)} uploads: give one each")
    for size in sizes:
        if not 1 <= size <= max_bytes:
            raise ImageInputError(f"a size must be from 1 to {max_bytes} bytes, not {size}")
    return [(new_image_key(user_id, c), c, size) for c, size in zip(normalized, sizes, strict=True)]


def pending_name(key: str) -> str:
    """The object name a key's upload is written to until a post attaches it."""
    return PENDING_PREFIX + key


def check_max_bytes(max_bytes: int) -> None:
    if max_bytes < 1:
        raise ValueError(f"the largest upload must be at least 1 byte, not {max_bytes}")


def check_ttl(ttl: timedelta) -> None:
    if not timedelta(seconds=1) <= ttl <= MAX_URL_TTL:
        raise ValueError(f"a URL lifetime must be from 1 second to {MAX_URL_TTL}, not {ttl}")


def public_url(base_url: str, key: str) -> str:
    """``base_url`` + the key, percent-encoded except its slashes."""
    return f"{base_url.rstrip('/')}/{quote(key, safe='/~')}"


class ReadUrlCache:
    """Signed read URLs, reused while more than half of their lifetime is left.

    For providers whose signing is not free (RSA, or a remote signing service), so a
    page of posts read again soon costs no new signatures. Bounded by the bytes of its
    keys and URLs: the least recently used go first.
    """

    def __init__(
        self, ttl: timedelta, clock: Clock, max_entries: int = 10_000, max_bytes: int = 4 << 20
    ) -> None:
        self.ttl = ttl
        self._clock = clock
        self.entries: ByteBoundedCache[str, tuple[str, datetime]] = ByteBoundedCache(
            max_bytes, max_entries
        )

    def get(self, key: str) -> str | None:
        entry = self.entries.get(key)
        if entry is None:
            return None
        url, reuse_until = entry
        if self._clock() >= reuse_until:
            self.entries.discard(key)
            return None
        return url

    def put(self, key: str, url: str, signed_at: datetime) -> None:
        size = sys.getsizeof(key) + sys.getsizeof(url) + URL_ENTRY_OVERHEAD
        self.entries.put(key, (url, signed_at + self.ttl / 2), size)


class CloudImageStorage(Generic[Client]):
    """What every provider shares: its settings, the SDK client opened once on first use
    (under a lock, so concurrent first requests make one), reads through a public base
    URL when one is set, deletes of pending and attached objects, and the doctor's
    check. A provider adds ``_connect``, ``_disconnect``, ``_signed_read_urls``,
    ``_delete_objects``, ``_probe`` and its uploads and attaches."""

    name: str
    # For the doctor: what the bucket is called here, and how its failure reads.
    kind = "bucket"
    failure = "does not answer"
    fix = ""

    def __init__(
        self,
        bucket: str,
        *,
        public_base_url: str | None,
        read_ttl: timedelta,
        timeout: float,
        max_bytes: int,
        clock: Clock,
    ) -> None:
        check_ttl(read_ttl)
        check_max_bytes(max_bytes)
        self.bucket = bucket
        self.public_base_url = public_base_url
        self.read_ttl = read_ttl
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._clock = clock
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        await self._opened()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await self._disconnect(client)

    async def read_urls(self, keys: Sequence[str]) -> list[str]:
        if self.public_base_url is not None:
            return [public_url(self.public_base_url, key) for key in keys]
        if not keys:
            return []
        return await self._signed_read_urls(await self._opened(), keys)

    async def discard_pending(self, keys: Sequence[str]) -> None:
        await self.delete([pending_name(key) for key in keys])

    async def delete(self, keys: Sequence[str]) -> None:
        if keys:
            await self._delete_objects(await self._opened(), list(keys))

    async def check(self) -> list[Check]:
        where = f"images {self.name}: {self.kind} {self.bucket}"
        try:
            detail = await self._probe(await self._opened())
        except Exception as error:  # noqa: BLE001 - reported as a failed check
            return [(False, f"{where} {self.failure}: {error}; fix: {self.fix}")]
        return [(True, f"{where} answers; {detail}")]

    async def _opened(self) -> Client:
        async with self._lock:
            if self._client is None:
                self._client = await self._connect()
            return self._client

    async def _connect(self) -> Client:
        raise NotImplementedError

    async def _disconnect(self, client: Client) -> None:
        raise NotImplementedError

    async def _signed_read_urls(self, client: Client, keys: Sequence[str]) -> list[str]:
        raise NotImplementedError

    async def _delete_objects(self, client: Client, names: list[str]) -> None:
        """Delete these objects; missing ones are no error."""
        raise NotImplementedError

    async def _probe(self, client: Client) -> str:
        """Ask the bucket (and the signer) once; say how URLs are made. Raises on failure."""
        raise NotImplementedError
