"""How the migration calls the source and the target: bounded in time, held to a rate,
and retried with backoff while either throttles or is briefly away."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from aiolimiter import AsyncLimiter
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from gql_api.ops.migration.sources import Kind, LegacyPage, LegacySource, SourceUnavailable
from gql_api.stores.base import DatabaseUnavailable

T = TypeVar("T")

# What a pause may cure: a throttled or briefly unavailable database, a call too slow.
RETRIED = (DatabaseUnavailable, SourceUnavailable, TimeoutError)


@dataclass(frozen=True, slots=True)
class CallOptions:
    rate: float = 0.0  # items a second, read and written; 0: no limit
    timeout: float = 10.0  # seconds one call may take
    attempts: int = 8  # tries of one call before the migration stops (its place kept)
    page_size: int = 100


class Calls:
    def __init__(self, options: CallOptions, notice: Callable[[str], None] | None = None) -> None:
        self.options = options
        self._notice = notice  # told of each retry, in a line
        self.retries = 0  # calls tried again, for the summary
        rate = options.rate
        # A bucket of one second's items: a burst never exceeds the rate over a second.
        self._limiter = AsyncLimiter(rate, 1.0) if rate > 0 else None

    async def item(self) -> None:
        """Wait for the rate limit to allow one more item."""
        if self._limiter is not None:
            await self._limiter.acquire()

    async def __call__(self, make: Callable[[], Awaitable[T]]) -> T:
        """``make()`` awaited in time, tried again on what a pause may cure."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(RETRIED),
            wait=wait_exponential_jitter(multiplier=0.1, max=10.0, jitter=0.1),
            stop=stop_after_attempt(self.options.attempts),
            before_sleep=self._count,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                async with asyncio.timeout(self.options.timeout):
                    return await make()
        raise AssertionError("unreachable: tenacity reraises the last error")

    async def page(self, source: LegacySource, kind: Kind, after: str | None) -> LegacyPage:
        """The source's page after ``after``, a page of the configured size."""
        return await self(lambda: source.page(kind, after, self.options.page_size))

    def _count(self, state: RetryCallState) -> None:
        self.retries += 1
        if self._notice is not None and state.outcome is not None:
            error = state.outcome.exception()
            pause = state.next_action.sleep if state.next_action else 0.0
            self._notice(
                f"{str(error) or type(error).__name__}; trying again in {pause:.1f} s "
                f"(attempt {state.attempt_number + 1} of {self.options.attempts})"
            )
