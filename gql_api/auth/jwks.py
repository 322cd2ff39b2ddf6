"""Bearer JWTs of an OpenID Connect provider, verified against its JWKS without blocking.

Presets fill in the provider's issuer, keys URL and claims:

- ``cognito``: ``https://cognito-idp.<region>.amazonaws.com/<pool>``; groups in
  ``cognito:groups``; ID tokens carry the app client id in ``aud``, access tokens in
  ``client_id`` (both accepted, each checked).
- ``firebase``: ``https://securetoken.google.com/<project>``, audience the project,
  Google's securetoken keys; admins by a custom claim (``admin: true`` by default).
- ``entra``: ``https://login.microsoftonline.com/<tenant>/v2.0`` (and, as set, v1's
  ``https://sts.windows.net/<tenant>/``), audience the client id; only user access
  tokens (rules in ``gql_api.auth.entra``); groups are object ids, so ``GQL_API_ADMIN_GROUP``
  takes the admin group's object id.

The key set is fetched with an async HTTP client, cached, and fetched again only when
a token names a key id the cache lacks, at most once a minute (once every ten seconds
while the provider cannot be reached), so no request ever waits on more than one
shared fetch, and a flood of forged key ids cannot turn into a flood of fetches. What
it holds is bounded by bytes: a key set over MAX_JWKS_BYTES is refused as it arrives,
and at most MAX_KEYS of its keys are kept.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
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

# Asymmetric algorithms only: with a public key set, "none" and HS* would let anyone
# who has the public key sign tokens.
ALLOWED_ALGORITHMS = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"
)  # fmt: skip
_KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
REFRESH_INTERVAL = 60.0  # seconds between fetches of the key set
RETRY_INTERVAL = 10.0  # seconds between attempts while the provider cannot be reached
FETCH_TIMEOUT = 5.0
MAX_JWKS_BYTES = 256 * 1024
MAX_KEYS = 50  # providers publish a handful; rotation keeps two or three at a time
FIREBASE_JWKS = (
    "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com"
)


@dataclass(frozen=True, slots=True)
class JwtConfig:
    jwks_url: str
    issuer: str
    audience: str | None
    # Cognito access tokens carry the app client id in this claim instead of "aud".
    client_id_claim: str | None = None
    groups_claim: str = "groups"
    admin_claim: str | None = None
    # Entra ID: v1 tokens come from another issuer and may name the API by its URI.
    other_issuers: tuple[str, ...] = ()
    other_audiences: tuple[str, ...] = ()
    # Raises InvalidToken for verified claims of a token that may not act for a user.
    claims_check: Callable[[dict[str, Any]], None] | None = None


def jwt_config(settings: Settings) -> JwtConfig:
    """The provider's settings: the preset's, with any variable given explicitly on top."""
    preset: dict[str, Any] = {}
    if settings.auth == "cognito":
        issuer = (
            f"https://cognito-idp.{settings.cognito_region}.amazonaws.com/"
            f"{settings.cognito_user_pool_id}"
        )
        preset = {
            "jwks_url": f"{issuer}/.well-known/jwks.json",
            "issuer": issuer,
            "audience": settings.cognito_client_id,
            "client_id_claim": "client_id",
        }
    elif settings.auth == "firebase":
        preset = {
            "jwks_url": FIREBASE_JWKS,
            "issuer": f"https://securetoken.google.com/{settings.firebase_project_id}",
            "audience": settings.firebase_project_id,
        }
    elif settings.auth == "entra":
        from gql_api.auth.entra import check_token_kind, entra_preset

        preset = entra_preset(settings)
        preset["claims_check"] = partial(
            check_token_kind, allow_app_tokens=settings.entra_allow_app_tokens
        )
    explicit = {
        "jwks_url": settings.jwks_url,
        "issuer": settings.jwt_issuer,
        "audience": settings.jwt_audience,
    }
    values = {**preset, **{k: v for k, v in explicit.items() if v is not None}}
    if settings.jwt_issuer is not None:  # an explicit value replaces all of the preset's
        values.pop("other_issuers", None)
    if settings.jwt_audience is not None:
        values.pop("other_audiences", None)
    admin_claim = settings.admin_claim
    if admin_claim is None and settings.auth == "firebase":
        admin_claim = "admin"
    groups_claim = settings.groups_claim
    if settings.auth == "cognito" and "groups_claim" not in settings.model_fields_set:
        groups_claim = "cognito:groups"
    return JwtConfig(admin_claim=admin_claim, groups_claim=groups_claim, **values)


class KeySet:
    """The provider's public keys by key id, fetched lazily and refreshed sparingly."""

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        transport: Any = None,
    ) -> None:
        import httpx

        self.url = url
        self.fetches = 0
        self._keys: dict[str, tuple[Any, str | None]] = {}  # kid -> (PyJWK, its "alg")
        self.held_bytes = 0  # the size of the key set the keys came from
        self._clock = clock
        self._next_fetch = float("-inf")
        self._lock = asyncio.Lock()
        self._http = httpx.AsyncClient(
            timeout=FETCH_TIMEOUT, transport=transport, follow_redirects=False
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def key(self, kid: str) -> tuple[Any, str | None]:
        """The key named ``kid``: cached, or after one (rate-limited) fetch of the set."""
        if kid in self._keys:
            return self._keys[kid]
        async with self._lock:  # one fetch serves every request waiting for it
            if kid not in self._keys and self._clock() >= self._next_fetch:
                await self._fetch()
        if kid not in self._keys:
            if not self._keys:
                raise InvalidToken(
                    "signing keys are unavailable; try again shortly",
                    f"no keys from {self.url} yet",
                )
            raise InvalidToken("token is signed with an unknown key", f"unknown kid {kid!r:.80}")
        return self._keys[kid]

    @property
    def known(self) -> list[str]:
        """The key ids held now."""
        return list(self._keys)

    async def refresh(self) -> None:
        """Fetch the key set now (for checks; requests use ``key``)."""
        async with self._lock:
            await self._fetch()

    async def _fetch(self) -> None:
        """Fetch the set; on any failure keep the keys held and try again only later."""
        self.fetches += 1
        self._next_fetch = self._clock() + RETRY_INTERVAL  # until this fetch succeeds
        try:
            raw = await self._download()
            keys = _parse_key_set(raw)
        except Exception as error:  # noqa: BLE001 - the provider is down or answers nonsense
            log.warning("cannot fetch the key set from %s: %r", self.url, error)
            return
        if not keys:
            log.warning(
                "the key set from %s holds no usable signing key; keeping %d",
                self.url,
                len(self._keys),
            )
            return
        self._keys, self.held_bytes = keys, len(raw)
        self._next_fetch = self._clock() + REFRESH_INTERVAL
        log.info("fetched %d signing keys from %s", len(keys), self.url)

    async def _download(self) -> bytes:
        return await _download(self._http, self.url)


async def _download(http: Any, url: str) -> bytes:
    """The document's bytes, refusing a body over MAX_JWKS_BYTES as it arrives."""
    async with http.stream("GET", url, headers={"accept": "application/json"}) as response:
        response.raise_for_status()
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_JWKS_BYTES:
                raise ValueError(f"document over {MAX_JWKS_BYTES} bytes")
        return bytes(body)


async def fetch_discovery(url: str, *, transport: Any = None) -> dict[str, Any]:
    """The provider's OpenID discovery document, bounded like the key set (for checks)."""
    import httpx

    async with httpx.AsyncClient(
        timeout=FETCH_TIMEOUT, transport=transport, follow_redirects=False
    ) as http:
        document = json.loads(await _download(http, url))
    if not isinstance(document, dict) or not isinstance(document.get("issuer"), str):
        raise ValueError("not a discovery document: no issuer")
    return document


def _parse_key_set(raw: bytes) -> dict[str, tuple[Any, str | None]]:
    from jwt import PyJWK

    document = json.loads(raw)
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError("no list of keys")
    keys: dict[str, tuple[Any, str | None]] = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig" or "kid" not in entry:
            continue
        if len(keys) == MAX_KEYS:
            log.warning("the key set holds over %d signing keys; keeping the first", MAX_KEYS)
            break
        try:
            keys[str(entry["kid"])] = (PyJWK(entry), entry.get("alg"))
        except Exception as error:  # noqa: BLE001 - one bad key must not spoil the others
            log.info("skipping key %r: %s", entry.get("kid"), error)
    return keys


class JwksAuthenticator:
    def __init__(self, settings: Settings, config: JwtConfig, keys: KeySet) -> None:
        self._settings = settings
        self.config = config
        self.keys = keys

    async def close(self) -> None:
        await self.keys.close()

    async def authenticate(self, token: str) -> Identity:
        import jwt

        check_token_size(token)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise InvalidToken("token is malformed", f"header: {error}") from None
        algorithm = header.get("alg")
        if algorithm not in ALLOWED_ALGORITHMS:
            raise InvalidToken(
                "token algorithm is not accepted", f"alg {algorithm!r:.40} is not asymmetric"
            )
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidToken("token names no signing key", "no kid in the header")
        key, declared = await self.keys.key(kid)
        if _KEY_TYPES.get(str(algorithm)[:2]) != key.key_type or declared not in (None, algorithm):
            raise InvalidToken(
                "token algorithm does not match its key",
                f"alg {algorithm} with a {key.key_type} key declared for {declared}",
            )
        claims = self._verified_claims(token, key.key, str(algorithm))
        if self.config.claims_check is not None:
            self.config.claims_check(claims)
        return identity_from_claims(
            claims,
            self._settings,
            groups_claim=self.config.groups_claim,
            admin_claim=self.config.admin_claim,
        )

    def _verified_claims(self, token: str, key: Any, algorithm: str) -> dict[str, Any]:
        import jwt

        config = self.config
        access_token = False
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
            access_token = (
                config.client_id_claim is not None and unverified.get("token_use") == "access"
            )
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                issuer=[config.issuer, *config.other_issuers],
                audience=(
                    None
                    if access_token or config.audience is None
                    else [config.audience, *config.other_audiences]
                ),
                leeway=LEEWAY_SECONDS,
                options={
                    "require": ["exp", "iss", "sub"],
                    "verify_aud": config.audience is not None and not access_token,
                },
            )
        except jwt.ExpiredSignatureError as error:
            raise InvalidToken("token has expired", str(error)) from None
        except jwt.ImmatureSignatureError as error:
            raise InvalidToken("token is not valid yet", str(error)) from None
        except jwt.InvalidIssuerError as error:
            raise InvalidToken("token is from another issuer", str(error)) from None
        except jwt.InvalidAudienceError as error:
            raise InvalidToken("token is for another audience", str(error)) from None
        except jwt.InvalidSignatureError as error:
            raise InvalidToken("token signature is invalid", str(error)) from None
        except jwt.MissingRequiredClaimError as error:
            raise InvalidToken(f"token has no {error.claim} claim", str(error)) from None
        except jwt.PyJWTError as error:
            raise InvalidToken("token is invalid", f"{type(error).__name__}: {error}") from None
        if access_token and claims.get(config.client_id_claim or "") != config.audience:
            raise InvalidToken(
                "token is for another audience",
                f"{config.client_id_claim} is {claims.get(config.client_id_claim or '')!r:.80}",
            )
        return claims


def build_jwks_authenticator(settings: Settings, *, transport: Any = None) -> JwksAuthenticator:
    config = jwt_config(settings)
    return JwksAuthenticator(settings, config, KeySet(config.jwks_url, transport=transport))
