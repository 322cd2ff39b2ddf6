"""Attaching is idempotent, on each provider's local server: a refused copy succeeds when
the key already holds the bytes of the upload inspected (an earlier attach's copy, left
in place when a create's outcome is unknown), and stays refused for any other bytes.
And upload URLs are single-use where the cloud allows it, and exact.

Azurite enforces the copy's conditions itself; moto and the Cloud Storage emulator
ignore them, so here they are made to refuse a copy onto a taken key as S3 and Cloud
Storage do (``refusing_taken_keys``). Every request the storage sends is recorded, to
show the normal path costs one copy and a refused one a single read more. Likewise
Azurite refuses a second upload through a create-only SAS, and moto a second PUT with
``If-None-Match: *`` (412); the emulator ignores the signed precondition and size range,
and moto the POST policy and every signature (so a PUT's exact Content-Length), so the
tests check those themselves (tests/signatures.py).
"""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from gql_api.images import ImageInputError, ImageStorage, ImageStorageError, NotAttachable
from gql_api.images.base import pending_name
from gql_api.images.gcs import PRECONDITION_HEADER, SIZE_HEADER
from gql_api.images.s3 import S3ImageStorage, _md5_etag
from tests import image_storages
from tests.image_storages import (
    OTHER,
    PNG,
    SMALL,
    TTL,
    record_requests,
    refusing_taken_keys,
    send,
    send_upload,
    write_directly,
)
from tests.signatures import (
    gcs_v4_signature_valid,
    s3_post_policy_refusal,
    s3_sigv4_signature_valid,
)

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
    """Attached, then the upload replaced (S3's POST URL still can, see below): its new
    version differs from the key's bytes, so attaching it is refused, and the key keeps
    the first image."""
    (upload,) = await storage.upload_urls("alice", ["image/jpeg"], TTL)
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await send(http, upload, SMALL)).status_code < 300
    first = await storage.inspect(upload.key)
    assert first is not None
    await storage.attach(upload.key, first.token)
    await write_directly(storage, pending_name(upload.key), OTHER)
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


# --- upload URLs: single-use where the cloud allows it, and exact ----------------------------


async def test_a_second_upload_through_the_same_url_is_refused_where_the_cloud_allows(
    storage: ImageStorage, gcs_key: rsa.RSAPrivateKey
) -> None:
    """Azure (Azurite too) refuses a Put Blob through a create-only SAS once the blob
    exists. Cloud Storage refuses a PUT whose signed ``x-goog-if-generation-match: 0``
    does not hold; the emulator ignores it, so the test checks the signature binds it.
    An S3 POST takes no condition: the second upload replaces the first (the attach
    copies only the version it inspected)."""
    (upload,) = await storage.upload_urls("alice", ["image/jpeg"], TTL)
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await send(http, upload, SMALL)).status_code < 300
        first = await storage.inspect(upload.key)
        again = await send(http, upload, OTHER)
    now = await storage.inspect(upload.key)
    assert first is not None and now is not None
    query = dict(parse_qsl(urlsplit(upload.url).query))
    if storage.name == "azure":
        assert query["sp"] == "c"  # create only: no write, so no overwrite
        assert again.status_code == 403 and "AuthorizationPermissionMismatch" in again.text
        assert now.token == first.token  # the first upload, untouched
    if storage.name == "gcs":
        headers = dict(upload.headers)
        assert headers[PRECONDITION_HEADER] == "0"
        assert PRECONDITION_HEADER in query["X-Goog-SignedHeaders"].split(";")
        public_key = gcs_key.public_key()
        assert gcs_v4_signature_valid("PUT", upload.url, headers, public_key)
        dropped = {n: v for n, v in headers.items() if n != PRECONDITION_HEADER}
        aimed = {**headers, PRECONDITION_HEADER: first.token.partition(":")[0]}
        for changed in (dropped, aimed):  # neither left out nor aimed at the stored version
            assert not gcs_v4_signature_valid("PUT", upload.url, changed, public_key)
        assert again.status_code < 300  # the emulator ignores it; Cloud Storage answers 412
    if storage.name == "s3":
        assert again.status_code < 300 and now.token != first.token


@pytest.mark.parametrize("storage", ["s3"], indirect=True)
async def test_the_s3_policy_lets_no_field_ride_along_beyond_those_handed_out(
    storage: ImageStorage,
) -> None:
    """Each condition is an exact match on a field handed out (and the bucket), plus the
    size range: S3 refuses any other field. moto checks no policy, so it stores one."""
    (upload,) = await storage.upload_urls("alice", ["image/png"], TTL)
    fields, bucket, now = dict(upload.fields), storage.bucket, datetime.now(UTC)
    conditions = json.loads(base64.b64decode(fields["policy"]))["conditions"]
    exact = {k.lower(): v for c in conditions if isinstance(c, dict) for k, v in c.items()}
    handed_out = {n.lower(): v for n, v in fields.items() if n not in ("policy", "x-amz-signature")}
    assert exact == handed_out | {"bucket": bucket}
    assert [c for c in conditions if not isinstance(c, dict)] == [
        ["content-length-range", 1, storage.max_bytes]  # no starts-with anywhere
    ]
    for name, value in (
        ("Content-Disposition", "attachment"),
        ("Content-Encoding", "gzip"),
        ("Cache-Control", "max-age=31536000"),
        ("Expires", "Thu, 01 Jan 2099 00:00:00 GMT"),
        ("x-amz-meta-owner", "mallory"),
        ("acl", "public-read"),
        ("x-amz-storage-class", "GLACIER"),
        ("x-amz-server-side-encryption", "aws:kms"),
        ("x-amz-website-redirect-location", "https://example.test/"),
        ("x-amz-tagging", "<Tagging><TagSet/></Tagging>"),
        ("success_action_status", "201"),
        ("If-None-Match", "*"),
    ):
        refusal = s3_post_policy_refusal({**fields, name: value}, bucket, len(PNG), now)
        assert refusal is not None and name.lower() in refusal, name
    ignored = {**fields, "x-ignore-note": "anything"}  # S3 ignores these fields altogether
    assert s3_post_policy_refusal(ignored, bucket, len(PNG), now) is None
    extra = [*upload.fields, ("Content-Disposition", "attachment")]
    async with httpx.AsyncClient(timeout=10) as http:
        sent = await send_upload(http, "POST", upload.url, [], extra, PNG)
    assert sent.status_code < 300  # moto: S3 would answer 403 (a field not in the policy)


# --- with sizes stated: a PUT of exactly that size, single-use on every cloud ---------------


async def test_sizes_must_be_one_per_upload_within_the_limit(storage: ImageStorage) -> None:
    types, most = ["image/png", "image/gif"], storage.max_bytes
    for sizes in ([1], [1, 1, 1], [], [1, 0], [-1, 1], [1, most + 1]):
        with pytest.raises(ImageInputError):
            await storage.upload_urls("alice", types, TTL, sizes)
    uploads = await storage.upload_urls("alice", types, TTL, [1, most])
    assert [(u.method, u.fields) for u in uploads] == [("PUT", ()), ("PUT", ())]


async def test_with_sizes_a_second_upload_through_the_same_url_is_refused(
    storage: ImageStorage, gcs_key: rsa.RSAPrivateKey
) -> None:
    """moto answers 412 to a PUT whose signed ``If-None-Match: *`` does not hold, as S3
    does; Azurite 403 through the create-only SAS (unchanged by a size). The emulator
    ignores the signed precondition, so the test checks the signature binds it."""
    (upload,) = await storage.upload_urls("alice", ["image/jpeg"], TTL, [len(SMALL)])
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await send(http, upload, SMALL)).status_code < 300
        first = await storage.inspect(upload.key)
        again = await send(http, upload, SMALL)
    now = await storage.inspect(upload.key)
    assert first is not None and now is not None and first.size == len(SMALL)
    headers = dict(upload.headers)
    if storage.name == "s3":
        assert again.status_code == 412 and "PreconditionFailed" in again.text
    if storage.name == "azure":
        assert headers == {"x-ms-blob-type": "BlockBlob", "Content-Type": "image/jpeg"}
        assert again.status_code == 403 and "AuthorizationPermissionMismatch" in again.text
    if storage.name == "gcs":
        assert headers[PRECONDITION_HEADER] == "0"
        assert gcs_v4_signature_valid("PUT", upload.url, headers, gcs_key.public_key())
        dropped = {n: v for n, v in headers.items() if n != PRECONDITION_HEADER}
        assert not gcs_v4_signature_valid("PUT", upload.url, dropped, gcs_key.public_key())
        assert again.status_code < 300  # the emulator ignores it; Cloud Storage answers 412
    else:
        assert now.token == first.token  # the first upload, untouched


@pytest.mark.parametrize("storage", ["s3"], indirect=True)
@pytest.mark.parametrize("user", ["alice", "ünï cödé+1|x@y%z"])
async def test_an_s3_put_binds_the_pending_name_the_type_the_exact_size_and_create_only(
    storage: ImageStorage, user: str
) -> None:
    """moto checks no signature: the test checks it as S3 would, on what a client sends."""
    size, secret = len(PNG), os.environ["AWS_SECRET_ACCESS_KEY"]
    exact, longer = await storage.upload_urls(user, ["image/png"] * 2, TTL, [size, size])
    assert exact.method == "PUT" and exact.fields == ()
    assert exact.headers == (
        ("Content-Type", "image/png"),
        ("Content-Length", str(size)),
        ("If-None-Match", "*"),
    )
    query = dict(parse_qsl(urlsplit(exact.url).query))
    assert query["X-Amz-SignedHeaders"] == "content-length;content-type;host;if-none-match"
    assert int(query["X-Amz-Expires"]) == TTL.total_seconds()
    assert unquote(urlsplit(exact.url).path) == f"/{storage.bucket}/uploads/{exact.key}"
    headers = dict(exact.headers)
    assert s3_sigv4_signature_valid("PUT", exact.url, headers, secret)
    for changed in (
        {"Content-Length": str(size + 1)},
        {"Content-Length": "1"},
        {"Content-Type": "text/html"},
        {"If-None-Match": '"36c912ea353d27dd2c161ac673e75a5f"'},  # an ETag: overwrite others
    ):
        assert not s3_sigv4_signature_valid("PUT", exact.url, {**headers, **changed}, secret)
    for dropped in ("Content-Length", "If-None-Match", "Content-Type"):
        kept = {n: v for n, v in headers.items() if n != dropped}
        assert not s3_sigv4_signature_valid("PUT", exact.url, kept, secret), dropped
    served = exact.url.replace("/uploads/", "/", 1)  # only the server writes the key itself
    for url in (served, longer.url.replace(longer.key.rsplit("/")[-1], "A" * 22 + ".png")):
        assert not s3_sigv4_signature_valid("PUT", url, headers, secret)
    assert not s3_sigv4_signature_valid("GET", exact.url, headers, secret)
    async with httpx.AsyncClient(timeout=10) as http:  # Content-Length from the body
        right = await send(http, exact, PNG)
        wrong = await send(http, longer, PNG + b"x")
    assert right.status_code == 200 and wrong.status_code == 200  # moto: S3 answers 403
    assert s3_sigv4_signature_valid("PUT", exact.url, right.request.headers, secret)
    assert wrong.request.headers["content-length"] == str(size + 1)
    assert not s3_sigv4_signature_valid("PUT", longer.url, wrong.request.headers, secret)


@pytest.mark.parametrize("storage", ["gcs"], indirect=True)
async def test_a_cloud_storage_put_with_a_size_binds_exactly_that_size(
    storage: ImageStorage, gcs_key: rsa.RSAPrivateKey
) -> None:
    size, public_key = len(PNG), gcs_key.public_key()
    (upload,) = await storage.upload_urls("alice", ["image/png"], TTL, [size])
    headers = dict(upload.headers)
    assert headers == {
        "Content-Type": "image/png",
        SIZE_HEADER: f"{size},{size}",
        PRECONDITION_HEADER: "0",
    }
    signed = dict(parse_qsl(urlsplit(upload.url).query))["X-Goog-SignedHeaders"].split(";")
    assert {"content-type", SIZE_HEADER, PRECONDITION_HEADER} <= set(signed)
    assert gcs_v4_signature_valid("PUT", upload.url, headers, public_key)
    for wider in (f"1,{storage.max_bytes}", f"{size},{size + 1}", f"{size - 1},{size}"):
        widened = {**headers, SIZE_HEADER: wider}
        assert not gcs_v4_signature_valid("PUT", upload.url, widened, public_key)


@pytest.mark.parametrize("storage", ["s3"], indirect=True)
async def test_an_s3_put_that_botocore_would_not_bind_is_not_handed_out(
    storage: ImageStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert isinstance(storage, S3ImageStorage) and storage._client is not None
    sign = storage._client.generate_presigned_url

    async def unsized(method: str, Params: dict[str, Any], **options: Any) -> str:
        unbound = {name: value for name, value in Params.items() if name != "ContentLength"}
        return await sign(method, Params=unbound, **options)

    monkeypatch.setattr(storage._client, "generate_presigned_url", unsized)
    with pytest.raises(ImageStorageError, match="botocore signed"):
        await storage.upload_urls("alice", ["image/png"], TTL, [len(PNG)])
