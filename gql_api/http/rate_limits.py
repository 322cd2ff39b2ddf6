"""Rate limits per signed-in user and per client address: writes, and what reads cost.

Token buckets, refilled continuously: a bucket holds a minute's allowance and refills at
that allowance a minute, so a client may spend a minute's worth at once, then waits.

- Writes: each mutation field (aliases included) is one write, spent from the user's
  bucket (``writes_per_minute``) and from the address's (ten times as many: an office
  behind one address holds many users).
- Reads: each request spends its estimated cost (``gql_api.execution.cost``) from the user's
  bucket when signed in, else from the address's (``cost_per_minute``).

A refusal spends nothing and says when to come back (``Retry-After``). The buckets live
in this process, bounded by bytes (the clients seen longest ago are forgotten first):
they are per instance, not shared, so N instances let a client through up to N times
as fast; the platform's throttles and the function's reserved concurrency bound the
whole fleet (README, "Rate limits").
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from gql_api.caches import ByteBoundedCache

ADDRESS_SHARE = 10  # an address's write allowance, in users' allowances
BUCKETS_BYTES = 4 * 1024 * 1024  # some 20,000 clients at a time
BUCKET_OVERHEAD = 150  # a bucket's list, its two floats and its cache entry


@dataclass(frozen=True, slots=True)
class RateLimits:
    writes_per_minute: int = 60  # 0: no limit
    cost_per_minute: int = 1_000_000  # 0: no limit


class RateLimited(Exception):
    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class RateLimiter:
    def __init__(self, limits: RateLimits, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._buckets: ByteBoundedCache[str, list[float]] = ByteBoundedCache(BUCKETS_BYTES)

    def check(self, *, user: str | None, address: str | None, writes: int, cost: int) -> None:
        """Spend what one request asks for, or raise ``RateLimited`` and spend nothing."""
        wanted: list[tuple[str, float, float]] = []  # (bucket, allowance a minute, tokens)
        if writes and self.limits.writes_per_minute:
            per_minute = self.limits.writes_per_minute
            if user is not None:
                wanted.append((f"w:u:{user}", per_minute, writes))
            if address is not None:
                wanted.append((f"w:a:{address}", per_minute * ADDRESS_SHARE, writes))
        if cost and self.limits.cost_per_minute:
            who = f"u:{user}" if user is not None else None if address is None else f"a:{address}"
            if who is not None:
                wanted.append((f"c:{who}", self.limits.cost_per_minute, cost))
        now = self._clock()
        buckets = [
            (self._bucket(name, allowance, now), allowance, n) for name, allowance, n in wanted
        ]
        waits = [
            (n - bucket[0]) * 60 / allowance for bucket, allowance, n in buckets if bucket[0] < n
        ]
        if waits:
            raise RateLimited(
                "too many requests from this user or address: try again later",
                retry_after=max(1, math.ceil(min(max(waits), 60))),
            )
        for bucket, _, n in buckets:
            bucket[0] -= n

    def _bucket(self, name: str, allowance: float, now: float) -> list[float]:
        """[tokens, last refill] of ``name``, refilled up to now (a new one is full)."""
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = [allowance, now]
            self._buckets.put(name, bucket, sys.getsizeof(name) + BUCKET_OVERHEAD)
        else:
            bucket[0] = min(allowance, bucket[0] + (now - bucket[1]) * allowance / 60)
            bucket[1] = now
        return bucket


def client_address(forwarded_for: str, peer: str | None, trusted_proxies: int) -> str | None:
    """The client's address: the connection's peer (API Gateway's source address on
    Lambda), or the entry ``trusted_proxies`` from the right of X-Forwarded-For, as the
    proxies in front of this server append it (never what a client wrote)."""
    if trusted_proxies:
        hops = [hop.strip() for hop in forwarded_for.split(",")]
        if len(hops) >= trusted_proxies and hops[-trusted_proxies]:
            return _without_port(hops[-trusted_proxies])[:64]
    return peer


def _without_port(hop: str) -> str:
    """An X-Forwarded-For entry's address: Azure's front ends write ``ip:port`` (a new
    port per connection, which would make each connection an address of its own)."""
    if hop.startswith("["):  # [IPv6]:port
        return hop[1:].partition("]")[0]
    if hop.count(":") == 1:  # IPv4:port (a bare IPv6 address has several colons)
        return hop.partition(":")[0]
    return hop
