"""Bounded uploads, and images that live and die with their post, on each provider's
real local server (moto, Azurite, gcp-storage-emulator), through /graphql.

What each server enforces itself: Azurite checks SAS and the copy's conditions (the
source ETag, a destination that must not exist); moto checks no POST policy, signature
(so no PUT's exact size) or copy condition, the Cloud Storage emulator neither the
signed size range nor copy preconditions. Where a server does not, these tests check
the signed policy or headers (tests/signatures.py) and the conditions each copy request
carries, and show that createPost refuses what the server let through.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from gql_api.domain.records import PostRecord
from gql_api.images import ImageStorage, NotAttachable, open_image_storage
from gql_api.images.base import pending_name
from gql_api.images.gcs import SIZE_HEADER
from gql_api.settings import Settings
from gql_api.stores.base import DatabaseUnavailable, PageQuery
from gql_api.stores.memory import MemoryStore
from tests import image_storages
from tests.image_api import (
    CREATE,
    DELETE,
    UPDATE,
    UPLOAD,
    Api,
    CountingStorage,
    header_list,
    serve,
    upload_to,
    with_dev_auth,
)
from tests.image_storages import (
    OTHER,
    PROVIDERS,
    SMALL,
    TTL,
    make_bucket,
    provider_settings,
    record_requests,
    refusing_taken_keys,
    write_directly,
)
from tests.image_storages import send as send_to
from tests.signatures import (
    s3_post_policy_refusal,
    s3_post_policy_signature_valid,
    s3_sigv4_signature_valid,
)

LIMIT = 2048  # GQL_API_MAX_IMAGE_BYTES for these tests: small, so uploads are quick

# The shared fixtures, as this module's (the servers start once per module).
azurite_url = image_storages.azurite_url
gcs_url = image_storages.gcs_url
gcs_key = image_storages.gcs_key
gcs_key_file = image_storages.gcs_key_file
storage = image_storages.storage


@pytest.fixture(params=PROVIDERS)
async def api(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Api]:
    """The app on a fresh bucket of the provider with a 2 KiB limit, its calls counted."""
    async for served in serve_limited(request, monkeypatch, request.param):
        yield served


async def serve_limited(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    provider: str,
    wrap: type[CountingStorage] = CountingStorage,
    store: MemoryStore | None = None,
    **changes: Any,
) -> AsyncIterator[Api]:
    bucket = await make_bucket(provider, request)
    settings = provider_settings(provider, bucket, request, monkeypatch)
    settings = with_dev_auth(settings, max_image_bytes=LIMIT, **changes)
    storage = open_image_storage(settings)
    assert storage is not None and storage.max_bytes == LIMIT
    async for served in serve(settings, wrap(storage), store):
        yield served


async def handed_out(api: Api, *types: str) -> list[dict[str, Any]]:
    uploads = await api.data(UPLOAD, {"count": len(types), "types": list(types)})
    result: list[dict[str, Any]] = uploads["createUploadUrls"]
    return result


async def send(upload: dict[str, Any], body: bytes, content_type: str | None = None) -> int:
    """Upload as handed out (or with another Content-Type); the server's status."""
    if content_type is not None:
        upload = {
            **upload,
            **{
                part: [
                    {**pair, "value": content_type} if pair["name"] == "Content-Type" else pair
                    for pair in upload[part]
                ]
                for part in ("headers", "fields")
            },
        }
    async with httpx.AsyncClient(timeout=10) as http:
        return (await upload_to(http, upload, body)).status_code


def refused(error: dict[str, Any], where: str, key: str) -> str:
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": where}, error
    assert key in error["message"]
    message: str = error["message"]
    return message


def test_the_limit_is_a_setting_of_10_mib_by_default() -> None:
    assert Settings().max_image_bytes == 10 * 1024 * 1024
    assert Settings(max_image_bytes=1024).max_image_bytes == 1024
    for bad in (1023, 5 * 1024**3 + 1):
        with pytest.raises(ValueError, match="max_image_bytes"):
            Settings(max_image_bytes=bad)


async def test_an_upload_over_the_limit_is_refused_at_upload_or_by_create_post(api: Api) -> None:
    over, at = await handed_out(api, "image/png", "image/png")
    big = b"\x89PNG\r\n\x1a\n" + bytes(LIMIT + 1 - 8)
    if api.images.name == "s3":  # the signed policy S3 enforces (moto does not)
        fields = {f["name"]: f["value"] for f in over["fields"]}
        assert s3_post_policy_signature_valid(fields, os.environ["AWS_SECRET_ACCESS_KEY"])
        bucket, now = api.images.bucket, datetime.now(UTC)
        why = s3_post_policy_refusal(fields, bucket, len(big), now)
        assert why is not None and "outside 1..2048" in why
        assert s3_post_policy_refusal(fields, bucket, LIMIT, now) is None
    if api.images.name == "gcs":  # the signed header Cloud Storage enforces (not the emulator)
        assert {"name": "x-goog-content-length-range", "value": f"1,{LIMIT}"} in over["headers"]
        signed = dict(parse_qsl(urlsplit(over["url"]).query))["X-Goog-SignedHeaders"]
        assert "x-goog-content-length-range" in signed.split(";")
    assert await send(at, big[:LIMIT]) < 300  # exactly the limit is fine
    status = await send(over, big)
    if status < 300:  # stored anyway: moto, the emulator, and Azure (a SAS cannot bind a size)
        error = await api.error(CREATE, {"keys": [at["key"], over["key"]]})
        message = refused(error, "input.imageKeys[1]", over["key"])
        assert f"{LIMIT + 1} bytes, over the limit of {LIMIT} bytes" in message
    assert (await api.data("{ posts { nodes { id } } }"))["posts"]["nodes"] == []
    assert await api.served(over["key"]) is None
    created = (await api.data(CREATE, {"keys": [at["key"]]}))["createPost"]
    assert created["imageKeys"] == [at["key"]]
    assert await api.served(at["key"]) == big[:LIMIT]


@pytest.mark.parametrize("api", ["s3"], indirect=True)  # the rules are the service's
async def test_stated_sizes_are_one_per_upload_within_the_limit(api: Api) -> None:
    refusals = [([10], "sizes"), ([10] * 3, "sizes"), ([], "sizes"), ([10, 0], "sizes[1]")]
    refusals += [([-1, 10], "sizes[0]"), ([10, LIMIT + 1], "sizes[1]")]
    for sizes, where in refusals:
        error = await api.error(UPLOAD, {"count": 2, "sizes": sizes})
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": where}, sizes
    assert f"1 to {LIMIT} bytes" in error["message"]
    mistyped = await api.error(UPLOAD, {"count": 1, "types": ["text/html"], "sizes": [0]})
    assert mistyped["extensions"]["field"] == "contentTypes[0]"  # in the arguments' order
    assert api.images.upload_calls == 0  # refused before the storage is asked
    (at,) = (await api.data(UPLOAD, {"count": 1, "sizes": [LIMIT]}))["createUploadUrls"]
    assert at["method"] == "PUT"


async def test_with_sizes_a_body_of_another_length_is_refused_where_the_cloud_binds_it(
    api: Api,
) -> None:
    """moto and the emulator store it (they check no signature nor range): the test checks
    what S3 and Cloud Storage would refuse. Azure cannot bind a size: there createPost's
    check against the limit is the bound, not the size stated."""
    stated = len(SMALL)
    uploads = await api.data(UPLOAD, {"count": 2, "sizes": [stated, stated]})
    shorter, longer = uploads["createUploadUrls"]
    big = SMALL + bytes(LIMIT)  # over the limit too
    async with httpx.AsyncClient(timeout=10) as http:  # Content-Length from the body
        sent = [await upload_to(http, shorter, SMALL[:-1]), await upload_to(http, longer, big)]
    assert [response.status_code < 300 for response in sent] == [True, True]
    for upload, response in zip((shorter, longer), sent, strict=True):
        if api.images.name == "s3":
            secret, real = os.environ["AWS_SECRET_ACCESS_KEY"], response.request.headers
            assert not s3_sigv4_signature_valid("PUT", upload["url"], real, secret)
            as_stated = {**real, "content-length": str(stated)}
            assert s3_sigv4_signature_valid("PUT", upload["url"], as_stated, secret)
        if api.images.name == "gcs":  # signed (test_image_attach.py): n,n
            assert dict(header_list(upload))[SIZE_HEADER] == f"{stated},{stated}"
    error = await api.error(CREATE, {"keys": [longer["key"]]})
    message = refused(error, "input.imageKeys[0]", longer["key"])
    assert f"{len(big)} bytes, over the limit" in message
    if api.images.name == "azure":  # within the limit: attached, whatever size was stated
        created = (await api.data(CREATE, {"keys": [shorter["key"]]}))["createPost"]
        assert await api.served(created["imageKeys"][0]) == SMALL[:-1]


async def test_missing_uploads_and_wrong_types_are_refused_naming_the_key(api: Api) -> None:
    good, missing, mistyped = await handed_out(api, "image/jpeg", "image/png", "image/gif")
    assert await send(good, SMALL) < 300
    error = await api.error(CREATE, {"keys": [good["key"], missing["key"]]})
    assert "has not been uploaded" in refused(error, "input.imageKeys[1]", missing["key"])
    # Every key is checked before any is attached: nothing was copied for the good one.
    assert await api.served(good["key"]) is None
    if await send(mistyped, SMALL, content_type="image/jpeg") < 300:  # real S3, GCS refuse it
        error = await api.error(CREATE, {"keys": [mistyped["key"]]})
        assert "uploaded as 'image/jpeg'" in refused(error, "input.imageKeys[0]", mistyped["key"])

    post = (await api.data(CREATE, {"keys": [good["key"]]}))["createPost"]
    api.images.inspected.clear()
    for keys, where, bad in (
        ([good["key"], missing["key"]], "input.imageKeys[1]", missing["key"]),
        ([mistyped["key"], good["key"]], "input.imageKeys[0]", mistyped["key"]),
    ):
        refused(await api.error(UPDATE, {"id": post["id"], "keys": keys}), where, bad)
    assert good["key"] not in api.images.inspected  # already on the post: not checked again
    unchanged = await api.data("query ($id: ID!) { post(id: $id) { version imageKeys } }", post)
    assert unchanged["post"] == {"version": 1, "imageKeys": [good["key"]]}


async def test_images_are_attached_checked_side_by_side_and_written_by_the_server_only(
    api: Api,
) -> None:
    uploads = await handed_out(api, "image/jpeg", "image/png", "image/webp", "image/gif")
    for upload in uploads:
        assert await send(upload, SMALL) < 300
    keys = [upload["key"] for upload in uploads]
    created = (await api.data(CREATE, {"keys": keys}))["createPost"]  # maxImagesPerPost
    assert created["imageKeys"] == keys
    assert sorted(api.images.inspected) == sorted(keys)  # one storage call per image
    assert api.images.most_inspecting == 4  # all at once
    for key in keys:
        assert await api.served(key) == SMALL
        assert await api.images.inner.inspect(key) is None  # the pending upload is gone
    # The same key on another post: its upload is gone, so it cannot be attached again.
    error = await api.error(CREATE, {"keys": keys[:1]})
    assert "or was already attached" in refused(error, "input.imageKeys[0]", keys[0])
    # A still-valid upload URL writes a pending upload only, never the image served (once
    # attached the upload is deleted, so even a single-use URL can write one again).
    assert await send(uploads[0], OTHER) < 300
    assert await api.served(keys[0]) == SMALL


async def test_deleting_a_post_or_dropping_a_key_deletes_the_images(api: Api) -> None:
    a, b, c, d = await api.upload_keys(4, body=SMALL)
    kept = (await api.data(CREATE, {"keys": [a, b]}))["createPost"]
    gone = (await api.data(CREATE, {"keys": [d]}))["createPost"]
    edited = await api.data(UPDATE, {"id": kept["id"], "keys": [b, c]})
    assert edited["updatePost"]["imageKeys"] == [b, c]
    assert await api.served(a) is None
    assert await api.served(b) == await api.served(c) == SMALL
    assert (await api.data(DELETE, {"id": gone["id"]}))["deletePost"] == {"id": gone["id"]}
    assert await api.served(d) is None
    assert await api.served(b) == SMALL  # another post's images stay


class FailingDeletes(CountingStorage):
    """The real storage, whose deletes of attached images fail."""

    async def delete(self, keys: Sequence[str]) -> None:
        raise RuntimeError("the storage refuses deletes today")


@pytest.mark.parametrize("provider", ["s3"])
async def test_a_storage_failure_never_fails_a_delete_or_an_update(
    provider: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async for api in serve_limited(request, monkeypatch, provider, FailingDeletes):
        a, b, c = await api.upload_keys(3, body=SMALL)
        post = (await api.data(CREATE, {"keys": [a, b]}))["createPost"]
        with caplog.at_level(logging.WARNING, logger="gql_api.domain.image_attachments"):
            edited = await api.data(UPDATE, {"id": post["id"], "keys": [c]})
            assert edited["updatePost"]["imageKeys"] == [c]
            assert (await api.data(DELETE, {"id": post["id"]}))["deletePost"] == {"id": post["id"]}
        assert (await api.data("{ posts { nodes { id } } }"))["posts"]["nodes"] == []
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 2
        assert "delete dropped images (2 object(s))" in warnings[0]
        assert "delete dropped images (1 object(s))" in warnings[1]
        assert "refuses deletes" in warnings[1]


class FailingFirstCreate(MemoryStore):
    """A database whose first write fails."""

    failed = False

    async def create(self, post: PostRecord) -> PostRecord:
        if not self.failed:
            self.failed = True
            raise DatabaseUnavailable("the database is away")
        return await super().create(post)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_write_of_unknown_outcome_keeps_its_images_for_a_retry(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, provider: str
) -> None:
    """STORE_UNAVAILABLE: the post may be stored after all, so its copies stay; a retry
    attaches the same uploads again (attach is idempotent: the keys hold their bytes)."""
    store = FailingFirstCreate()
    async for api in serve_limited(request, monkeypatch, provider, store=store):
        refusing_taken_keys(api.images.inner, monkeypatch)  # as S3 and Cloud Storage do
        keys = await api.upload_keys(2, body=SMALL)
        error = await api.error(CREATE, {"keys": keys})
        assert error["extensions"]["code"] == "STORE_UNAVAILABLE"
        for key in keys:
            assert await api.served(key) == SMALL  # the copies stay
            assert await api.images.inner.inspect(key) is not None  # the uploads are kept
        created = (await api.data(CREATE, {"keys": keys}))["createPost"]  # so a retry works
        assert [await api.served(key) for key in keys] == [SMALL, SMALL]
        assert created["imageKeys"] == keys
        assert [await api.images.inner.inspect(key) for key in keys] == [None, None]


class LosingFirstAnswer(MemoryStore):
    """A database that stores the first create, then never answers it."""

    lost = False

    async def create(self, post: PostRecord) -> PostRecord:
        stored = await super().create(post)
        if not self.lost:
            self.lost = True
            raise DatabaseUnavailable("the answer was lost")
        return stored


KEYED_CREATE = """
mutation Create($keys: [String!], $key: String) {
  createPost(input: {content: "pictures", imageKeys: $keys}, idempotencyKey: $key) {
    id imageKeys
  }
}"""


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_create_stored_but_unanswered_keeps_its_images_for_its_retry(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, provider: str
) -> None:
    store = LosingFirstAnswer()
    async for api in serve_limited(request, monkeypatch, provider, store=store):
        keys = await api.upload_keys(2, body=SMALL)
        variables = {"keys": keys, "key": "retry-0001"}
        error = await api.error(KEYED_CREATE, variables)
        assert error["extensions"]["code"] == "STORE_UNAVAILABLE"
        created = (await api.data(KEYED_CREATE, variables))["createPost"]
        stored = (await store.list_posts(PageQuery(first=10))).posts
        assert [p.id for p in stored] == [created["id"]] and created["imageKeys"] == keys
        assert [await api.served(key) for key in keys] == [SMALL, SMALL]


# --- the copy's conditions, at the storage ---------------------------------------------------


async def test_attach_copies_only_the_upload_inspected_onto_a_key_holding_nothing(
    storage: ImageStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Azurite enforces both conditions; moto and the Cloud Storage emulator ignore them,
    so there the test reads them off the copy request the storage sends."""
    (upload,) = await storage.upload_urls("alice", ["image/jpeg"], TTL)
    key = upload.key
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await send_to(http, upload, SMALL)).status_code < 300
    first = await storage.inspect(key)
    assert first is not None and (first.size, first.content_type) == (len(SMALL), "image/jpeg")
    # Replaced by the SDK: the upload URL is single-use on Azure (test_image_attach.py).
    if storage.name == "azure":
        await write_directly(storage, pending_name(key), OTHER)
        with pytest.raises(NotAttachable):
            await storage.attach(key, first.token)
        first = await storage.inspect(key)
        assert first is not None and first.size == len(OTHER)
    sent = record_requests(storage, monkeypatch)
    await storage.attach(key, first.token)
    await write_directly(storage, pending_name(key), SMALL)  # a new version of the upload
    again = await storage.inspect(key)
    assert again is not None
    if storage.name == "azure":
        with pytest.raises(NotAttachable):  # the key holds another version's copy
            await storage.attach(key, again.token)
    copy = next(details for kind, details in sent if kind == "copy")  # the first attach's
    if storage.name == "s3":
        assert copy["x-amz-copy-source-if-match"] == first.token
        assert copy["If-None-Match"] == "*"
    if storage.name == "gcs":  # the token is the generation, then the MD5
        assert copy["ifSourceGenerationMatch"] == first.token.partition(":")[0]
        assert copy["ifGenerationMatch"] == "0"
    await storage.discard_pending([key])
    assert await storage.inspect(key) is None
