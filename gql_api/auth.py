"""Who is calling: bearer tokens turned into an ``Identity``.

``Authenticator`` is the seam production identity providers plug into (JWKS-verified
JWTs of Cognito, Firebase Auth, Entra ID); ``DevAuthenticator`` verifies the HS256
tokens that ``gql-api token`` prints, for local use only.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gql_api.settings import Settings
from gql_api.validation import LIMITS, clean_nickname, has_surrogates

log = logging.getLogger(__name__)

MAX_TOKEN_BYTES = 8 * 1024
DEV_ISSUER = "gql-api-dev"
DEV_AUDIENCE = "gql-api"
LEEWAY_SECONDS = 30


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    is_admin: bool = False
    nickname: str | None = None


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
    return Identity(
        user_id=subject, is_admin=is_admin, nickname=clean_nickname(claims.get("nickname"))
    )


class DevAuthenticator:
    """HS256 tokens signed with the dev secret."""

    def __init__(self, settings: Settings, secret: str) -> None:
        self._settings = settings
        self._secret = secret

    async def close(self) -> None:
        return None

    async def authenticate(self, token: str) -> Identity:
        import jwt  # imported on first use: it loads cryptography, which a cold start pays for

        check_token_size(token)
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                audience=DEV_AUDIENCE,
                issuer=DEV_ISSUER,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("token has expired", str(exc)) from None
        except jwt.InvalidSignatureError as exc:
            raise InvalidToken("token signature is invalid", str(exc)) from None
        except jwt.PyJWTError as exc:
            raise InvalidToken("token is invalid", f"{type(exc).__name__}: {exc}") from None
        return identity_from_claims(claims, self._settings)


def check_token_size(token: str) -> None:
    if len(token) > MAX_TOKEN_BYTES:
        raise InvalidToken("token is too large", f"token of {len(token)} characters")


def mint_dev_token(
    settings: Settings,
    secret: str,
    *,
    user_id: str,
    admin: bool = False,
    nickname: str | None = None,
    ttl_seconds: int = 12 * 3600,
) -> str:
    import jwt

    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": user_id,
        "iss": DEV_ISSUER,
        "aud": DEV_AUDIENCE,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    if admin:
        claims[settings.groups_claim] = [settings.admin_group]
    if nickname is not None:
        claims["nickname"] = nickname
    return jwt.encode(claims, secret, algorithm="HS256")


class DevSecretError(Exception):
    """The dev secret file cannot be trusted or read; the message says how to fix it."""


def dev_secret(settings: Settings) -> str:
    """``GQL_API_DEV_SECRET``, else the ``dev-secret`` file beside the SQLite database.

    The file is created on first use with mode 0600 (atomically, so two processes
    starting together agree on one secret). Blocking: call it at start-up, not per request.
    An existing file is used only if it is this user's own and nobody else can read or
    change it: in a shared data directory another user could otherwise plant a secret
    they know and sign in as anyone. ``DevSecretError`` otherwise.
    """
    if settings.dev_secret is not None:
        return settings.dev_secret.get_secret_value()
    path = settings.data_dir / "dev-secret"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise
        return _read_secret(path)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secrets.token_urlsafe(48) + "\n")
    return _read_secret(path)


def _read_secret(path: Path) -> str:
    for _ in range(50):  # another process may be writing it this instant
        secret = _read_own_file(path).strip()
        if secret:
            break
        time.sleep(0.01)
    else:
        raise DevSecretError(f"{path} is empty: delete it to have a new dev secret made")
    if len(secret) < 32:
        raise DevSecretError(f"{path} holds a secret shorter than 32 characters: delete it")
    return secret


def _read_own_file(path: Path) -> str:
    """The file's text, checked on the very file opened (no symlink, no swap between the
    check and the read): owned by this user, no access for group or others."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise DevSecretError(f"{path} cannot be opened ({exc.strerror}): delete it") from None
    with os.fdopen(descriptor) as handle:
        status = os.fstat(handle.fileno())
        if status.st_uid != os.getuid():
            raise DevSecretError(
                f"{path} belongs to another user (uid {status.st_uid}): dev tokens would be "
                "signed with a secret someone else chose. Delete it, or set GQL_API_DEV_SECRET"
            )
        if status.st_mode & 0o077:
            raise DevSecretError(
                f"{path} can be read or written by other users (mode "
                f"{status.st_mode & 0o777:o}): run `chmod 600 {path}`, or delete it to have "
                "a new one made"
            )
        return handle.read()
