"""Tokens verified a moment ago, remembered: a client sends the same bearer token with
every request, and verifying it (the signature, then every claim) costs PyJWT some 60 µs
for HS256 and more for RS256, several percent of a whole request.

Only tokens that verified are kept, each until the sooner of a minute after it verified
and its own ``exp`` (with the leeway the verification allows); a token that fails is
verified again each time. A signing key withdrawn from the provider's key set stops
being honoured within that minute.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from gql_api.auth.identity import LEEWAY_SECONDS, Authenticator, Identity
from gql_api.caches import ByteBoundedCache

REMEMBERED_SECONDS = 60.0
REMEMBERED_BYTES = 4 * 1024 * 1024
# What an entry holds beside its token: the identity, its strings, the tuple, the entry.
ENTRY_BYTES = 600


class VerifiedTokens:
    """An ``Authenticator`` that asks ``inner`` only about tokens it has not verified in
    the last minute."""

    def __init__(self, inner: Authenticator, clock: Callable[[], float] = time.time) -> None:
        self.inner = inner
        self._clock = clock
        self._verified: ByteBoundedCache[str, tuple[Identity, float]] = ByteBoundedCache(
            REMEMBERED_BYTES
        )

    async def authenticate(self, token: str) -> Identity:
        now = self._clock()
        remembered = self._verified.get(token)
        if remembered is not None and now < remembered[1]:
            return remembered[0]
        identity = await self.inner.authenticate(token)
        until = now + REMEMBERED_SECONDS
        if identity.expires_at is not None:
            until = min(until, identity.expires_at + LEEWAY_SECONDS)
        self._verified.put(token, (identity, until), sys.getsizeof(token) + ENTRY_BYTES)
        return identity

    async def close(self) -> None:
        await self.inner.close()
