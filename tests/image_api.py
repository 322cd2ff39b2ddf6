"""The app with a real image storage, served in process, as the upload tests drive it:
its mutations, a storage wrapper that counts calls, tokens for any user, and uploads
sent exactly as createUploadUrls says. Shared by tests/test_upload_flow.py and
tests/test_image_limits.py (which import the fixtures of tests/image_storages.py too).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any

import httpx
import pytest

from gql_api.app import create_app
from gql_api.auth.dev import mint_dev_token
from gql_api.domain.records import PostRecord
from gql_api.domain.validation import new_post_id
from gql_api.images import Check, ImageObject, ImageStorage, UploadUrl, open_image_storage
from gql_api.settings import Settings
from gql_api.stores.memory import MemoryStore
from tests.helpers import DEV_SECRET, record
from tests.image_storages import JPEG, PROVIDERS, make_bucket, provider_settings, send_upload

REQUEST_TIMEOUT = 30.0  # seconds any one request may take, servers already started

UPLOAD = """
mutation Upload($count: Int!, $types: [String!], $sizes: [Int!]) {
  createUploadUrls(count: $count, contentTypes: $types, sizes: $sizes) {
    key url method headers { name value } fields { name value } expiresAt
  }
}"""
CREATE = """
mutation Create($keys: [String!]) {
  createPost(input: {content: "pictures", imageKeys: $keys}) { id imageKeys imageUrls }
}"""
UPDATE = """
mutation Update($id: ID!, $keys: [String!]) {
  updatePost(id: $id, input: {imageKeys: $keys}) { id version imageKeys imageUrls }
}"""
READ = "query Read($id: ID!) { post(id: $id) { imageKeys imageUrls } }"
DELETE = "mutation Delete($id: ID!) { deletePost(id: $id) { id } }"


class CountingStorage:
    """The real storage, its calls counted: how many ``read_urls``, with which keys;
    which keys were inspected, and how many inspections were in flight at most."""

    def __init__(self, inner: ImageStorage) -> None:
        self.inner = inner
        self.name = inner.name
        self.bucket = inner.bucket
        self.max_bytes = inner.max_bytes
        self.read_calls: list[list[str]] = []
        self.upload_calls = 0
        self.inspected: list[str] = []
        self.inspecting = self.most_inspecting = 0

    async def open(self) -> None:
        await self.inner.open()

    async def upload_urls(
        self,
        user_id: str,
        content_types: Sequence[str],
        ttl: timedelta,
        sizes: Sequence[int] | None = None,
    ) -> list[UploadUrl]:
        self.upload_calls += 1
        return await self.inner.upload_urls(user_id, content_types, ttl, sizes)

    async def read_urls(self, keys: Sequence[str]) -> list[str]:
        self.read_calls.append(list(keys))
        return await self.inner.read_urls(keys)

    async def inspect(self, key: str) -> ImageObject | None:
        self.inspected.append(key)
        self.inspecting += 1
        self.most_inspecting = max(self.most_inspecting, self.inspecting)
        try:
            return await self.inner.inspect(key)
        finally:
            self.inspecting -= 1

    async def attach(self, key: str, token: str) -> bool:
        return await self.inner.attach(key, token)

    async def discard_pending(self, keys: Sequence[str]) -> None:
        await self.inner.discard_pending(keys)

    async def delete(self, keys: Sequence[str]) -> None:
        await self.inner.delete(keys)

    async def check(self) -> list[Check]:
        return await self.inner.check()

    async def close(self) -> None:
        await self.inner.close()


class Api:
    """The ASGI app, served in process, with tokens for any user."""

    def __init__(self, client: httpx.AsyncClient, settings: Settings, images: Any) -> None:
        self.client = client
        self.settings = settings
        self.images = images

    async def gql(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        user: str | None = "alice",
        admin: bool = False,
    ) -> dict[str, Any]:
        headers = {}
        if user is not None:
            token = mint_dev_token(self.settings, DEV_SECRET, user_id=user, admin=admin)
            headers["authorization"] = f"Bearer {token}"
        async with asyncio.timeout(REQUEST_TIMEOUT):
            response = await self.client.post(
                "/graphql", json={"query": query, "variables": variables}, headers=headers
            )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def data(self, query: str, variables: dict[str, Any] | None = None, **who: Any) -> Any:
        body = await self.gql(query, variables, **who)
        assert "errors" not in body, body["errors"]
        return body["data"]

    async def error(
        self, query: str, variables: dict[str, Any] | None = None, **who: Any
    ) -> dict[str, Any]:
        body = await self.gql(query, variables, **who)
        assert body["data"] is None, body
        (error,) = body["errors"]
        assert isinstance(error, dict)
        return error

    async def served(self, key: str) -> bytes | None:
        """The bytes the storage serves under ``key`` (None: nothing is there)."""
        (url,) = await self.images.inner.read_urls([key])
        async with httpx.AsyncClient(timeout=10) as http:
            read = await http.get(url)
        if read.status_code == 404:
            return None
        assert read.status_code == 200, read.text
        return read.content

    async def upload_keys(self, count: int, user: str = "alice", body: bytes = JPEG) -> list[str]:
        """Fresh keys of ``user``, each with ``body`` uploaded through its URL."""
        uploads = (await self.data(UPLOAD, {"count": count}, user=user))["createUploadUrls"]
        async with httpx.AsyncClient(timeout=10) as http:
            for upload in uploads:
                sent = await upload_to(http, upload, body)
                assert sent.status_code in (200, 201, 204), sent.text
        return [upload["key"] for upload in uploads]


def with_dev_auth(settings: Settings, **changes: Any) -> Settings:
    values = settings.model_dump(exclude_unset=True)
    return Settings(**{**values, "dev_secret": DEV_SECRET, **changes})


async def serve(
    settings: Settings, images: Any = None, store: MemoryStore | None = None
) -> AsyncIterator[Api]:
    app = create_app(settings, store=store or MemoryStore(), images=images)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Api(client, settings, app.state.images)


@pytest.fixture(params=PROVIDERS)
async def api(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Api]:
    """The app on a fresh bucket of the provider, its storage built from the settings
    (as the app builds it) and wrapped to count its calls."""
    bucket = await make_bucket(request.param, request)
    settings = with_dev_auth(provider_settings(request.param, bucket, request, monkeypatch))
    storage = open_image_storage(settings)
    assert storage is not None and storage.name == request.param
    async for served in serve(settings, CountingStorage(storage)):
        yield served


def header_list(upload: dict[str, Any]) -> list[tuple[str, str]]:
    return [(header["name"], header["value"]) for header in upload["headers"]]


def signed_values(upload: dict[str, Any]) -> list[tuple[str, str]]:
    """The headers and form fields an upload must send (the content type is in one)."""
    return header_list(upload) + [(field["name"], field["value"]) for field in upload["fields"]]


async def upload_to(http: httpx.AsyncClient, upload: dict[str, Any], body: bytes) -> httpx.Response:
    """Send ``body`` as createUploadUrls said: its method, URL, headers and form fields."""
    fields = [(field["name"], field["value"]) for field in upload["fields"]]
    return await send_upload(
        http, upload["method"], upload["url"], header_list(upload), fields, body
    )


async def stored_post(store: MemoryStore, keys: Sequence[str], author: str = "alice") -> PostRecord:
    """A post written straight to the store, as one written while a bucket was set."""
    post = record(post_id=new_post_id(), author_id=author)
    return await store.create(dataclasses.replace(post, image_keys=tuple(keys)))
