"""The Entra ID preset: GUID tenants, v1 and v2 issuers, user access tokens only, and the
doctor's issuer check, against real key and discovery servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from gql_api.app import create_app
from gql_api.auth.entra import v1_issuer, v2_issuer
from gql_api.auth.identity import InvalidToken
from gql_api.auth.jwks import JwksAuthenticator, build_jwks_authenticator
from gql_api.ops.doctor import run_checks
from gql_api.settings import Settings, SettingsError, load_settings
from gql_api.stores.memory import MemoryStore
from tests.helpers import cli_env, run_cli
from tests.test_jwt_auth import JwksServer, SigningKey, claims

TENANT = "5f1c7a52-1b2c-4d3e-8f90-0123456789ab"
API = "6e74172b-be56-4843-9ff4-e66a39bb12e3"  # the API's client id
SPA = "0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5"  # the client that signs users in
ADMINS = "5f1c7a52-0000-4000-8000-00000000ad01"
V2, V1 = v2_issuer(TENANT), v1_issuer(TENANT)


def user_v2(**overrides: Any) -> dict[str, Any]:
    """A user's v2.0 access token for the API, as the access token reference lists it."""
    values = {"iss": V2, "aud": API, "ver": "2.0", "tid": TENANT, "azp": SPA}
    return claims(**{**values, "scp": "access_as_user", **overrides})


def user_v1(**overrides: Any) -> dict[str, Any]:
    values = {"iss": V1, "aud": f"api://{API}", "ver": "1.0", "tid": TENANT, "appid": SPA}
    return claims(**{**values, "scp": "user_impersonation", **overrides})


def id_token(**overrides: Any) -> dict[str, Any]:
    """An ID token of a client registered as the API itself: its aud is the API's id."""
    values = {"iss": V2, "aud": API, "ver": "2.0", "tid": TENANT, "nonce": "n-0S6_WzA2Mj"}
    return claims(**{**values, **overrides})


def app_only(**overrides: Any) -> dict[str, Any]:
    """A daemon's client-credentials token: roles, no scp."""
    values = {"iss": V2, "aud": API, "ver": "2.0", "tid": TENANT, "azp": "daemon-app-id"}
    return claims(**{**values, "sub": "sp-object-id", "roles": ["Posts.Write"], **overrides})


@pytest.fixture
async def keys() -> AsyncIterator[JwksServer]:
    server = JwksServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def key(keys: JwksServer) -> SigningKey:
    signing = SigningKey("entra-1")
    keys.keys = [signing.jwk]
    return signing


def entra(keys: JwksServer, **values: Any) -> Settings:
    base = {"auth": "entra", "entra_tenant_id": TENANT, "entra_client_id": API}
    return Settings(**{**base, "jwks_url": keys.url, "admin_group": ADMINS, **values})


@pytest.fixture
async def verifier(keys: JwksServer, key: SigningKey) -> AsyncIterator[JwksAuthenticator]:
    authenticator = build_jwks_authenticator(entra(keys))
    yield authenticator
    await authenticator.close()


async def reason(verifier: JwksAuthenticator, token: str) -> str:
    with pytest.raises(InvalidToken) as raised:
        await verifier.authenticate(token)
    return raised.value.reason


# --- the tenant ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tenant", ["contoso.onmicrosoft.com", "contoso.com", "common", "organizations", "t1"]
)
def test_a_tenant_that_is_no_guid_is_refused_saying_how_to_find_the_id(
    monkeypatch: pytest.MonkeyPatch, tenant: str
) -> None:
    monkeypatch.setenv("GQL_API_AUTH", "entra")
    monkeypatch.setenv("GQL_API_ENTRA_TENANT_ID", tenant)
    monkeypatch.setenv("GQL_API_ENTRA_CLIENT_ID", API)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert f"GQL_API_ENTRA_TENANT_ID={tenant!r}: must be the directory (tenant) ID" in message
    assert "Tenant ID" in message and "az account show" in message
    assert "/v2.0/.well-known/openid-configuration" in message


def test_a_guid_tenant_is_kept_in_lower_case_as_tokens_carry_it() -> None:
    settings = Settings(auth="entra", entra_tenant_id=TENANT.upper(), entra_client_id=API)
    assert settings.entra_tenant_id == TENANT
    assert build_jwks_authenticator(settings).config.issuer == V2


def test_preset_urls_and_issuers_by_token_version() -> None:
    def config(version: str) -> Any:
        settings = entra_settings(entra_token_version=version)
        return build_jwks_authenticator(settings).config

    def entra_settings(**values: Any) -> Settings:
        return Settings(auth="entra", entra_tenant_id=TENANT, entra_client_id=API, **values)

    login = f"https://login.microsoftonline.com/{TENANT}"
    v2, v1, both = config("2"), config("1"), config("any")
    assert (v2.jwks_url, v2.issuer, v2.other_issuers) == (f"{login}/discovery/v2.0/keys", V2, ())
    assert (v2.audience, v2.other_audiences) == (API, ())
    assert (v1.jwks_url, v1.issuer, v1.other_issuers) == (f"{login}/discovery/keys", V1, ())
    assert v1.other_audiences == (f"api://{API}", f"api://{API}/")
    assert (both.issuer, both.other_issuers) == (V2, (V1,))
    overridden = build_jwks_authenticator(
        entra_settings(entra_token_version="any", jwt_issuer="https://x/", jwt_audience="y")
    ).config
    assert (overridden.issuer, overridden.other_issuers) == ("https://x/", ())
    assert (overridden.audience, overridden.other_audiences) == ("y", ())
    from gql_api.auth.entra import discovery_url

    assert discovery_url(entra_settings()) == f"{login}/v2.0/.well-known/openid-configuration"
    assert discovery_url(entra_settings(entra_token_version="1")) == (
        f"{login}/.well-known/openid-configuration"
    )
    with pytest.raises(ValidationError, match="GQL_API_OIDC_DISCOVERY_URL must use https"):
        entra_settings(oidc_discovery_url="http://login.example/.well-known/openid-configuration")


# --- issuers and audiences -----------------------------------------------------------------


async def test_v2_user_tokens_are_accepted_and_v1_refused_by_default(
    verifier: JwksAuthenticator, key: SigningKey
) -> None:
    member = await verifier.authenticate(key.sign(user_v2(groups=[ADMINS, "another-id"])))
    assert (member.user_id, member.is_admin) == ("user-1", True)
    named = await verifier.authenticate(key.sign(user_v2(groups=["Admins"])))  # names: no ids
    assert not named.is_admin
    marked = await verifier.authenticate(key.sign(user_v2(idtyp="user")))  # optional claim on
    assert marked.user_id == "user-1"
    assert await reason(verifier, key.sign(user_v1())) == "token is from another issuer"
    other_api = key.sign(user_v2(aud="11111111-2222-4333-8444-555555555555"))
    assert await reason(verifier, other_api) == "token is for another audience"
    by_uri = key.sign(user_v2(aud=f"api://{API}"))  # v2 tokens always carry the client id
    assert await reason(verifier, by_uri) == "token is for another audience"


@pytest.mark.parametrize("version", ["1", "any"])
async def test_v1_tokens_by_client_id_or_app_id_uri_when_configured(
    keys: JwksServer, key: SigningKey, version: str
) -> None:
    authenticator = build_jwks_authenticator(entra(keys, entra_token_version=version))
    try:
        for audience in (API, f"api://{API}", f"api://{API}/"):
            token = key.sign(user_v1(aud=audience))
            assert (await authenticator.authenticate(token)).user_id == "user-1"
        stranger = key.sign(user_v1(aud="api://someone-else"))
        assert await reason(authenticator, stranger) == "token is for another audience"
        v2_token = key.sign(user_v2())
        if version == "any":
            assert (await authenticator.authenticate(v2_token)).user_id == "user-1"
        else:
            assert await reason(authenticator, v2_token) == "token is from another issuer"
    finally:
        await authenticator.close()


# --- which tokens act for a user -----------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        id_token(),
        id_token(roles=["Posts.Write"]),  # a user's app roles appear in ID tokens too
        id_token(nonce=None),  # the code flow may leave the nonce out
        id_token(iss=V1, ver="1.0", aud=API, unique_name="ada@contoso.com"),
        user_v2(scp=None, idtyp="user"),
        user_v2(scp=" "),
    ],
    ids=["v2", "with-roles", "no-nonce", "v1", "user-without-scp", "blank-scp"],
)
async def test_id_tokens_and_tokens_without_scopes_are_refused(
    keys: JwksServer, key: SigningKey, token: dict[str, Any]
) -> None:
    # Even where app-only tokens are allowed: an ID token is no access token.
    for allow in (False, True):
        authenticator = build_jwks_authenticator(
            entra(keys, entra_token_version="any", entra_allow_app_tokens=allow)
        )
        try:
            assert await reason(authenticator, key.sign(token)) == (
                "token is not an access token (ID tokens are not accepted)"
            )
        finally:
            await authenticator.close()


@pytest.mark.parametrize(
    "token",
    [app_only(idtyp="app"), app_only(), app_only(ver="1.0", iss=V1, azp=None, appid="daemon")],
    ids=["idtyp-app", "roles-without-scp", "v1"],
)
async def test_app_only_tokens_are_refused_unless_allowed(
    keys: JwksServer, key: SigningKey, token: dict[str, Any]
) -> None:
    refusing = build_jwks_authenticator(entra(keys, entra_token_version="any"))
    allowing = build_jwks_authenticator(
        entra(keys, entra_token_version="any", entra_allow_app_tokens=True)
    )
    try:
        assert await reason(refusing, key.sign(token)) == "app-only tokens are not accepted"
        identity = await allowing.authenticate(key.sign(token))
        assert (identity.user_id, identity.is_admin) == ("sp-object-id", False)
    finally:
        await refusing.close()
        await allowing.close()


async def test_other_token_types_are_refused(verifier: JwksAuthenticator, key: SigningKey) -> None:
    device = key.sign(user_v2(idtyp="device"))
    assert await reason(verifier, device) == "token is not a user access token"


async def test_the_app_answers_401_with_the_reason(keys: JwksServer, key: SigningKey) -> None:
    app = create_app(entra(keys, store="memory"), store=MemoryStore())
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http,
    ):

        async def ask(token: str) -> httpx.Response:
            return await http.post(
                "/graphql",
                json={"query": "{ viewer { userId } }"},
                headers={"authorization": f"Bearer {token}"},
            )

        user = await ask(key.sign(user_v2(sub="ada")))
        assert user.json() == {"data": {"viewer": {"userId": "ada"}}}
        for token, said in [
            (id_token(), "token is not an access token (ID tokens are not accepted)"),
            (app_only(idtyp="app"), "app-only tokens are not accepted"),
        ]:
            refused = await ask(key.sign(token))
            assert refused.status_code == 401
            assert refused.json()["errors"][0] == {
                "message": said,
                "extensions": {"code": "UNAUTHENTICATED"},
            }


# --- gql-api doctor ------------------------------------------------------------------------


@pytest.fixture
async def discovery() -> AsyncIterator[JwksServer]:
    server = JwksServer()  # answers its override, here a discovery document, on any path
    await server.start()
    yield server
    await server.stop()


def doctor_env(keys: JwksServer, discovery: JwksServer, tmp_path: Path) -> dict[str, str]:
    return cli_env(
        GQL_API_AUTH="entra",
        GQL_API_ENTRA_TENANT_ID=TENANT,
        GQL_API_ENTRA_CLIENT_ID=API,
        GQL_API_JWKS_URL=keys.url,
        GQL_API_OIDC_DISCOVERY_URL=discovery.url,
        GQL_API_STORE="memory",
        GQL_API_SQLITE_PATH=str(tmp_path / "db.sqlite"),
    )


async def test_doctor_checks_the_discovery_documents_issuer(
    keys: JwksServer, key: SigningKey, discovery: JwksServer, tmp_path: Path
) -> None:
    env = doctor_env(keys, discovery, tmp_path)
    discovery.override = {"issuer": V2, "jwks_uri": keys.url}
    ok = await asyncio.to_thread(run_cli, ["doctor"], env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    where = f"auth entra: the discovery document {discovery.url}"
    assert f"ok    {where} names issuer {V2}, as configured" in ok.stdout
    other = "0a0b0c0d-1111-4222-8333-444455556666"  # the GUID of the tenant the URL names
    discovery.override = {"issuer": v2_issuer(other)}
    wrong = await asyncio.to_thread(run_cli, ["doctor"], env)
    assert wrong.returncode == 1
    assert (
        f"FAIL  {where} names issuer {v2_issuer(other)}, not {V2}; "
        f"fix: set GQL_API_ENTRA_TENANT_ID={other}"
    ) in wrong.stdout


@pytest.mark.parametrize(
    ("document", "said"),
    [
        (
            {"issuer": f"https://{TENANT}.ciamlogin.com/{TENANT}/v2.0", "jwks_uri": "https://k/"},
            f"fix: this tenant's tokens come from https://{TENANT}.ciamlogin.com/{TENANT}/v2.0: "
            f"set GQL_API_JWT_ISSUER=https://{TENANT}.ciamlogin.com/{TENANT}/v2.0 and "
            "GQL_API_JWKS_URL=https://k/",
        ),
        ({"error": "invalid_tenant"}, "cannot be read: not a discovery document: no issuer"),
        (None, "cannot be read: Server error '503 Service Unavailable'"),
    ],
    ids=["another-cloud", "no-issuer", "down"],
)
async def test_doctor_says_how_to_fix_the_issuer(
    keys: JwksServer,
    key: SigningKey,
    discovery: JwksServer,
    document: dict[str, Any] | None,
    said: str,
) -> None:
    discovery.override, discovery.down = document, document is None
    settings = entra(keys, oidc_discovery_url=discovery.url, store="memory")
    checks = await run_checks(settings)
    issuer = [(ok, line) for ok, line in checks if "discovery document" in line]
    assert len(issuer) == 1 and not issuer[0][0] and said in issuer[0][1], checks
    keys_line = f"auth entra: 1 signing keys from {keys.url}; issuer {V2}, audience {API}"
    assert (True, keys_line) in checks
