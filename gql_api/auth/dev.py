"""Dev tokens: HS256 JWTs that ``gql-api token`` prints, signed with a secret of the
developer's machine (``GQL_API_DEV_SECRET``, else a private file made on first use).
For a developer's machine only: refused where deployed (``Settings.deployed_on``).
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

from gql_api.auth.identity import (
    LEEWAY_SECONDS,
    Identity,
    InvalidToken,
    check_token_size,
    identity_from_claims,
)
from gql_api.settings import Settings

log = logging.getLogger(__name__)

DEV_ISSUER = "gql-api-dev"
DEV_AUDIENCE = "gql-api"


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
