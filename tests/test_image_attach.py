"""Attaching is idempotent, on each provider's local server: a refused copy succeeds when
the key already holds the bytes of the upload inspected (an earlier attach's copy, left
in place when a create's outcome is unknown), and stays refused for any other bytes.

Azurite enforces the copy's conditions itself; moto and the Cloud Storage emulator
ignore them, so here they are made to refuse a copy onto a taken key as S3 and Cloud
Storage do (``refusing_taken_keys``). Every request the storage sends is recorded, to
show the normal path costs one copy and a refused one a single read more.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import httpx
import pytest

from gql_api.images import ImageStorage, NotAttachable
from gql_api.images.azure_blob import AzureBlobImageStorage
from gql_api.images.gcs import GcsImageStorage
from gql_api.images.s3 import S3ImageStorage, _md5_etag
from tests import image_storages
from tests.image_storages import OTHER, SMALL, TTL, record_requests, refusing_taken_keys, send

# The shared fixtures, as this module's (the servers start once per module).
azurite_url = image_storages.azurite_url
gcs_url = image_storages.gcs_url
gcs_key = image_storages.gcs_key
gcs_key_file = image_storages.gcs_key_file
storage = image_storages.storage


async def uploaded(storage: ImageStorage, body: bytes = SMALL) -> tuple[str, str]:
    """A fresh key with ``body`` uploaded through its URL, and its inspected token."""
    (upload,) = await storage.upload_urls("alice", ["image/jpeg"], TTL)
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await send(http, upload, body)).status_code < 300
    pending = await storage.inspect(upload.key)
    assert pending is not None
    return upload.key, pending.token


async def write_directly(storage: ImageStorage, key: str, body: bytes) -> None:
    """Write ``body`` at ``key`` through the SDK, as no attach would."""
    if isinstance(storage, S3ImageStorage):
        assert storage._client is not None
        await storage._client.put_object(
            Bucket=storage.bucket, Key=key, Body=body, ContentType="image/jpeg"
        )
    elif isinstance(storage, GcsImageStorage):
        assert storage._bucket is not None
        blob = storage._bucket.blob(key)
        await asyncio.to_thread(blob.upload_from_string, body, content_type="image/jpeg")
    else:
        assert isinstance(storage, AzureBlobImageStorage) and storage._client is not None
        await storage._client.get_container_client(storage.bucket).upload_blob(key, body)


async def served(storage: ImageStorage, key: str) -> bytes:
    (url,) = await storage.read_urls([key])
    async with httpx.AsyncClient(timeout=10) as http:
        read = await http.get(url)
    assert read.status_code == 200, read.text
    return read.content


def kinds(sent: image_storages.Sent) -> list[str]:
    return [kind for kind, _ in sent]


async def test_attaching_the_same_upload_twice_succeeds_with_one_copy(
    storage: ImageStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, token = await uploaded(storage)
    refusing_taken_keys(storage, monkeypatch)
    sent = record_requests(storage, monkeypatch)
    await storage.attach(key, token)
    assert kinds(sent) == ["copy"]  # the normal path: one copy, nothing else
    sent.clear()
    await storage.attach(key, token)  # a retry whose first write did not happen
    assert kinds(sent) == ["copy", "read"]  # refused (the key is taken), then one read
    assert await served(storage, key) == SMALL
    again = await storage.inspect(key)  # the upload is kept, untouched
    assert again is not None and again.token == token


async def test_a_key_holding_other_bytes_stays_refused(
    storage: ImageStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, token = await uploaded(storage)
    await write_directly(storage, key, OTHER)
    refusing_taken_keys(storage, monkeypatch)
    sent = record_requests(storage, monkeypatch)
    with pytest.raises(NotAttachable):
        await storage.attach(key, token)
    assert kinds(sent) == ["copy", "read"]
    assert await served(storage, key) == OTHER  # not overwritten


async def test_the_same_bytes_written_otherwise_count_only_where_a_hash_proves_them(
    storage: ImageStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S3 (ETag) and Cloud Storage (md5Hash) compute the MD5 themselves: the same bytes at
    the key are the upload's. Azure's Content-MD5 can be set through the upload SAS, so
    only a copy stamped with the upload's ETag counts there."""
    key, token = await uploaded(storage)
    await write_directly(storage, key, SMALL)
    refusing_taken_keys(storage, monkeypatch)
    if storage.name == "azure":
        with pytest.raises(NotAttachable):
            await storage.attach(key, token)
    else:
        await storage.attach(key, token)
    assert await served(storage, key) == SMALL


async def test_a_replaced_upload_is_refused_onto_the_copy_of_the_one_before(
    storage: ImageStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attached, then replaced through the still-valid URL: its new version differs from
    the key's bytes, so attaching it is refused, and the key keeps the first image."""
    (upload,) = await storage.upload_urls("alice", ["image/jpeg"], TTL)
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await send(http, upload, SMALL)).status_code < 300
        first = await storage.inspect(upload.key)
        assert first is not None
        await storage.attach(upload.key, first.token)
        assert (await send(http, upload, OTHER)).status_code < 300
    replaced = await storage.inspect(upload.key)
    assert replaced is not None and replaced.token != first.token
    refusing_taken_keys(storage, monkeypatch)
    with pytest.raises(NotAttachable):
        await storage.attach(upload.key, replaced.token)
    assert await served(storage, upload.key) == SMALL


def test_only_an_md5_etag_proves_the_bytes_on_s3() -> None:
    """SSE-KMS and SSE-C ETags are no MD5, nor a multipart upload's (with "-<parts>")."""
    md5 = '"36c912ea353d27dd2c161ac673e75a5f"'

    def etag(**head: str) -> str | None:
        return _md5_etag(cast(Any, head))

    assert etag(ETag=md5) == etag(ETag=md5, ServerSideEncryption="AES256") == md5
    assert etag(ETag=md5, ServerSideEncryption="aws:kms") is None
    assert etag(ETag=md5, SSECustomerAlgorithm="AES256") is None
    assert etag(ETag=md5[:-1] + '-2"') is None
