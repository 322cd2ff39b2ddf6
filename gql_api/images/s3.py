"""Amazon S3: presigned PUT (content type signed) and presigned GET, with aioboto3.

Presigning is SigV4 computed in the process from the credentials the client holds:
no request per URL. One client per process, opened once. A URL signed with temporary
credentials (Lambda's role) stops working when they expire, whatever its lifetime.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from gql_api.images.base import (
    Check,
    Clock,
    ImageStorageError,
    UploadUrl,
    check_ttl,
    plan_uploads,
    public_url,
    utc_now,
)

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

LOCAL_REGION = "us-east-1"  # for local servers when no region is configured


class S3ImageStorage:
    name = "s3"

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        public_base_url: str | None = None,
        read_ttl: timedelta = timedelta(hours=1),
        timeout: float = 5.0,
        clock: Clock = utc_now,
    ) -> None:
        check_ttl(read_ttl)
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.region = region
        self.public_base_url = public_base_url
        self.read_ttl = read_ttl
        self.timeout = timeout
        self._clock = clock
        self._client: S3Client | None = None
        self._exit_stack: contextlib.AsyncExitStack | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        await self._opened()

    async def _opened(self) -> S3Client:
        async with self._lock:
            if self._client is None:
                self._client = await self._connect()
            return self._client

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
        self, user_id: str, content_types: Sequence[str], ttl: timedelta
    ) -> list[UploadUrl]:
        check_ttl(ttl)
        uploads = plan_uploads(user_id, content_types)
        client = await self._opened()
        expires_at = self._clock() + ttl
        seconds = int(ttl.total_seconds())
        urls = []
        for key, content_type in uploads:
            url = await client.generate_presigned_url(
                "put_object",
                Params={"Bucket": self.bucket, "Key": key, "ContentType": content_type},
                ExpiresIn=seconds,
                HttpMethod="PUT",
            )
            headers = (("Content-Type", content_type),)
            urls.append(UploadUrl(key, url, "PUT", headers, expires_at))
        return urls

    async def read_urls(self, keys: Sequence[str]) -> list[str]:
        if self.public_base_url is not None:
            return [public_url(self.public_base_url, key) for key in keys]
        if not keys:
            return []
        client = await self._opened()
        seconds = int(self.read_ttl.total_seconds())
        return [
            await client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=seconds
            )
            for key in keys
        ]

    async def check(self) -> list[Check]:
        try:
            client = await self._opened()
            await client.head_bucket(Bucket=self.bucket)
        except Exception as error:  # noqa: BLE001 - reported as a failed check
            return [
                (
                    False,
                    f"images s3: bucket {self.bucket} does not answer: {error}; fix: create it "
                    "or grant s3:ListBucket, s3:PutObject and s3:GetObject on it",
                )
            ]
        reads = "public base URL" if self.public_base_url else "presigned GET"
        return [(True, f"images s3: bucket {self.bucket} answers; uploads presigned PUT, {reads}")]

    async def close(self) -> None:
        stack, self._exit_stack, self._client = self._exit_stack, None, None
        if stack is not None:
            await stack.aclose()
