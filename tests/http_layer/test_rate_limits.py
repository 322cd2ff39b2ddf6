"""Rate limits per user and per address: writes and the cost of reads, 429 with
Retry-After, refilled as time passes; the real app over ASGI, its clock stepped."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import parse
from starlette.applications import Starlette

from gql_api.app import create_app
from gql_api.auth.dev import mint_dev_token
from gql_api.execution.cost import estimate_cost
from gql_api.http.rate_limits import RateLimiter, RateLimits
from gql_api.settings import Settings
from gql_api.stores.memory import MemoryStore
from tests.helpers import DEV_SECRET, Clock

CREATE = 'mutation { createPost(input: {content: "hi"}) { id } }'
FEED = "{ posts(first: 100) { nodes { id content tags author { userId nickname } } } }"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def app(tmp_path: Path, clock: Clock) -> AsyncIterator[Starlette]:
    settings = Settings(
        sqlite_path=tmp_path / "db.sqlite",
        dev_secret=DEV_SECRET,
        writes_per_minute=3,
        cost_per_minute=2_000,
        trusted_proxies=1,
    )
    application = create_app(settings, store=MemoryStore())
    endpoint = application.state.runtime.endpoint
    endpoint.rate_limiter = RateLimiter(
        RateLimits(writes_per_minute=3, cost_per_minute=2_000), clock=clock
    )
    async with application.router.lifespan_context(application):
        yield application


async def post(
    app: Starlette, query: str, *, user: str | None = None, address: str = "203.0.113.7"
) -> httpx.Response:
    headers = {"x-forwarded-for": f"198.51.100.1, {address}"}  # the proxy appends the peer
    if user is not None:
        token = mint_dev_token(Settings(dev_secret=DEV_SECRET), DEV_SECRET, user_id=user)
        headers["authorization"] = f"Bearer {token}"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.post("/graphql", json={"query": query}, headers=headers)


def refused(response: httpx.Response) -> bool:
    if response.status_code != 429:
        assert response.status_code == 200 and "errors" not in response.json(), response.text
        return False
    body: dict[str, Any] = response.json()
    assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert int(response.headers["retry-after"]) >= 1
    return True


async def test_a_users_writes_are_limited_and_refill(app: Starlette, clock: Clock) -> None:
    assert [refused(await post(app, CREATE, user="ada")) for _ in range(4)] == [
        False,
        False,
        False,
        True,
    ]
    limited = await post(app, CREATE, user="ada")
    assert limited.headers["retry-after"] == "20"  # a write comes back every 20 s
    assert not refused(await post(app, CREATE, user="bob"))  # another user's own bucket
    clock.now += 20
    assert not refused(await post(app, CREATE, user="ada"))
    assert refused(await post(app, CREATE, user="ada"))


async def test_aliased_mutations_count_one_write_each(app: Starlette) -> None:
    four = " ".join(f'c{n}: createPost(input: {{content: "hi"}}) {{ id }}' for n in range(4))
    assert refused(await post(app, f"mutation {{ {four} }}", user="ada"))
    assert not refused(await post(app, CREATE, user="ada"))  # the refusal spent nothing


async def test_one_address_writes_for_ten_users_at_most(app: Starlette) -> None:
    answers = [refused(await post(app, CREATE, user=f"user{n}")) for n in range(11)]
    answers += [refused(await post(app, CREATE, user=f"user{n}")) for n in range(11)]
    answers += [refused(await post(app, CREATE, user=f"user{n}")) for n in range(11)]
    assert answers.count(False) == 30  # 3 writes a minute x 10 users, from one address
    assert not refused(await post(app, CREATE, user="user11", address="192.0.2.9"))
    assert refused(await post(app, CREATE, user="user1", address="192.0.2.9"))  # its own 3


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("203.0.113.8:50001", "203.0.113.8:50002"),  # Azure's front ends: ip:port
        ("[2001:db8::8]:50001", "2001:db8::8"),
    ],
)
async def test_an_address_is_one_address_whatever_its_port(
    app: Starlette, first: str, second: str
) -> None:
    # 31 users writing once each, from the two forms in turn: one address's 30 a minute.
    writes = [
        refused(await post(app, CREATE, user=f"u{n}", address=(first, second)[n % 2]))
        for n in range(31)
    ]
    assert writes == [False] * 30 + [True]


@pytest.mark.parametrize("user", [None, "ada"], ids=["anonymous", "signed in"])
async def test_expensive_reads_are_limited_by_their_cost(
    app: Starlette, clock: Clock, user: str | None
) -> None:
    cost = estimate_cost(parse(FEED), None, None)  # 701
    fitting = 2_000 // cost
    costs = [refused(await post(app, FEED, user=user)) for _ in range(fitting + 2)]
    assert costs == [False] * fitting + [True, True]
    assert not refused(await post(app, "{ limits { maxTags } }", user=user))  # cheap: fits
    # Anonymous reads are counted per address; signed-in ones per user, wherever from.
    assert refused(await post(app, FEED, user=user, address="192.0.2.9")) is (user is not None)
    clock.now += 60 * cost / 2_000
    assert not refused(await post(app, FEED, user=user))


async def test_limits_can_be_turned_off(tmp_path: Path) -> None:
    settings = Settings(
        sqlite_path=tmp_path / "db.sqlite", dev_secret=DEV_SECRET, writes_per_minute=0
    )
    application = create_app(settings, store=MemoryStore())
    async with application.router.lifespan_context(application):
        answers = [refused(await post(application, CREATE, user="ada")) for _ in range(80)]
    assert not any(answers)
