"""The image storages of the tests: each provider's local server, a fresh bucket on it,
settings and an open storage as the app builds them, uploads sent as a browser sends
them, and a record of the requests a storage sends. Shared by tests/test_images.py,
test_upload_flow.py, test_image_limits.py and test_image_attach.py (import the fixtures
into the test module).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx
import pytest
import requests
from aiobotocore.awsrequest import HttpxAWSResponse
from botocore.compat import HTTPHeaders
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gql_api.images import ImageStorage, UploadUrl, open_image_storage
from gql_api.images.azure_blob import AzureBlobImageStorage
from gql_api.images.gcs import GcsImageStorage
from gql_api.images.s3 import S3ImageStorage
from gql_api.settings import Settings
from tests import servers

PROVIDERS = ["s3", "azure", "gcs"]
TEST_TIMEOUT = 60.0  # seconds any one test may take, servers already started
TTL = timedelta(minutes=15)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
JPEG = b"\xff\xd8\xff\xe0" + os.urandom(3000) + b"\xff\xd9"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
GCS_PROJECT = "demo-gql-api"
SMALL = b"\xff\xd8\xff\xe0" + bytes(range(200)) + b"\xff\xd9"  # a .jpg of 206 bytes
OTHER = b"\xff\xd8\xff\xe1" + bytes(300) + b"\xff\xd9"  # another one
GCS_ACCOUNT = f"images@{GCS_PROJECT}.iam.gserviceaccount.com"


@pytest.fixture(scope="module")
def azurite_url() -> Iterator[str]:
    with servers.azurite_server() as url:
        yield url


@pytest.fixture(scope="module")
def gcs_url() -> Iterator[str]:
    with servers.gcs_emulator() as url:
        yield url


@pytest.fixture(scope="module")
def gcs_key() -> rsa.RSAPrivateKey:
    """A throwaway service-account key: the emulator verifies nothing, the tests do."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def gcs_key_file(gcs_key: rsa.RSAPrivateKey, tmp_path: Path) -> Path:
    pem = gcs_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    info = {
        "type": "service_account",
        "project_id": GCS_PROJECT,
        "private_key_id": "k1",
        "private_key": pem,
        "client_email": GCS_ACCOUNT,
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    path = tmp_path / "service-account.json"
    path.write_text(json.dumps(info))
    return path


def azurite_connection(url: str) -> str:
    return (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={AZURITE_KEY};BlobEndpoint={url};"
    )


async def make_bucket(provider: str, request: pytest.FixtureRequest, public: bool = False) -> str:
    """A fresh bucket (container) on the provider's local server."""
    name = f"img-{uuid.uuid4().hex[:12]}"
    if provider == "s3":
        url = request.getfixturevalue("moto_url")
        async with httpx.AsyncClient(timeout=10) as http:  # moto checks no credentials
            (await http.put(f"{url}/{name}")).raise_for_status()
            if public:  # anonymous reads of objects, as a public bucket's policy grants
                statement = {
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:GetObject",
                    "Resource": f"arn:aws:s3:::{name}/*",
                }
                policy = {"Version": "2012-10-17", "Statement": [statement]}
                made = await http.put(f"{url}/{name}?policy", json=policy)
                made.raise_for_status()
    elif provider == "azure":
        from azure.storage.blob.aio import BlobServiceClient

        conn = azurite_connection(request.getfixturevalue("azurite_url"))
        async with BlobServiceClient.from_connection_string(conn) as client:
            await client.create_container(name, public_access="blob" if public else None)
    else:
        url = request.getfixturevalue("gcs_url")
        async with httpx.AsyncClient(timeout=10) as http:
            made = await http.post(
                f"{url}/storage/v1/b", params={"project": GCS_PROJECT}, json={"name": name}
            )
            made.raise_for_status()
    return name


def provider_settings(
    provider: str, bucket: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """Settings as a deployment gives them: ours, plus the SDKs' standard variables."""
    fields: dict[str, Any] = {}
    if provider == "s3":
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", request.getfixturevalue("moto_url"))
        store = "dynamodb"
    elif provider == "azure":
        url = request.getfixturevalue("azurite_url")
        fields["azure_storage_connection_string"] = azurite_connection(url)
        store = "cosmos"
        fields["cosmos_url"] = "http://127.0.0.1:9"
    else:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", request.getfixturevalue("gcs_url"))
        monkeypatch.setenv(
            "GOOGLE_APPLICATION_CREDENTIALS", str(request.getfixturevalue("gcs_key_file"))
        )
        store = "firestore"
    return Settings(store=store, images_bucket=bucket, **fields)


@pytest.fixture(params=PROVIDERS)
async def storage(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[ImageStorage]:
    """An open image storage built from settings, as the app builds it."""
    bucket = await make_bucket(request.param, request)
    opened = open_image_storage(provider_settings(request.param, bucket, request, monkeypatch))
    assert opened is not None and opened.name == request.param
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def send(http: httpx.AsyncClient, upload: UploadUrl, body: bytes) -> httpx.Response:
    """Upload as a browser would: exactly the method and headers handed out (but
    Content-Length, which the client sets from the body), and for a POST the form fields
    in order with the file last."""
    return await send_upload(
        http, upload.method, upload.url, list(upload.headers), list(upload.fields), body
    )


async def send_upload(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    headers: list[tuple[str, str]],
    fields: list[tuple[str, str]],
    body: bytes,
) -> httpx.Response:
    if method == "POST":  # multipart/form-data: the fields, then the file as the last part
        form = dict(fields)
        return await http.post(url, headers=headers, data=form, files={"file": ("image", body)})
    # A browser may not set Content-Length (a forbidden header): it sends the body's own.
    headers = [(name, value) for name, value in headers if name.lower() != "content-length"]
    return await http.request(method, url, headers=headers, content=body)


async def attach_uploaded(storage: ImageStorage, key: str) -> None:
    """What createPost does for a key, without its checks: inspect, then copy to the key."""
    pending = await storage.inspect(key)
    assert pending is not None, f"{key} was not uploaded"
    await storage.attach(key, pending.token)


async def write_directly(storage: ImageStorage, name: str, body: bytes) -> None:
    """Write ``body`` at ``name`` through the SDK (the server's credentials), as no
    attach would and no single-use upload URL can a second time."""
    if isinstance(storage, S3ImageStorage):
        assert storage._client is not None
        await storage._client.put_object(
            Bucket=storage.bucket, Key=name, Body=body, ContentType="image/jpeg"
        )
    elif isinstance(storage, GcsImageStorage):
        assert storage._bucket is not None
        blob = storage._bucket.blob(name)
        await asyncio.to_thread(blob.upload_from_string, body, content_type="image/jpeg")
    else:
        assert isinstance(storage, AzureBlobImageStorage) and storage._client is not None
        container = storage._client.get_container_client(storage.bucket)
        await container.upload_blob(name, body, overwrite=True)


UPLOAD_METHODS = {"s3": "POST", "azure": "PUT", "gcs": "PUT"}


def with_header(upload: UploadUrl, name: str, value: str) -> list[tuple[str, str]]:
    return [(n, value if n.lower() == name.lower() else v) for n, v in upload.headers]


Sent = list[tuple[str, dict[str, str]]]  # per request: "copy", "read" or its method; details


def record_requests(storage: ImageStorage, monkeypatch: pytest.MonkeyPatch) -> Sent:
    """Each request the storage sends from now on: "copy" (the attaching copy), "read"
    (one object's properties) or its HTTP method, with its headers (S3, Azure) or query
    parameters (Cloud Storage), to count calls and read the copy's conditions."""
    sent: Sent = []
    if isinstance(storage, S3ImageStorage):
        assert storage._client is not None
        names = {"CopyObject": "copy", "HeadObject": "read"}

        def on_send(request: Any, event_name: str, **_: Any) -> None:
            operation = event_name.rsplit(".", 1)[-1]
            headers = {
                k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()
            }
            sent.append((names.get(operation, request.method), headers))

        storage._client.meta.events.register("before-send.s3", on_send)
    elif storage.name == "gcs":
        original = requests.Session.request

        def request(session: requests.Session, method: str, url: str, **kw: Any) -> Any:
            path, query = urlsplit(url).path, dict(parse_qsl(urlsplit(url).query))
            kind = "copy" if "/copyTo/" in path else "read" if method == "GET" else method
            if f"/b/{storage.bucket}/" in path:  # the bucket's calls, not auth's or others'
                sent.append((kind, query))
            return original(session, method, url, **kw)

        monkeypatch.setattr(requests.Session, "request", request)
    else:
        from azure.core.pipeline.transport import AioHttpTransport

        send = AioHttpTransport.send

        async def send_recorded(transport: AioHttpTransport, request: Any, **kw: Any) -> Any:
            headers = dict(request.headers)
            copying = request.method == "PUT" and "x-ms-copy-source" in headers
            kind = "copy" if copying else "read" if request.method == "HEAD" else request.method
            sent.append((kind, headers))
            return await send(transport, request, **kw)

        monkeypatch.setattr(AioHttpTransport, "send", send_recorded)
    return sent


def refusing_taken_keys(storage: ImageStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto and the Cloud Storage emulator answer a copy onto a name that exists, made
    with ``If-None-Match: *`` / ``ifGenerationMatch=0``, 412 as S3 and Cloud Storage do."""
    if isinstance(storage, S3ImageStorage):
        client = storage._client
        assert client is not None

        async def refuse(request: Any, **_: Any) -> Any:
            if request.headers.get("If-None-Match") not in ("*", b"*"):
                return None
            name = unquote(urlsplit(request.url).path).split("/", 2)[2]
            head = {"Bucket": storage.bucket, "Key": name}  # signed here, sent aside
            url = await client.generate_presigned_url("head_object", Params=head)
            async with httpx.AsyncClient(timeout=10) as http:
                if (await http.head(url)).status_code != 200:
                    return None
            error = b"<Error><Code>PreconditionFailed</Code></Error>"
            answer = httpx.Response(412, content=error)
            return HttpxAWSResponse(request.url, 412, HTTPHeaders(), answer)

        # An answer from a before-send handler stands for the server's (botocore's hook).
        client.meta.events.register("before-send.s3.CopyObject", cast(Any, refuse))
    if isinstance(storage, GcsImageStorage):
        original = requests.Session.request

        def request(session: requests.Session, method: str, url: str, **kw: Any) -> Any:
            parts = urlsplit(url)
            _, copy_to, target = parts.path.partition("/copyTo/")
            if copy_to and dict(parse_qsl(parts.query)).get("ifGenerationMatch") == "0":
                metadata = f"{parts.scheme}://{parts.netloc}/storage/v1/{target}"
                if httpx.get(metadata, timeout=10).status_code == 200:
                    return gcs_refusal(method, url)
            return original(session, method, url, **kw)

        monkeypatch.setattr(requests.Session, "request", request)


def gcs_refusal(method: str, url: str) -> requests.Response:
    """Cloud Storage's answer to a precondition that does not hold."""
    refusal = requests.Response()
    refusal.status_code = 412
    refusal._content = json.dumps({"error": {"code": 412, "message": "conditionNotMet"}}).encode()
    refusal.headers["Content-Type"] = "application/json"
    refusal.request = requests.Request(method, url).prepare()
    return refusal
