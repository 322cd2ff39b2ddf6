"""Image uploads end to end through /graphql, on each provider's real local server.

createUploadUrls hands out URLs; a plain HTTP client uploads real bytes through exactly
the method, URL, headers and form fields returned; createPost lists the keys (and
attaches the uploads); Post.imageUrls reads the bytes back. moto serves S3, Azurite
Azure Blob, gcp-storage-emulator Cloud Storage (tests/image_storages.py sets each up;
tests/signatures.py checks what they do not).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gql_api.images import (
    UploadUrl,
    is_valid_image_key,
    new_image_key,
)
from gql_api.settings import Settings
from gql_api.stores.memory import MemoryStore
from tests import image_api
from tests.helpers import DEV_SECRET
from tests.image_api import (
    CREATE,
    DELETE,
    READ,
    UPDATE,
    UPLOAD,
    Api,
    CountingStorage,
    serve,
    signed_values,
    stored_post,
    upload_to,
    with_dev_auth,
)
from tests.image_storages import (  # noqa: F401 - fixtures, for make_bucket/provider_settings
    JPEG,
    PNG,
    PROVIDERS,
    UPLOAD_METHODS,
    azurite_url,
    gcs_key,
    gcs_key_file,
    gcs_url,
    make_bucket,
    provider_settings,
)

UPLOAD_TTL = timedelta(minutes=15)  # GQL_API_UPLOAD_URL_TTL's default
GIF = b"GIF89a" + bytes(range(200))

# The shared fixture, as this module's.
api = image_api.api


# --- the whole flow, on every provider -----------------------------------------------------


@pytest.mark.parametrize("sized", [False, True])
async def test_bytes_uploaded_through_the_api_urls_read_back_through_image_urls(
    api: Api, sized: bool
) -> None:
    before = datetime.now(UTC)
    types, bodies = ["image/png", "image/jpeg", "image/gif"], [PNG, JPEG, GIF]
    sizes = [len(body) for body in bodies] if sized else None  # then a PUT everywhere
    data = await api.data(UPLOAD, {"count": 3, "types": types, "sizes": sizes})
    after = datetime.now(UTC)
    uploads = data["createUploadUrls"]
    assert [u["key"].rsplit(".", 1)[1] for u in uploads] == ["png", "jpg", "gif"]
    for upload, content_type in zip(uploads, types, strict=True):
        assert is_valid_image_key(upload["key"], "alice")
        assert upload["method"] == ("PUT" if sized else UPLOAD_METHODS[api.images.name])
        assert bool(upload["fields"]) == (upload["method"] == "POST")
        assert ("Content-Type", content_type) in signed_values(upload)
        expires_at = datetime.fromisoformat(upload["expiresAt"])
        assert before + UPLOAD_TTL - timedelta(seconds=2) <= expires_at
        assert expires_at <= after + UPLOAD_TTL + timedelta(seconds=2)
    keys = [u["key"] for u in uploads]
    async with httpx.AsyncClient(timeout=10) as http:  # a plain client, as a browser
        for upload, body in zip(uploads, bodies, strict=True):
            sent = await upload_to(http, upload, body)
            assert sent.status_code in (200, 201, 204), sent.text

        created = (await api.data(CREATE, {"keys": keys}))["createPost"]
        assert created["imageKeys"] == keys
        assert len(created["imageUrls"]) == 3
        read = await api.data(
            "query Both($id: ID!) { post(id: $id) { imageUrls } posts { nodes { imageUrls } } }",
            {"id": created["id"]},
        )
        # Signed URLs may differ between reads; each reads the same bytes.
        listed = read["posts"]["nodes"][0]["imageUrls"]
        for urls in (created["imageUrls"], read["post"]["imageUrls"], listed):
            for url, body, content_type in zip(urls, bodies, types, strict=True):
                got = await http.get(url)
                assert got.status_code == 200, got.text
                assert got.content == body
                assert got.headers["content-type"] == content_type


async def test_an_admin_edit_is_bound_to_the_authors_prefix(api: Api) -> None:
    alice_keys = await api.upload_keys(2)
    (admin_key,) = await api.upload_keys(1, user="root")
    post = (await api.data(CREATE, {"keys": alice_keys[:1]}))["createPost"]
    refused = await api.error(
        UPDATE, {"id": post["id"], "keys": [admin_key]}, user="root", admin=True
    )
    assert refused["extensions"] == {"code": "BAD_USER_INPUT", "field": "input.imageKeys[0]"}
    assert "post author's prefix 'alice/'" in refused["message"]
    edited = await api.data(UPDATE, {"id": post["id"], "keys": alice_keys}, user="root", admin=True)
    assert edited["updatePost"]["imageKeys"] == alice_keys
    assert edited["updatePost"]["version"] == 2
    assert len(edited["updatePost"]["imageUrls"]) == 2


# --- refusals (on S3: the rules are the service's, the same for every provider) -----------


@pytest.mark.parametrize("api", ["s3"], indirect=True)
async def test_create_upload_urls_refusals(api: Api) -> None:
    anonymous = await api.error(UPLOAD, {"count": 1}, user=None)
    assert anonymous["extensions"]["code"] == "UNAUTHENTICATED"
    for count in (0, -1, 5):
        error = await api.error(UPLOAD, {"count": count})
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "count"}, count
        assert "from 1 to 4" in error["message"]
    for count, types in ((2, ["image/png"]), (1, ["image/png", "image/png"]), (1, [])):
        error = await api.error(UPLOAD, {"count": count, "types": types})
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "contentTypes"}
    for bad in ("image/svg+xml", "text/html", "", "image/png; charset=x"):
        error = await api.error(UPLOAD, {"count": 2, "types": ["image/png", bad]})
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "contentTypes[1]"}
        assert "image/png, image/jpeg, image/webp, image/gif" in error["message"]
    assert api.images.upload_calls == 0  # refused before the storage is asked


@pytest.mark.parametrize("api", ["s3"], indirect=True)
async def test_create_upload_urls_limits_and_defaults(api: Api) -> None:
    four = (await api.data(UPLOAD, {"count": 4}))["createUploadUrls"]  # maxImagesPerPost
    assert len({u["key"] for u in four}) == 4
    for types in (None, "left out"):
        variables: dict[str, Any] = {"count": 2}
        if types is None:
            variables["types"] = None
        uploads = (await api.data(UPLOAD, variables))["createUploadUrls"]
        assert [u["key"].rsplit(".", 1)[1] for u in uploads] == ["jpg", "jpg"]
        assert all(("Content-Type", "image/jpeg") in signed_values(u) for u in uploads)
    (mixed_case,) = (await api.data(UPLOAD, {"count": 1, "types": [" Image/WebP "]}))[
        "createUploadUrls"
    ]
    assert mixed_case["key"].endswith(".webp")
    assert ("Content-Type", "image/webp") in signed_values(mixed_case)
    unusable = await api.error(UPLOAD, {"count": 1}, user="a/b")  # cannot own a prefix
    assert unusable["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize("api", ["s3"], indirect=True)
async def test_foreign_and_malformed_keys_are_refused_on_create_and_update(api: Api) -> None:
    mine = await api.upload_keys(2)
    (bobs,) = await api.upload_keys(1, user="bob")
    name = mine[0].removeprefix("alice/")
    for keys, where in (
        ([bobs], "input.imageKeys[0]"),  # another user's upload
        ([mine[0], f"bob/{name}"], "input.imageKeys[1]"),
        (["alice/cat.png"], "input.imageKeys[0]"),  # a name of the client's choosing
        ([f"alice/../bob/{name}"], "input.imageKeys[0]"),
        ([f"alice/{name}.png"], "input.imageKeys[0]"),
        ([mine[0], mine[0]], "input.imageKeys"),
        ([*mine, *await api.upload_keys(3)], "input.imageKeys"),  # 5 > maxImagesPerPost
    ):
        error = await api.error(CREATE, {"keys": keys})
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": where}, keys
    post = (await api.data(CREATE, {"keys": mine[:1]}))["createPost"]
    for keys, where in (([bobs], "input.imageKeys[0]"), (["alice/cat.png"], "input.imageKeys[0]")):
        error = await api.error(UPDATE, {"id": post["id"], "keys": keys})
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": where}
    # Bob's own key is refused on Alice's post also when Bob is an admin.
    error = await api.error(UPDATE, {"id": post["id"], "keys": [bobs]}, user="bob", admin=True)
    assert error["extensions"]["field"] == "input.imageKeys[0]"
    stored = (await api.data(READ, {"id": post["id"]}))["post"]
    assert stored["imageKeys"] == mine[:1]


# --- one storage call per response ---------------------------------------------------------


@pytest.mark.parametrize("api", PROVIDERS, indirect=True)
async def test_image_urls_of_a_page_are_one_read_urls_call(api: Api) -> None:
    alice = await api.upload_keys(4) + await api.upload_keys(1)
    bob = await api.upload_keys(2, user="bob")
    posts = [
        (await api.data(CREATE, {"keys": alice[:2]}))["createPost"],
        (await api.data(CREATE, {"keys": bob}, user="bob"))["createPost"],
        (await api.data(CREATE, {"keys": []}))["createPost"],
        (await api.data(CREATE, {"keys": alice[2:4]}))["createPost"],
        (await api.data(CREATE, {"keys": alice[4:]}))["createPost"],
    ]
    calls = api.images.read_calls
    calls.clear()

    page = await api.data(
        """{ posts(first: 10) {
          nodes { id imageKeys imageUrls }
          edges { node { ...Pictures author { userId } } }
        } }
        fragment Pictures on Post { imageUrls }"""
    )
    assert len(calls) == 1
    assert sorted(calls[0]) == sorted(alice + bob)  # each key once
    by_id = {node["id"]: node for node in page["posts"]["nodes"]}
    for post in posts:
        node = by_id[post["id"]]
        assert len(node["imageUrls"]) == len(post["imageKeys"])
    edge_urls = [edge["node"]["imageUrls"] for edge in page["posts"]["edges"]]
    assert edge_urls == [node["imageUrls"] for node in page["posts"]["nodes"]]

    calls.clear()
    await api.data("{ posts(first: 10) { nodes { id imageKeys author { userId } } } }")
    assert calls == []  # not selected: not computed
    left_out = await api.data(
        """query ($with: Boolean!) { posts(first: 10) { nodes {
          id imageUrls @include(if: $with) ...P @skip(if: true) } } }
        fragment P on Post { imageUrls }""",
        {"with": False},
    )
    assert calls == []  # left out by @include/@skip: not computed either
    assert all(set(node) == {"id"} for node in left_out["posts"]["nodes"])

    calls.clear()
    aliased = " ".join(
        f'p{i}: post(id: "{post["id"]}") {{ imageUrls }}' for i, post in enumerate(posts)
    )
    single = await api.data(f"{{ {aliased} }}")
    assert len(calls) == 1  # post(id) fields of one response share the request's loader
    assert sorted(calls[0]) == sorted(alice + bob)
    assert [len(single[f"p{i}"]["imageUrls"]) for i in range(5)] == [2, 2, 0, 2, 1]


# --- without a bucket, and when the storage fails ------------------------------------------


async def test_without_a_bucket_uploads_are_refused_and_image_urls_are_empty(
    tmp_path: Path,
) -> None:
    settings = Settings(sqlite_path=tmp_path / "db.sqlite", dev_secret=DEV_SECRET)
    assert settings.images_bucket is None
    store = MemoryStore()
    async for api in serve(settings, store=store):
        assert api.images is None
        error = await api.error(UPLOAD, {"count": 1})
        assert error["extensions"] == {"code": "BAD_USER_INPUT"}
        assert "GQL_API_IMAGES_BUCKET" in error["message"]
        anonymous = await api.error(UPLOAD, {"count": 1}, user=None)
        assert anonymous["extensions"]["code"] == "UNAUTHENTICATED"
        key = new_image_key("alice", "image/png")
        off = await api.error(CREATE, {"keys": [key]})  # nothing could have been uploaded
        assert off["extensions"] == {"code": "BAD_USER_INPUT", "field": "input.imageKeys"}
        assert "GQL_API_IMAGES_BUCKET" in off["message"]
        refused = await api.error(CREATE, {"keys": ["alice/cat.png"]})
        assert refused["extensions"]["field"] == "input.imageKeys[0]"
        # A post stored with keys while a bucket was set: shown without URLs, still editable.
        earlier = await stored_post(store, [key])
        page = await api.data("{ posts { nodes { imageKeys imageUrls } } }")
        assert page["posts"]["nodes"] == [{"imageKeys": [key], "imageUrls": []}]
        kept = await api.data(UPDATE, {"id": earlier.id, "keys": [key]})
        assert kept["updatePost"]["imageKeys"] == [key]
        assert (await api.data(DELETE, {"id": earlier.id}))["deletePost"]["id"] == earlier.id


async def test_a_storage_that_cannot_sign_answers_its_own_code(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Cloud Storage with credentials that do not exist: posts still work (imageUrls
    answers [] with one IMAGE_STORAGE_UNAVAILABLE error beside the data); uploads answer
    IMAGE_STORAGE_UNAVAILABLE; the cause is only in the server log."""
    bucket = await make_bucket("gcs", request)
    settings = with_dev_auth(provider_settings("gcs", bucket, request, monkeypatch))
    missing = tmp_path / "no-such-key.json"
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(missing))
    store = MemoryStore()
    async for api in serve(settings, store=store):  # the storage cannot open: it starts anyway
        error = await api.error(UPLOAD, {"count": 1})
        assert error["extensions"] == {"code": "IMAGE_STORAGE_UNAVAILABLE"}
        assert str(missing) not in json.dumps(error)
        key = new_image_key("alice", "image/png")
        attaching = await api.error(CREATE.replace(" imageUrls", ""), {"keys": [key]})
        assert attaching["extensions"] == {"code": "IMAGE_STORAGE_UNAVAILABLE"}
        assert (await api.data("{ posts { nodes { id } } }"))["posts"]["nodes"] == []
        stored = await stored_post(store, [key])
        post_id = stored.id
        failed = await api.gql(READ, {"id": post_id})
        assert failed["data"]["post"] == {"imageKeys": [key], "imageUrls": []}
        (notice,) = failed["errors"]
        assert notice["extensions"]["code"] == "IMAGE_STORAGE_UNAVAILABLE"
        assert "path" not in notice and str(missing) not in json.dumps(notice)
        # The same for a page (fetched with the page) and for posts by id (the loader).
        page = await api.gql(
            "{ posts { nodes { id imageUrls } } a: post(id: $id) { imageUrls } }".replace(
                "$id", json.dumps(post_id)
            )
        )
        assert page["data"]["posts"]["nodes"] == [{"id": post_id, "imageUrls": []}]
        assert page["data"]["a"] == {"imageUrls": []}
        assert [e["extensions"]["code"] for e in page["errors"]] == ["IMAGE_STORAGE_UNAVAILABLE"]
        plain = await api.gql("{ posts { nodes { imageKeys } } }")
        assert plain == {"data": {"posts": {"nodes": [{"imageKeys": [key]}]}}}


class SilentStorage(CountingStorage):
    """A storage whose cloud never answers (signing through a remote service that hangs)."""

    async def upload_urls(
        self,
        user_id: str,
        content_types: Sequence[str],
        ttl: timedelta,
        sizes: Sequence[int] | None = None,
    ) -> list[UploadUrl]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


@pytest.mark.parametrize("api", ["s3"], indirect=True)
async def test_a_storage_that_does_not_answer_is_bounded_by_the_store_timeout(
    api: Api, tmp_path: Path
) -> None:
    settings = Settings(
        sqlite_path=tmp_path / "db.sqlite", dev_secret=DEV_SECRET, store_timeout=0.2
    )
    async for slow in serve(settings, SilentStorage(api.images.inner)):
        started = time.monotonic()
        try:
            # A hang guard, not a speed test: 25 times the store timeout.
            async with asyncio.timeout(5):
                error = await slow.error(UPLOAD, {"count": 1})
        except TimeoutError:
            pytest.fail("uploadUrls still unanswered after 5 s with a store timeout of 0.2 s")
        assert error["extensions"] == {"code": "IMAGE_STORAGE_UNAVAILABLE"}
        assert time.monotonic() - started < 5


# --- what the app loads and opens ------------------------------------------------------------

PROBE = """
import asyncio, json, sys
from gql_api.app import create_app
from gql_api.settings import load_settings
app = create_app(load_settings())
images = app.state.images
built = sorted(sys.modules)
async def cycle():
    async with app.router.lifespan_context(app):
        return images is not None and images._client is not None
opened = asyncio.run(cycle())
print(json.dumps({"built": built, "opened": opened, "after": sorted(sys.modules),
                  "images": None if images is None else images.name}))
"""


@pytest.mark.parametrize("bucket", [None, "images"])
def test_the_image_sdk_loads_only_with_a_bucket_and_opens_with_the_runtime(
    bucket: str | None, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GQL_API_")}
    env.update(
        GQL_API_STORE="sqlite",
        GQL_API_IMAGES_PROVIDER="s3",
        GQL_API_DEV_SECRET="x" * 40,
        GQL_API_SQLITE_PATH=str(tmp_path / "db.sqlite"),
        AWS_ENDPOINT_URL_S3="http://127.0.0.1:9",  # building the client sends nothing
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
    )
    if bucket is not None:
        env["GQL_API_IMAGES_BUCKET"] = bucket
    probe = [sys.executable, "-c", PROBE]
    ran = subprocess.run(probe, env=env, capture_output=True, text=True, check=True)
    result = json.loads(ran.stdout)
    sdks = {"boto3", "botocore", "aioboto3", "aiobotocore", "google", "azure"}
    assert not {m.split(".")[0] for m in result["built"]} & sdks  # nothing before start
    loaded_after = {m.split(".")[0] for m in result["after"]}
    if bucket is None:
        assert result["images"] is None
        assert not loaded_after & sdks
    else:
        assert result["images"] == "s3"
        assert result["opened"] is True  # the client was made at start-up
        assert loaded_after & sdks == {"aioboto3", "aiobotocore", "boto3", "botocore"}
