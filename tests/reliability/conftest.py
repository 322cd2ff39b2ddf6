"""The reliability suite: the API's promises under concurrency and store outages.

Every scenario runs against every store on its real local server (see tests/servers.py),
through the real GraphQL API. Each test is bounded twice: ``asyncio.timeout`` inside the
scenario (a readable failure), and a hard SIGALRM limit here that fails the test even if
something blocks the event loop, so nothing can hang CI.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from gql_api.app import create_app
from gql_api.auth.dev import mint_dev_token
from gql_api.settings import Settings
from tests.conftest import STORES, closed_store
from tests.helpers import DEV_SECRET

# No scenario may take longer than this, fixtures (server starts) included.
HARD_LIMIT_SECONDS = 240


class ScenarioTimeout(BaseException):
    """Raised by SIGALRM: a BaseException, so no ``except Exception`` swallows it."""


@pytest.fixture(autouse=True)
def hard_time_limit() -> Iterator[None]:
    def expire(signum: int, frame: FrameType | None) -> None:
        raise ScenarioTimeout(f"the scenario ran past its hard limit of {HARD_LIMIT_SECONDS}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, HARD_LIMIT_SECONDS)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def settings_for(tmp_path: Path, **values: Any) -> Settings:
    """The scenarios' clients all come from one address: no rate limits."""
    values = {"writes_per_minute": 0, "cost_per_minute": 0, **values}
    return Settings(sqlite_path=tmp_path / "data" / "gql-api.db", dev_secret=DEV_SECRET, **values)


def token_for(user: str, *, admin: bool = False) -> str:
    return mint_dev_token(Settings(dev_secret=DEV_SECRET), DEV_SECRET, user_id=user, admin=admin)


@pytest.fixture(params=STORES)
async def app(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Starlette]:
    """The real ASGI app (lifespan, endpoint, service) on a fresh store of each kind."""
    store = await closed_store(request.param, tmp_path, request)
    application = create_app(settings_for(tmp_path), store=store)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def gql(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = None,
) -> dict[str, Any]:
    """POST one operation; the JSON body (HTTP errors other than GraphQL's fail here)."""
    headers = {"accept": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    assert response.status_code == 200, (response.status_code, response.text)
    body: dict[str, Any] = response.json()
    return body


def error_codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors") or []]
