"""Verified tokens are remembered (auth/verified.py): a repeated token is not verified
again for a minute, never past its own expiry, and a refused one is never remembered."""

from __future__ import annotations

import time

import jwt
import pytest

from gql_api.auth.dev import DEV_AUDIENCE, DEV_ISSUER, DevAuthenticator, mint_dev_token
from gql_api.auth.identity import LEEWAY_SECONDS, Identity, InvalidToken
from gql_api.auth.verified import REMEMBERED_SECONDS, VerifiedTokens
from gql_api.settings import Settings

SECRET = "v" * 48
SETTINGS = Settings(store="memory", dev_secret=SECRET)


class Counted(DevAuthenticator):
    """The dev authenticator, counting the tokens it verifies."""

    def __init__(self) -> None:
        super().__init__(SETTINGS, SECRET)
        self.verified = 0

    async def authenticate(self, token: str) -> Identity:
        self.verified += 1
        return await super().authenticate(token)


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def token_expiring_in(seconds: float, user_id: str = "u1") -> str:
    now = int(time.time())
    claims = {"sub": user_id, "iss": DEV_ISSUER, "aud": DEV_AUDIENCE, "iat": now}
    return jwt.encode({**claims, "exp": now + int(seconds)}, SECRET, algorithm="HS256")


async def test_a_repeated_token_is_verified_once_a_minute() -> None:
    inner, clock = Counted(), Clock()
    tokens = VerifiedTokens(inner, clock)
    token = mint_dev_token(SETTINGS, SECRET, user_id="u1", admin=True, nickname="Ada")
    first = await tokens.authenticate(token)
    for _ in range(100):
        assert await tokens.authenticate(token) == first
    assert (inner.verified, first) == (1, Identity("u1", is_admin=True, nickname="Ada"))
    clock.now += REMEMBERED_SECONDS + 1
    await tokens.authenticate(token)
    assert inner.verified == 2


async def test_a_remembered_token_is_refused_once_it_expires() -> None:
    inner, clock = Counted(), Clock()
    tokens = VerifiedTokens(inner, clock)
    token = token_expiring_in(5)
    await tokens.authenticate(token)
    clock.now += 5 + LEEWAY_SECONDS - 1  # still within the leeway: remembered
    await tokens.authenticate(token)
    assert inner.verified == 1
    clock.now += 2  # past it: verified again (PyJWT's own clock decides then)
    await tokens.authenticate(token)
    assert inner.verified == 2


async def test_a_refused_token_is_verified_every_time() -> None:
    inner = Counted()
    tokens = VerifiedTokens(inner)
    forged = jwt.encode(
        {"sub": "u1", "iss": DEV_ISSUER, "aud": DEV_AUDIENCE, "exp": int(time.time()) + 60},
        "another secret of at least thirty-two bytes",
        algorithm="HS256",
    )
    for attempt in range(1, 4):
        with pytest.raises(InvalidToken, match="signature"):
            await tokens.authenticate(forged)
        assert inner.verified == attempt


async def test_tokens_of_several_users_answer_their_own_identity() -> None:
    tokens = VerifiedTokens(Counted())
    minted = {user: token_expiring_in(600, user) for user in ("u1", "u2", "u3")}
    for _ in range(3):
        for user, token in minted.items():
            assert (await tokens.authenticate(token)).user_id == user
