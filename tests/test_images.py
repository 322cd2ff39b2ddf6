"""Image storage against real local servers: moto (S3), Azurite (Azure Blob) and
gcp-storage-emulator (Cloud Storage).

Every round trip uploads real bytes with a plain HTTP client through the URL, headers
and form fields the storage handed out, attaches the upload (inspect, then the
server-side copy) and reads it back through its read URLs. Azurite checks SAS itself;
moto and the Cloud Storage emulator check no signature or POST policy, so the tests
verify those independently (tests/signatures.py).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from gql_api.images import (
    ImageInputError,
    ImageStorage,
    UploadUrl,
    is_valid_image_key,
    open_image_storage,
)
from gql_api.images.azure_blob import AzureBlobImageStorage
from gql_api.ops.doctor import image_checks
from tests import image_storages
from tests.image_storages import (
    GCS_ACCOUNT,
    JPEG,
    PNG,
    PROVIDERS,
    TTL,
    UPLOAD_METHODS,
    attach_uploaded,
    azurite_connection,
    make_bucket,
    provider_settings,
    send,
    with_header,
)
from tests.signatures import (
    gcs_v4_signature_valid,
    s3_post_policy_refusal,
    s3_post_policy_signature_valid,
    s3_sigv4_signature_valid,
)

TEST_TIMEOUT = 60.0  # seconds any one test may take, servers already started

# The shared fixtures, as this module's (the servers start once per module).
azurite_url = image_storages.azurite_url
gcs_url = image_storages.gcs_url
gcs_key = image_storages.gcs_key
gcs_key_file = image_storages.gcs_key_file
storage = image_storages.storage


async def test_bytes_uploaded_through_the_urls_read_back_through_read_urls(
    storage: ImageStorage,
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), httpx.AsyncClient(timeout=10) as http:
        before = datetime.now(UTC)
        uploads = await storage.upload_urls("alice", ["image/png", "image/jpeg"], TTL)
        assert [u.key.rsplit(".", 1)[1] for u in uploads] == ["png", "jpg"]
        for upload in uploads:
            assert upload.key.startswith("alice/")
            assert is_valid_image_key(upload.key, "alice")
            assert not is_valid_image_key(upload.key, "bob")
            assert upload.method == UPLOAD_METHODS[storage.name]
            assert bool(upload.fields) == (upload.method == "POST")
            assert before + TTL - timedelta(seconds=5) <= upload.expires_at
            assert upload.expires_at <= datetime.now(UTC) + TTL
        for upload, body in zip(uploads, [PNG, JPEG], strict=True):
            sent = await send(http, upload, body)
            assert sent.status_code in (200, 201, 204), sent.text
            await attach_uploaded(storage, upload.key)
        urls = await storage.read_urls([u.key for u in uploads])
        assert len(urls) == 2
        for url, body, content_type in zip(
            urls, [PNG, JPEG], ["image/png", "image/jpeg"], strict=True
        ):
            read = await http.get(url)
            assert read.status_code == 200, read.text
            assert read.content == body
            assert read.headers["content-type"] == content_type
        assert await storage.read_urls([]) == []


async def test_user_ids_with_spaces_and_symbols_round_trip(storage: ImageStorage) -> None:
    user = "ünï cödé+1|x@y%z"
    async with asyncio.timeout(TEST_TIMEOUT), httpx.AsyncClient(timeout=10) as http:
        (upload,) = await storage.upload_urls(user, ["image/gif"], TTL)
        assert upload.key.startswith(f"{user}/")
        assert is_valid_image_key(upload.key, user)
        assert (await send(http, upload, PNG)).status_code in (200, 201, 204)
        await attach_uploaded(storage, upload.key)
        (url,) = await storage.read_urls([upload.key])
        read = await http.get(url)
        assert read.status_code == 200
        assert read.content == PNG


async def test_each_upload_gets_its_own_fresh_key(storage: ImageStorage) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        first = await storage.upload_urls("alice", ["image/webp"] * 4, TTL)
        second = await storage.upload_urls("alice", ["image/gif"], TTL)
        keys = {u.key for u in first + second}
        assert len(keys) == 5
        assert all(is_valid_image_key(key, "alice") for key in keys)


@pytest.mark.parametrize(
    ("user_id", "content_type"),
    [
        ("alice", "text/html"),
        ("alice", "image/svg+xml"),
        ("alice", ""),
        ("a/b", "image/png"),
        ("", "image/png"),
        ("..", "image/png"),
        ("a\nb", "image/png"),
    ],
)
async def test_content_types_off_the_list_and_unusable_user_ids_are_refused(
    storage: ImageStorage, user_id: str, content_type: str
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        with pytest.raises(ImageInputError):
            await storage.upload_urls(user_id, ["image/png", content_type], TTL)


async def test_content_types_are_matched_without_case_or_spaces(storage: ImageStorage) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        (upload,) = await storage.upload_urls("alice", [" Image/PNG "], TTL)
        assert upload.key.endswith(".png")
        assert ("Content-Type", "image/png") in upload.headers + upload.fields


async def test_doctor_check_passes_for_a_bucket_that_exists(storage: ImageStorage) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        checks = await storage.check()
        assert checks and all(ok for ok, _ in checks), checks
        assert storage.bucket in checks[0][1]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_doctor_fails_for_a_missing_bucket_naming_it(
    provider: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = await make_bucket(provider, request)
    settings = provider_settings(provider, bucket, request, monkeypatch)
    async with asyncio.timeout(TEST_TIMEOUT):
        present = await image_checks(settings)
        missing = await image_checks(settings.model_copy(update={"images_bucket": "no-such-b"}))
    assert [ok for ok, _ in present] == [True]
    assert [ok for ok, _ in missing] == [False]
    assert "no-such-b" in missing[0][1]


# Not Azure: its upload SAS cannot bind the Content-Type, so settings refuse a public
# base URL there (tests/test_image_keys.py); only a signed read fixes the type served.
@pytest.mark.parametrize("provider", ["s3", "gcs"])
async def test_a_public_bucket_is_read_through_the_base_url_without_signing(
    provider: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = await make_bucket(provider, request, public=True)
    settings = provider_settings(provider, bucket, request, monkeypatch)
    server = {"s3": "moto_url", "azure": "azurite_url", "gcs": "gcs_url"}[provider]
    base = f"{request.getfixturevalue(server)}/{bucket}/"
    public = open_image_storage(settings.model_copy(update={"images_public_base_url": base}))
    assert public is not None
    try:
        async with asyncio.timeout(TEST_TIMEOUT), httpx.AsyncClient(timeout=10) as http:
            (upload,) = await public.upload_urls("alice", ["image/png"], TTL)
            assert (await send(http, upload, PNG)).status_code in (200, 201, 204)
            await attach_uploaded(public, upload.key)
            (url,) = await public.read_urls([upload.key])
            assert url == base + upload.key
            assert "?" not in url
            read = await http.get(url)
            assert read.status_code == 200
            assert read.content == PNG
    finally:
        await public.close()


async def test_public_urls_percent_encode_keys_but_keep_slashes(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = provider_settings("s3", "any-bucket", request, monkeypatch).model_copy(
        update={"images_public_base_url": "https://cdn.example.test/images"}
    )
    public = open_image_storage(settings)
    assert public is not None
    urls = await public.read_urls(["al ice/x#y.png", "bob/z.gif"])
    assert urls == [
        "https://cdn.example.test/images/al%20ice/x%23y.png",
        "https://cdn.example.test/images/bob/z.gif",
    ]
    await public.close()


# S3 and Cloud Storage: the content type is part of the signature. Their local servers
# check no signature, so the tests check it as the clouds would.


def sent_headers(upload: UploadUrl, **changes: str) -> dict[str, str]:
    headers = dict(upload.headers)
    headers.update({name.replace("_", "-"): value for name, value in changes.items()})
    return headers


@pytest.mark.parametrize("storage", ["s3"], indirect=True)
@pytest.mark.parametrize("user", ["alice", "ünï cödé+1|x@y%z"])
async def test_s3_upload_policy_binds_the_pending_name_the_content_type_and_the_size(
    storage: ImageStorage, user: str
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        (upload,) = await storage.upload_urls(user, ["image/png"], TTL)
        read_url, other_url = await storage.read_urls([upload.key, f"{user}/other.png"])
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    fields, bucket, limit = dict(upload.fields), storage.bucket, storage.max_bytes
    assert upload.method == "POST" and upload.headers == ()
    assert fields["key"] == f"uploads/{upload.key}"
    assert s3_post_policy_signature_valid(fields, secret)
    policy = json.loads(base64.b64decode(fields["policy"]))
    assert ["content-length-range", 1, limit] in policy["conditions"]
    widened = json.dumps({**policy, "conditions": policy["conditions"][:-1]}).encode()
    assert not s3_post_policy_signature_valid(
        {**fields, "policy": base64.b64encode(widened).decode()}, secret
    )
    now = datetime.now(UTC)
    assert s3_post_policy_refusal(fields, bucket, limit, now) is None
    assert s3_post_policy_refusal(fields, bucket, 1, now) is None
    for size in (limit + 1, 0):
        assert "outside" in (s3_post_policy_refusal(fields, bucket, size, now) or "")
    for changed in (
        {"key": upload.key},  # the served name: only the server writes it
        {"key": f"uploads/{user}/AAAAAAAAAAAAAAAAAAAAAA.png"},
        {"Content-Type": "text/html"},
        {"success_action_redirect": "https://example.test/"},
    ):
        assert s3_post_policy_refusal({**fields, **changed}, bucket, 100, now) is not None
    assert s3_post_policy_refusal(fields, "another-bucket", 100, now) is not None
    assert s3_post_policy_refusal(fields, bucket, 100, now + TTL + timedelta(seconds=5))
    assert s3_sigv4_signature_valid("GET", read_url, {}, secret)
    assert not s3_sigv4_signature_valid("PUT", read_url, {}, secret)
    assert s3_sigv4_signature_valid("GET", other_url, {}, secret)


@pytest.mark.parametrize("storage", ["gcs"], indirect=True)
@pytest.mark.parametrize("user", ["alice", "ünï cödé+1|x@y%z"])
async def test_gcs_v4_signature_binds_the_content_type_the_size_and_the_pending_name(
    storage: ImageStorage, gcs_key: rsa.RSAPrivateKey, user: str
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        (upload,) = await storage.upload_urls(user, ["image/jpeg"], TTL)
        (read_url,) = await storage.read_urls([upload.key])
    public_key = gcs_key.public_key()
    query = dict(parse_qsl(urlsplit(upload.url).query))
    assert query["X-Goog-Algorithm"] == "GOOG4-RSA-SHA256"
    assert query["X-Goog-Credential"].startswith(f"{GCS_ACCOUNT}/")
    assert {"content-type", "x-goog-content-length-range", "x-goog-if-generation-match"} <= set(
        query["X-Goog-SignedHeaders"].split(";")
    )
    assert ("x-goog-content-length-range", f"1,{storage.max_bytes}") in upload.headers
    assert urlsplit(upload.url).path.startswith(f"/{storage.bucket}/uploads/")
    signed_at = datetime.strptime(query["X-Goog-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    lifetime = timedelta(seconds=int(query["X-Goog-Expires"]))
    assert abs(signed_at + lifetime - upload.expires_at) <= timedelta(seconds=2)
    assert gcs_v4_signature_valid("PUT", upload.url, sent_headers(upload), public_key)
    wrong_type = sent_headers(upload, **{"Content-Type": "image/png"})
    assert not gcs_v4_signature_valid("PUT", upload.url, wrong_type, public_key)
    # Cloud Storage refuses a body outside the range; the client can neither widen nor drop it.
    wider = sent_headers(upload, **{"x-goog-content-length-range": "1,99999999999"})
    assert not gcs_v4_signature_valid("PUT", upload.url, wider, public_key)
    dropped = {n: v for n, v in upload.headers if n != "x-goog-content-length-range"}
    assert not gcs_v4_signature_valid("PUT", upload.url, dropped, public_key)
    assert not gcs_v4_signature_valid(
        "PUT", other_path(upload.url), sent_headers(upload), public_key
    )
    served = upload.url.replace("/uploads/", "/", 1)  # only the server writes the key itself
    assert not gcs_v4_signature_valid("PUT", served, sent_headers(upload), public_key)
    assert not gcs_v4_signature_valid("GET", upload.url, sent_headers(upload), public_key)
    assert gcs_v4_signature_valid("GET", read_url, {}, public_key)
    assert not gcs_v4_signature_valid("PUT", read_url, {}, public_key)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    assert not gcs_v4_signature_valid("PUT", upload.url, sent_headers(upload), other_key)


@pytest.mark.parametrize("storage", ["gcs"], indirect=True)
async def test_gcs_read_urls_are_reused_while_fresh(storage: ImageStorage) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        first = await storage.read_urls(["alice/a.png", "alice/b.png"])
        again = await storage.read_urls(["alice/b.png", "alice/a.png", "alice/a.png"])
    assert again == [first[1], first[0], first[0]]


def other_path(url: str) -> str:
    """The same signed URL aimed at another object of the same user."""
    parts = urlsplit(url)
    folder = parts.path.rsplit("/", 1)[0]
    return urlunsplit(parts._replace(path=f"{folder}/AAAAAAAAAAAAAAAAAAAAAA.png"))


# Azure Blob: Azurite checks SAS like Azure does.


@pytest.fixture
async def azure_storage(
    azurite_url: str, request: pytest.FixtureRequest
) -> AsyncIterator[AzureBlobImageStorage]:
    container = await make_bucket("azure", request)
    storage = AzureBlobImageStorage(container, connection_string=azurite_connection(azurite_url))
    yield storage
    await storage.close()


async def test_azure_refuses_a_tampered_or_misused_upload_sas(
    azure_storage: AzureBlobImageStorage,
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), httpx.AsyncClient(timeout=10) as http:
        (upload,) = await azure_storage.upload_urls("alice", ["image/png"], TTL)
        headers = list(upload.headers)
        query = dict(parse_qsl(urlsplit(upload.url).query))
        assert query["sp"] == "c"  # create only: no write, read nor delete
        tampered = upload.url.replace("sig=", "sig=A", 1)
        assert (await http.put(tampered, headers=headers, content=PNG)).status_code == 403
        other = other_path(upload.url)
        assert (await http.put(other, headers=headers, content=PNG)).status_code == 403
        widened = upload.url.replace("sp=c&", "sp=cw&", 1)
        assert widened != upload.url
        assert (await http.put(widened, headers=headers, content=PNG)).status_code == 403
        assert (await send(http, upload, PNG)).status_code == 201
        assert (await http.get(upload.url)).status_code == 403  # no read with an upload SAS
        assert (await http.delete(upload.url)).status_code == 403
        await attach_uploaded(azure_storage, upload.key)
        (read_url,) = await azure_storage.read_urls([upload.key])
        assert (await http.get(read_url)).content == PNG
        assert (await http.put(read_url, headers=headers, content=JPEG)).status_code == 403
        assert (await http.get(read_url)).content == PNG


async def test_azure_refuses_an_expired_sas(
    azurite_url: str, request: pytest.FixtureRequest
) -> None:
    container = await make_bucket("azure", request)
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    past = AzureBlobImageStorage(
        container, connection_string=azurite_connection(azurite_url), clock=lambda: an_hour_ago
    )
    try:
        async with asyncio.timeout(TEST_TIMEOUT), httpx.AsyncClient(timeout=10) as http:
            (upload,) = await past.upload_urls("alice", ["image/png"], TTL)
            assert upload.expires_at < datetime.now(UTC)
            assert (await send(http, upload, PNG)).status_code == 403
            (read_url,) = await past.read_urls([upload.key])
            assert (await http.get(read_url)).status_code == 403
    finally:
        await past.close()


async def test_azure_serves_an_image_as_its_keys_type_whatever_was_uploaded(
    azure_storage: AzureBlobImageStorage,
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), httpx.AsyncClient(timeout=10) as http:
        (upload,) = await azure_storage.upload_urls("alice", ["image/png"], TTL)
        html = b"<script>alert(1)</script>"
        headers = with_header(upload, "Content-Type", "text/html")
        sent = await http.request(upload.method, upload.url, headers=headers, content=html)
        assert sent.status_code == 201
        await attach_uploaded(azure_storage, upload.key)  # the service would refuse it first
        (read_url,) = await azure_storage.read_urls([upload.key])
        read = await http.get(read_url)
        assert read.status_code == 200
        assert read.headers["content-type"] == "image/png"


async def test_azure_a_public_container_would_serve_what_was_uploaded(
    azurite_url: str, request: pytest.FixtureRequest
) -> None:
    """Why settings refuse a public base URL with Azure: an unsigned read serves the blob
    with the type its uploader sent, HTML included; only the read SAS fixes it."""
    container = await make_bucket("azure", request, public=True)
    storage = AzureBlobImageStorage(container, connection_string=azurite_connection(azurite_url))
    try:
        async with asyncio.timeout(TEST_TIMEOUT), httpx.AsyncClient(timeout=10) as http:
            (upload,) = await storage.upload_urls("alice", ["image/png"], TTL)
            headers = with_header(upload, "Content-Type", "text/html")
            html = b"<script>alert(1)</script>"
            sent = await http.request(upload.method, upload.url, headers=headers, content=html)
            assert sent.status_code == 201
            await attach_uploaded(storage, upload.key)  # the service would refuse it first
            unsigned = await http.get(f"{azurite_url}/{container}/{upload.key}")
            assert unsigned.status_code == 200
            assert unsigned.headers["content-type"] == "text/html"
            (read_url,) = await storage.read_urls([upload.key])
            assert (await http.get(read_url)).headers["content-type"] == "image/png"
    finally:
        await storage.close()
