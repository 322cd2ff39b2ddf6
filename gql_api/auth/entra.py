"""The Entra ID preset: issuers by token version, and which tokens may act for a user.

Access tokens come in two formats, chosen by the API's app registration
(``accessTokenAcceptedVersion``), not by the endpoint the client used:

- v2.0: ``iss`` is ``https://login.microsoftonline.com/<tenant>/v2.0``, ``aud`` always
  the API's client id;
- v1.0: ``iss`` is ``https://sts.windows.net/<tenant>/``, ``aud`` the client id or an
  application ID URI (``api://<client-id>``, with or without a trailing slash).

``GQL_API_ENTRA_TOKEN_VERSION`` (``2``, ``1`` or ``any``) says which are accepted. Only a
user's access token may act for a user:

- a user (delegated) access token carries ``scp``, the scopes the user consented to;
- an app-only token (client credentials) carries ``roles`` and no ``scp``, and
  ``idtyp=app`` where the optional claim is on; refused unless
  ``GQL_API_ENTRA_ALLOW_APP_TOKENS=true``;
- an ID token has no ``scp``, no ``idtyp`` and no client claim (``azp``, ``appid``): it
  says who signed in to the client, not that the client may call this API.

(Microsoft identity platform: "Access token claims reference", "ID token claims
reference", "Optional claims reference" for ``idtyp``.)
"""

from __future__ import annotations

import re
from typing import Any

from gql_api.auth.identity import InvalidToken
from gql_api.settings import Settings

LOGIN = "https://login.microsoftonline.com"
GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


def v2_issuer(tenant: str) -> str:
    return f"{LOGIN}/{tenant}/v2.0"


def v1_issuer(tenant: str) -> str:
    return f"https://sts.windows.net/{tenant}/"


def entra_preset(settings: Settings) -> dict[str, Any]:
    """The JwtConfig fields of the preset for the tenant and token version set."""
    tenant, client = settings.entra_tenant_id or "", settings.entra_client_id or ""
    version = settings.entra_token_version
    issuers = {"2": [v2_issuer(tenant)], "1": [v1_issuer(tenant)]}.get(
        version, [v2_issuer(tenant), v1_issuer(tenant)]
    )
    # v1 tokens name the API by its application ID URI as often as by its client id.
    uris = () if version == "2" else (f"api://{client}", f"api://{client}/")
    # The keys endpoint each version's discovery document names (the tenant's keys sign both).
    keys = "discovery/keys" if version == "1" else "discovery/v2.0/keys"
    return {
        "jwks_url": f"{LOGIN}/{tenant}/{keys}",
        "issuer": issuers[0],
        "other_issuers": tuple(issuers[1:]),
        "audience": client,
        "other_audiences": uris,
    }


def discovery_url(settings: Settings) -> str:
    """The OpenID discovery document of the preset's first issuer."""
    if settings.oidc_discovery_url is not None:
        return settings.oidc_discovery_url
    version = settings.entra_token_version
    path = "" if version == "1" else "/v2.0"
    return f"{LOGIN}/{settings.entra_tenant_id}{path}/.well-known/openid-configuration"


def check_token_kind(claims: dict[str, Any], *, allow_app_tokens: bool) -> None:
    """Refuse what is not a user's access token (an app-only token unless allowed)."""
    kind = claims.get("idtyp")
    scopes = claims.get("scp")
    has_scopes = isinstance(scopes, str) and bool(scopes.strip())
    client = claims.get("azp") or claims.get("appid")  # only access tokens name the client
    app_only = kind == "app" or (
        kind is None and not has_scopes and "roles" in claims and bool(client)
    )
    if app_only:
        if allow_app_tokens:
            return
        raise InvalidToken(
            "app-only tokens are not accepted",
            f"idtyp {kind!r:.20}, scp {has_scopes}, roles {'roles' in claims}, client "
            f"{client!r:.60}; GQL_API_ENTRA_ALLOW_APP_TOKENS=true accepts them",
        )
    if kind not in (None, "user"):
        raise InvalidToken("token is not a user access token", f"idtyp {kind!r:.40}")
    if not has_scopes:
        raise InvalidToken(
            "token is not an access token (ID tokens are not accepted)",
            f"no scp; nonce: {'nonce' in claims}, client: {client!r:.60}",
        )


def issuer_fix(found: str, document: dict[str, Any]) -> str:
    """What to set when the discovery document names another issuer than configured."""
    for prefix, suffix in ((f"{LOGIN}/", "/v2.0"), ("https://sts.windows.net/", "/")):
        tenant = found.removeprefix(prefix).removesuffix(suffix)
        if found == f"{prefix}{tenant}{suffix}" and GUID.fullmatch(tenant):
            return f"set GQL_API_ENTRA_TENANT_ID={tenant}"
    # Another cloud (national clouds, External ID's ciamlogin.com) signs with other keys.
    return (
        f"this tenant's tokens come from {found}: set GQL_API_JWT_ISSUER={found} and "
        f"GQL_API_JWKS_URL={document.get('jwks_uri', '<the document jwks_uri>')}"
    )
