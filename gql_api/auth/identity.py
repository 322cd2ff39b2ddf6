"""Who is calling: bearer tokens turned into an ``Identity``.

``Authenticator`` is the seam identity providers plug into: JWKS-verified JWTs of
Cognito, Firebase Auth, Entra ID (``gql_api.auth.jwks``), and the dev tokens of
``gql_api.auth.dev``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from gql_api.domain.validation import LIMITS, clean_nickname, has_surrogates
from gql_api.settings import Settings

log = logging.getLogger(__name__)

MAX_TOKEN_BYTES = 8 * 1024
LEEWAY_SECONDS = 30


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    is_admin: bool = False
    nickname: str | None = None
    # The exp claim of the token it came from (seconds since the epoch): how long it may
    # be remembered (auth/verified.py); None when it came from no token.
    expires_at: float | None = field(default=None, compare=False, repr=False)


class InvalidToken(Exception):
    """A bearer token that must not be trusted. ``reason`` is safe to show the client."""

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail or reason


class Authenticator(Protocol):
    async def authenticate(self, token: str) -> Identity:
        """Verify ``token``; raise ``InvalidToken`` when it must not be trusted."""

    async def close(self) -> None:
        """Release what it holds (an HTTP client for the provider's keys)."""


def identity_from_claims(
    claims: dict[str, Any],
    settings: Settings,
    *,
    groups_claim: str | None = None,
    admin_claim: str | None = None,
) -> Identity:
    """Map verified claims to an identity: ``sub`` is the user id; admins by group, or by a
    custom claim set to true (Firebase)."""
    subject = claims.get("sub")
    if (
        not isinstance(subject, str)
        or not subject
        or len(subject) > LIMITS.max_user_id_length
        or has_surrogates(subject)
    ):
        raise InvalidToken("token has no usable subject", f"bad sub claim: {subject!r:.80}")
    groups = claims.get(groups_claim or settings.groups_claim) or []
    if isinstance(groups, str):
        groups = [groups]
    is_admin = isinstance(groups, list) and settings.admin_group in groups
    if admin_claim is not None and claims.get(admin_claim) is True:
        is_admin = True
    expires = claims.get("exp")
    return Identity(
        user_id=subject,
        is_admin=is_admin,
        nickname=clean_nickname(claims.get("nickname")),
        expires_at=float(expires) if isinstance(expires, int | float) else None,
    )


def check_token_size(token: str) -> None:
    if len(token) > MAX_TOKEN_BYTES:
        raise InvalidToken("token is too large", f"token of {len(token)} characters")
