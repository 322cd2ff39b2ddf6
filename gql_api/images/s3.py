"""Amazon S3: presigned PUT or POST uploads, and presigned GET, with aioboto3.

With the files' sizes stated (``sizes``), an upload is a presigned PUT to the object
name under ``uploads/`` whose SigV4 signature binds ``Content-Type``, the exact
``Content-Length`` and ``If-None-Match: *`` (headers the client must send): S3 refuses
(403) a body of another length or type, and (412) a PUT while the object exists, so the
URL writes the upload once while it is there. Unlike a POST policy, a PUT does not refuse
unsigned standard headers (Cache-Control, Content-Disposition, Content-Encoding...; S3
does refuse unsigned ``x-amz-*`` ones), as on Cloud Storage and Azure.

Without sizes, an upload is a presigned POST whose signed policy binds the object name,
the ``Content-Type`` and a ``content-length-range`` of 1 byte to ``max_bytes``: S3
itself refuses a larger file. Every condition is an exact match, and S3 refuses a form
field no condition names (but ``x-ignore-*``, which it ignores), so no other field
(Content-Disposition, Content-Encoding, metadata, ACL) rides along. It is not
single-use: POST Object takes no write condition (``If-None-Match`` is a header of
PutObject, CompleteMultipartUpload and CopyObject; a policy binds form fields, not
headers), so the URL can write the upload again until it expires; what bounds that is
the attach, which copies only the version it inspected. (A PUT takes no size range: it
bounds a size only by the exact one stated in advance.)

Presigning is SigV4 computed in the process from the credentials the client holds: no
request per URL. One client per process, opened once. A URL signed with temporary
credentials (Lambda's role) stops working when they expire, whatever its lifetime.
Attaching copies the pending object inside S3 (``CopySourceIfMatch`` the ETag
inspected, ``IfNoneMatch: *`` on the key); a refused copy still succeeds when the key's
ETag is that same one and an MD5 (then the key holds those bytes, copied by an earlier
attach). SSE-KMS or SSE-C ETags are no MD5: on such a bucket a refused copy stays
refused.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from gql_api.images.base import (
    DEFAULT_MAX_IMAGE_BYTES,
    Clock,
    CloudImageStorage,
    ImageObject,
    ImageStorageError,
    NotAttachable,
    UploadUrl,
    check_ttl,
    pending_name,
    plan_uploads,
    utc_now,
)
from gql_api.images.keys import content_type_of

if TYPE_CHECKING:
    from botocore.exceptions import ClientError
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import HeadObjectOutputTypeDef, ObjectIdentifierTypeDef

LOCAL_REGION = "us-east-1"  # for local servers when no region is configured
MD5_ETAG = re.compile(r'"[0-9a-f]{32}"')  # a multipart upload's ETag ends "-<parts>"
# An upload PUT's signed headers: those handed out (``upload_headers``), and the host.
PUT_SIGNED_HEADERS = {"content-type", "content-length", "if-none-match", "host"}


def upload_headers(content_type: str, size: int) -> tuple[tuple[str, str], ...]:
    """The headers an upload PUT is signed with, as the client sends them."""
    return (("Content-Type", content_type), ("Content-Length", str(size)), ("If-None-Match", "*"))


class S3ImageStorage(CloudImageStorage["S3Client"]):
    name = "s3"
    fix = "create it or grant s3:ListBucket, s3:PutObject, s3:GetObject and s3:DeleteObject on it"

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
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
        self.endpoint_url = endpoint_url
        self.region = region
        self._exit_stack: contextlib.AsyncExitStack | None = None

    async def _connect(self) -> S3Client:
        import aioboto3
        from aiobotocore.config import AioConfig

        session = aioboto3.Session()
        region = self.region or session.region_name
        if region is None:
            if self.endpoint_url is None:
                raise ImageStorageError("no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION)")
            region = LOCAL_REGION
        config = AioConfig(
            signature_version="s3v4",
            # A local server answers on one host name: no bucket sub-domains there.
            s3={"addressing_style": "path"} if self.endpoint_url else None,
            connect_timeout=min(self.timeout, 3.0),
            read_timeout=self.timeout,
            retries={"mode": "standard", "total_max_attempts": 3},
        )
        stack = contextlib.AsyncExitStack()
        client = await stack.enter_async_context(
            session.client("s3", region_name=region, endpoint_url=self.endpoint_url, config=config)
        )
        self._exit_stack = stack
        return client

    async def upload_urls(
        self,
        user_id: str,
        content_types: Sequence[str],
        ttl: timedelta,
        sizes: Sequence[int] | None = None,
    ) -> list[UploadUrl]:
        check_ttl(ttl)
        uploads = plan_uploads(user_id, content_types, sizes, self.max_bytes)
        client = await self._opened()
        expires_at = self._clock() + ttl
        seconds = int(ttl.total_seconds())
        urls = []
        for key, content_type, size in uploads:
            if size is not None:  # single-use and exact: a PUT
                url = await self._put_url(client, key, content_type, size, seconds)
                headers = upload_headers(content_type, size)
                urls.append(UploadUrl(key, url, "PUT", headers, expires_at))
                continue
            post = await client.generate_presigned_post(
                self.bucket,
                pending_name(key),
                Fields={"Content-Type": content_type},
                # Exact conditions only: S3 refuses a form field that none of them names.
                Conditions=[
                    {"Content-Type": content_type},
                    ["content-length-range", 1, self.max_bytes],
                ],
                ExpiresIn=seconds,
            )
            fields = tuple((str(name), str(value)) for name, value in post["fields"].items())
            urls.append(UploadUrl(key, post["url"], "POST", (), expires_at, fields))
        return urls

    async def _put_url(
        self, client: S3Client, key: str, content_type: str, size: int, seconds: int
    ) -> str:
        """A presigned PUT of exactly ``size`` bytes of ``content_type``, create-only."""
        url = await client.generate_presigned_url(
            "put_object",
            Params={
                "Bucket": self.bucket,
                "Key": pending_name(key),
                "ContentType": content_type,
                "ContentLength": size,
                "IfNoneMatch": "*",
            },
            ExpiresIn=seconds,
        )
        signed = parse_qs(urlsplit(url).query).get("X-Amz-SignedHeaders", [""])[0].split(";")
        # botocore picks what it signs; S3 enforces only those, and clients send only ours.
        if set(signed) != PUT_SIGNED_HEADERS:
            raise ImageStorageError(f"botocore signed {signed} for an upload PUT, not ours")
        return url

    async def _signed_read_urls(self, client: S3Client, keys: Sequence[str]) -> list[str]:
        seconds = int(self.read_ttl.total_seconds())
        return [
            await client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=seconds
            )
            for key in keys
        ]

    async def inspect(self, key: str) -> ImageObject | None:
        from botocore.exceptions import ClientError

        client = await self._opened()
        try:
            head = await client.head_object(Bucket=self.bucket, Key=pending_name(key))
        except ClientError as error:
            if _status(error) == 404:
                return None
            raise
        return ImageObject(head["ContentLength"], head.get("ContentType"), head["ETag"])

    async def attach(self, key: str, token: str) -> bool:
        from botocore.exceptions import ClientError

        client = await self._opened()
        try:
            await client.copy_object(
                Bucket=self.bucket,
                Key=key,
                CopySource={"Bucket": self.bucket, "Key": pending_name(key)},
                CopySourceIfMatch=token,
                IfNoneMatch="*",
                # The served image carries only its key's type: no header or metadata the
                # upload may have added (Content-Disposition, Content-Encoding...).
                MetadataDirective="REPLACE",
                ContentType=content_type_of(key) or "application/octet-stream",
            )
        except ClientError as error:
            # 404: the upload is gone; 412: replaced, or the key is taken; 409: a race.
            if _status(error) not in (404, 409, 412):
                raise
            if not await self._holds(client, key, token):
                raise NotAttachable(key) from error
            return False
        return True

    async def _holds(self, client: S3Client, key: str, token: str) -> bool:
        """Whether ``key`` already holds the bytes of the upload whose ETag is ``token``
        (an earlier attach's copy): one HeadObject, on a refused copy only."""
        try:
            head = await client.head_object(Bucket=self.bucket, Key=key)
        # Unknown counts as not held: the caller would undo a maybe-copy, maybe another's.
        except Exception:  # noqa: BLE001
            return False
        return _md5_etag(head) == token

    async def _delete_objects(self, client: S3Client, names: list[str]) -> None:
        objects: list[ObjectIdentifierTypeDef] = [{"Key": name} for name in names]
        answer = await client.delete_objects(
            Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
        )
        if answer.get("Errors"):
            raise ImageStorageError(f"S3 did not delete {len(answer['Errors'])} of the objects")

    async def _probe(self, client: S3Client) -> str:
        await client.head_bucket(Bucket=self.bucket)
        reads = "public base URL" if self.public_base_url else "presigned GET"
        return f"uploads presigned PUT (sizes given) or POST, {reads}"

    async def _disconnect(self, client: S3Client) -> None:
        stack, self._exit_stack = self._exit_stack, None
        if stack is not None:
            await stack.aclose()


def _md5_etag(head: HeadObjectOutputTypeDef) -> str | None:
    """The object's ETag if it is the MD5 of its bytes (S3 computes it; a client cannot
    set it): a single-part object stored plain or SSE-S3, not SSE-KMS nor SSE-C."""
    etag = head["ETag"]
    plain = head.get("ServerSideEncryption", "AES256") == "AES256"
    if plain and "SSECustomerAlgorithm" not in head and MD5_ETAG.fullmatch(etag):
        return etag
    return None


def _status(error: ClientError) -> int | None:
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status if isinstance(status, int) else None
