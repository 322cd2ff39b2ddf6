"""The app over HTTP, in process (httpx's ASGI transport): settings, the app with its
lifespan, a client, dev tokens, and helpers to send GraphQL. On the memory and SQLite
stores: these tests are about HTTP and the rules, never a store's specifics (the store
contract suite holds every store to those)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from gql_api.app import create_app
from gql_api.auth.dev import mint_dev_token
from gql_api.settings import Settings
from gql_api.stores.base import PageQuery, PostStore
from tests.conftest import closed_store
from tests.helpers import DEV_SECRET

CREATE = """
mutation Create($content: String!, $tags: [String!]) {
  createPost(input: {content: $content, tags: $tags}) { id version content tags createdAt }
}"""
JSON = "application/json"
GRAPHQL_JSON = "application/graphql-response+json"
HTTP_STORES = ["memory", "sqlite"]
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def make_settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(sqlite_path=tmp_path / "data" / "gql-api.db", dev_secret=DEV_SECRET, **values)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, max_body_bytes=4096, cors_origins="https://app.example")


@pytest.fixture(params=HTTP_STORES)
async def app(
    settings: Settings, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Starlette]:
    store = await closed_store(request.param, tmp_path, request)
    application = create_app(settings, store=store)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.fixture
def token(settings: Settings) -> Callable[..., str]:
    def make(user: str = "alice", **options: Any) -> str:
        return mint_dev_token(settings, DEV_SECRET, user_id=user, **options)

    return make


async def gql(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = None,
    accept: str = JSON,
) -> httpx.Response:
    headers = {"accept": accept}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )


def store_of(app: Starlette) -> PostStore:
    store: PostStore = app.state.store
    return store


async def count_posts(app: Starlette) -> int:
    return len((await store_of(app).list_posts(PageQuery(first=100))).posts)
