"""What the live transports share (``http/live.py``): the process's connections counted
against their limit and closed at shutdown, refusals as GraphQL errors, first-of waits."""

from __future__ import annotations

import asyncio

import pytest

from gql_api.execution.executor import RequestError
from gql_api.http.live import LiveConnections, TooManyConnections, first_of, refusal
from gql_api.http.params import HttpError


async def test_connections_are_counted_against_their_limit() -> None:
    connections = LiveConnections(2)
    closed: list[int] = []

    def closer(n: int):  # type: ignore[no-untyped-def]
        async def close() -> None:
            closed.append(n)

        return close

    first = connections.hold(closer(1))
    connections.hold(closer(2))
    with pytest.raises(TooManyConnections):
        connections.hold(closer(3))
    connections.release(first)
    connections.hold(closer(4))
    await connections.close_all()
    assert sorted(closed) == [2, 4] and len(connections) == 0


async def test_a_failing_close_does_not_stop_the_others() -> None:
    connections = LiveConnections(5)
    closed: list[str] = []

    async def broken() -> None:
        raise RuntimeError("gone")

    async def fine() -> None:
        closed.append("fine")

    connections.hold(broken)
    connections.hold(fine)
    await connections.close_all()
    assert closed == ["fine"]


def test_refusals_are_graphql_errors() -> None:
    errors = [{"message": "m", "extensions": {"code": "X"}}]
    assert refusal(RequestError(errors)) == errors
    assert refusal(HttpError(429, "RATE_LIMITED", "slow down")) == [
        {"message": "slow down", "extensions": {"code": "RATE_LIMITED"}}
    ]
    with pytest.raises(ZeroDivisionError):
        refusal(ZeroDivisionError())


async def test_first_of_raises_what_the_first_raised_and_cancels_the_rest() -> None:
    never = asyncio.Event()

    async def fails() -> None:
        raise ValueError("first")

    waiter = asyncio.ensure_future(never.wait())
    with pytest.raises(ValueError, match="first"):
        await first_of(fails(), waiter)
    await asyncio.sleep(0)
    assert waiter.cancelled()
