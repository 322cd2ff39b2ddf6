"""Google Cloud Storage: V4 signed URLs (PUT with the content type, size and a create-only
precondition signed; GET).

An upload is a signed PUT to the key's name under ``uploads/``, whose signature binds
``Content-Type``, ``x-goog-content-length-range: 1,<max_bytes>`` (``n,n`` when the
file's size ``n`` is stated) and ``x-goog-if-generation-match: 0`` (headers the client
must send as handed out): Cloud Storage refuses a body outside the range, and refuses
(412) a PUT while the object exists, so the URL writes the upload once while it is
there. Attaching copies the pending object inside the bucket, only from the generation
inspected and only onto a free name (``if_source_generation_match``,
``if_generation_match=0``); a refused copy still succeeds when the key holds an object
of the MD5 inspected (Cloud Storage computes ``md5Hash`` itself and checks one a client
sends), an earlier attach's copy.

Signing needs a service account's private key, or the IAM Credentials API:

- with a key (a service-account JSON through ``GOOGLE_APPLICATION_CREDENTIALS``, or
  any credentials that can sign), each URL is an RSA signature made in the process;
- on Cloud Run, Cloud Functions or Compute Engine the credentials hold no key, so
  each URL is signed by ``iamcredentials.signBlob`` as the runtime's service account
  (``service_account_email`` + ``access_token`` of ``generate_signed_url``). That is a
  request per URL: read URLs are therefore cached and reused while more than half of
  their lifetime is left, and ``GQL_API_IMAGES_PUBLIC_BASE_URL`` (a public bucket)
  avoids signing reads at all. The account needs "Service Account Token Creator" on
  itself. This path cannot run against the local emulator; it is the SDK's own.

The SDK is synchronous; signing runs in a worker thread, one per call (not per URL)
when signing is local. With ``STORAGE_EMULATOR_HOST`` set, the client talks to the
emulator anonymously while URLs are still signed with the given credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from gql_api.images.base import (
    DEFAULT_MAX_IMAGE_BYTES,
    Clock,
    CloudImageStorage,
    ImageObject,
    ImageStorageError,
    NotAttachable,
    ReadUrlCache,
    UploadUrl,
    check_ttl,
    pending_name,
    plan_uploads,
    utc_now,
)

if TYPE_CHECKING:
    from google.auth.credentials import Credentials
    from google.cloud.storage import Bucket, Client

SCOPES = ["https://www.googleapis.com/auth/devstorage.read_write"]
# Object name, HTTP method, content type bound (or None), other headers bound (or None).
Signed = tuple[str, str, str | None, dict[str, str] | None]
SIZE_HEADER = "x-goog-content-length-range"
# Signed as 0, which only a name holding nothing matches: a second PUT is refused (412).
PRECONDITION_HEADER = "x-goog-if-generation-match"


class GcsImageStorage(CloudImageStorage["Client"]):
    name = "gcs"
    failure = "does not answer or cannot sign"
    fix = (
        "create it, grant storage.objects.create/get/delete and storage.buckets.get, "
        "and Service Account Token Creator when there is no key"
    )

    def __init__(
        self,
        bucket: str,
        *,
        credentials: Credentials | None = None,
        public_base_url: str | None = None,
        read_ttl: timedelta = timedelta(hours=1),
        timeout: float = 5.0,
        max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
        clock: Clock = utc_now,
    ) -> None:
        super().__init__(
            bucket,
            public_base_url=public_base_url,
            read_ttl=read_ttl,
            timeout=timeout,
            max_bytes=max_bytes,
            clock=clock,
        )
        self._credentials = credentials
        self._bucket: Bucket | None = None
        self._cache = ReadUrlCache(read_ttl, clock)

    async def _connect(self) -> Client:
        return await asyncio.to_thread(self._connect_now)

    def _connect_now(self) -> Client:
        import google.auth
        from google.auth.credentials import AnonymousCredentials
        from google.cloud.storage import Client

        if self._credentials is None:
            self._credentials, _ = google.auth.default(scopes=SCOPES)
        emulated = bool(os.environ.get("STORAGE_EMULATOR_HOST"))
        client = Client(
            project=None,
            credentials=AnonymousCredentials() if emulated else self._credentials,  # type: ignore[no-untyped-call]
        )
        self._bucket = client.bucket(self.bucket)
        return client

    async def _opened_bucket(self) -> Bucket:
        await self._opened()
        assert self._bucket is not None  # set with the client
        return self._bucket

    async def _disconnect(self, client: Client) -> None:
        self._bucket = None
        await asyncio.to_thread(client.close)

    def _signer(self) -> dict[str, Any]:
        """How ``generate_signed_url`` signs: a local key, or IAM's signBlob."""
        from google.auth.credentials import Signing

        credentials = self._credentials
        assert credentials is not None  # set by _connect
        if isinstance(credentials, Signing):
            return {"credentials": credentials}
        if not credentials.valid:  # an access token lasts an hour: one refresh per hour
            from google.auth.transport.requests import Request

            credentials.refresh(Request())  # type: ignore[no-untyped-call]
        email = getattr(credentials, "service_account_email", None)
        if not email or email == "default" or not credentials.token:
            raise ImageStorageError(
                "the Google credentials can neither sign nor name a service account: use a "
                "service account (with Service Account Token Creator on itself) or its key"
            )
        return {"service_account_email": email, "access_token": credentials.token}

    def _signs_locally(self) -> bool:
        from google.auth.credentials import Signing

        return isinstance(self._credentials, Signing)

    def _sign(self, requests: Sequence[Signed], expires_at: datetime) -> list[str]:
        """A V4 URL per (object name, method, content type or None, headers or None)."""
        assert self._bucket is not None
        signer = self._signer()
        return [
            self._bucket.blob(name).generate_signed_url(
                version="v4",
                expiration=expires_at,
                method=method,
                content_type=content_type,
                headers=None if headers is None else dict(headers),  # the SDK adds Host to it
                **signer,
            )
            for name, method, content_type, headers in requests
        ]

    def _upload_headers(self, size: int | None) -> dict[str, str]:
        """The headers an upload's signature binds besides Content-Type: the size range
        (exactly ``size`` when stated) and the create-only precondition."""
        low, high = (1, self.max_bytes) if size is None else (size, size)
        return {SIZE_HEADER: f"{low},{high}", PRECONDITION_HEADER: "0"}

    async def _sign_all(self, requests: Sequence[Signed], expires_at: datetime) -> list[str]:
        await self._opened_bucket()
        if self._signs_locally():
            return await asyncio.to_thread(self._sign, requests, expires_at)
        # One signBlob request per URL: send them side by side, not one after another.
        signed = await asyncio.gather(
            *(asyncio.to_thread(self._sign, [one], expires_at) for one in requests)
        )
        return [urls[0] for urls in signed]

    async def upload_urls(
        self,
        user_id: str,
        content_types: Sequence[str],
        ttl: timedelta,
        sizes: Sequence[int] | None = None,
    ) -> list[UploadUrl]:
        check_ttl(ttl)
        uploads = plan_uploads(user_id, content_types, sizes, self.max_bytes)
        expires_at = self._clock() + ttl
        headers = [self._upload_headers(size) for _, _, size in uploads]
        requests: list[Signed] = [
            (pending_name(key), "PUT", ctype, bound)
            for (key, ctype, _), bound in zip(uploads, headers, strict=True)
        ]
        urls = await self._sign_all(requests, expires_at)
        return [
            UploadUrl(key, url, "PUT", (("Content-Type", ctype), *bound.items()), expires_at)
            for (key, ctype, _), bound, url in zip(uploads, headers, urls, strict=True)
        ]

    async def _signed_read_urls(self, client: Client, keys: Sequence[str]) -> list[str]:
        known = {key: self._cache.get(key) for key in keys}
        missing = [key for key, url in known.items() if url is None]
        if missing:
            signed_at = self._clock()
            requests: list[Signed] = [(key, "GET", None, None) for key in missing]
            urls = await self._sign_all(requests, signed_at + self.read_ttl)
            for key, url in zip(missing, urls, strict=True):
                self._cache.put(key, url, signed_at)
                known[key] = url
        return [known[key] or "" for key in keys]

    async def inspect(self, key: str) -> ImageObject | None:
        bucket = await self._opened_bucket()
        blob = await asyncio.to_thread(bucket.get_blob, pending_name(key), timeout=self.timeout)
        if blob is None:
            return None
        # The token carries the MD5 too, so attach can recognise a copy already made.
        token = f"{blob.generation}:{blob.md5_hash}" if blob.md5_hash else str(blob.generation)
        return ImageObject(blob.size or 0, blob.content_type, token)

    async def attach(self, key: str, token: str) -> bool:
        from google.api_core.exceptions import NotFound, PreconditionFailed

        bucket = await self._opened_bucket()
        generation, _, md5 = token.partition(":")
        try:
            await asyncio.to_thread(
                bucket.copy_blob,
                bucket.blob(pending_name(key)),
                bucket,
                key,
                if_source_generation_match=int(generation),
                if_generation_match=0,  # only onto a name that holds nothing
                timeout=self.timeout,
            )
        except (NotFound, PreconditionFailed) as error:
            if not await self._holds(bucket, key, md5):
                raise NotAttachable(key) from error
            return False
        return True

    async def _holds(self, bucket: Bucket, key: str, md5: str) -> bool:
        """Whether ``key`` already holds the bytes whose MD5 (as Cloud Storage computed
        it) is ``md5``, an earlier attach's copy: one metadata read, on a refused copy
        only. A composite object has no MD5: never held."""
        if not md5:
            return False
        try:
            blob = await asyncio.to_thread(bucket.get_blob, key, timeout=self.timeout)
        # Unknown counts as not held: the caller would undo a maybe-copy, maybe another's.
        except Exception:  # noqa: BLE001
            return False
        return blob is not None and blob.md5_hash == md5

    async def _delete_objects(self, client: Client, names: list[str]) -> None:
        bucket = await self._opened_bucket()
        await asyncio.gather(*(asyncio.to_thread(self._delete_one, bucket, n) for n in names))

    def _delete_one(self, bucket: Bucket, name: str) -> None:
        from google.api_core.exceptions import NotFound

        with contextlib.suppress(NotFound):  # already gone: as asked
            bucket.delete_blob(name, timeout=self.timeout)

    async def _probe(self, client: Client) -> str:
        bucket = await self._opened_bucket()
        await asyncio.to_thread(bucket.reload, timeout=self.timeout)
        probe: Signed = ("doctor/probe.png", "GET", None, None)
        await self._sign_all([probe], self._clock() + self.read_ttl)
        how = "a local key" if self._signs_locally() else "IAM signBlob"
        return f"URLs signed with {how}"
