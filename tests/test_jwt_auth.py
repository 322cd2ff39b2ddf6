"""Production sign-in: JWTs verified against a real JWKS server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from gql_api.app import create_app
from gql_api.auth.identity import InvalidToken
from gql_api.auth.jwks import MAX_JWKS_BYTES, MAX_KEYS, JwksAuthenticator, build_jwks_authenticator
from gql_api.settings import Settings
from gql_api.stores.memory import MemoryStore
from tests.helpers import Clock, cli_env, run_cli

ISSUER = "https://issuer.example/"
AUDIENCE = "gql-api-client"


class JwksServer:
    """A real HTTP server on 127.0.0.1 serving a key set; counts fetches; can go down."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.override: Any = None  # a whole document to answer instead of the key set
        self.fetches = 0
        self.down = False
        self._server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/jwks.json"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        self.fetches += 1
        if self.down:
            status, body = "503 Service Unavailable", b"{}"
        else:
            document = {"keys": self.keys} if self.override is None else self.override
            status, body = "200 OK", json.dumps(document).encode()
        head = (
            f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        writer.write(head.encode() + body)
        await writer.drain()
        writer.close()


class SigningKey:
    def __init__(self, kid: str, kind: str = "RSA") -> None:
        self.kid = kid
        self.algorithm = "RS256" if kind == "RSA" else "ES256"
        if kind == "RSA":
            self.private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            jwk = json.loads(RSAAlgorithm.to_jwk(self.private.public_key()))
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
            jwk = json.loads(ECAlgorithm.to_jwk(self.private.public_key()))
        self.jwk = {**jwk, "kid": kid, "use": "sig", "alg": self.algorithm}

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(
            claims, self.private, algorithm=self.algorithm, headers={"kid": self.kid, **header}
        )

    def public_pem(self) -> bytes:
        return bytes(
            self.private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values = {"sub": "user-1", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600}
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


@pytest.fixture
async def server() -> AsyncIterator[JwksServer]:
    jwks = JwksServer()
    await jwks.start()
    yield jwks
    await jwks.stop()


@pytest.fixture
def rsa_key() -> SigningKey:
    return SigningKey("rsa-1")


@pytest.fixture
def clock() -> Clock:
    return Clock()


def settings_for(server: JwksServer, **values: Any) -> Settings:
    base: dict[str, Any] = {
        "auth": "jwt",
        "jwks_url": server.url,
        "jwt_issuer": ISSUER,
        "jwt_audience": AUDIENCE,
    }
    base.update(values)
    return Settings(**base)


@pytest.fixture
async def verifier(
    server: JwksServer, rsa_key: SigningKey, clock: Clock
) -> AsyncIterator[JwksAuthenticator]:
    server.keys = [rsa_key.jwk]
    authenticator = build_jwks_authenticator(settings_for(server))
    authenticator.keys._clock = clock
    yield authenticator
    await authenticator.close()


async def refused(verifier: JwksAuthenticator, token: str) -> str:
    with pytest.raises(InvalidToken) as raised:
        await verifier.authenticate(token)
    return raised.value.reason


async def test_valid_rsa_and_ec_tokens_are_accepted(
    server: JwksServer, verifier: JwksAuthenticator, rsa_key: SigningKey
) -> None:
    ec_key = SigningKey("ec-1", "EC")
    server.keys = [rsa_key.jwk, ec_key.jwk]
    for key in (rsa_key, ec_key):
        identity = await verifier.authenticate(key.sign(claims(sub=f"by-{key.kid}")))
        assert identity.user_id == f"by-{key.kid}"
        assert not identity.is_admin


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"exp": int(time.time()) - 3600}, "token has expired"),
        ({"nbf": int(time.time()) + 3600}, "token is not valid yet"),
        ({"iss": "https://evil.example/"}, "token is from another issuer"),
        ({"aud": "another-client"}, "token is for another audience"),
        ({"sub": None}, "token has no sub claim"),
        ({"exp": None}, "token has no exp claim"),
    ],
)
async def test_claims_are_checked(
    verifier: JwksAuthenticator, rsa_key: SigningKey, overrides: dict[str, Any], reason: str
) -> None:
    assert await refused(verifier, rsa_key.sign(claims(**overrides))) == reason


async def test_a_small_clock_skew_is_tolerated(
    verifier: JwksAuthenticator, rsa_key: SigningKey
) -> None:
    now = int(time.time())
    token = rsa_key.sign(claims(exp=now - 10, nbf=now + 10))
    assert (await verifier.authenticate(token)).user_id == "user-1"


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


async def test_unsigned_and_symmetric_tokens_are_refused(
    verifier: JwksAuthenticator, rsa_key: SigningKey
) -> None:
    unsigned = f"{_b64({'alg': 'none', 'kid': rsa_key.kid})}.{_b64(claims())}."
    assert await refused(verifier, unsigned) == "token algorithm is not accepted"
    # The confusion attack: HS256 keyed with the provider's public key, which anyone has.
    header = _b64({"alg": "HS256", "kid": rsa_key.kid, "typ": "JWT"})
    payload = _b64(claims(sub="attacker"))
    import hashlib
    import hmac

    mac = hmac.new(rsa_key.public_pem(), f"{header}.{payload}".encode(), hashlib.sha256)
    forged = f"{header}.{payload}.{base64.urlsafe_b64encode(mac.digest()).decode().rstrip('=')}"
    assert await refused(verifier, forged) == "token algorithm is not accepted"
    # An asymmetric algorithm of the wrong family for the key named.
    ec_key = SigningKey(rsa_key.kid, "EC")
    assert (
        await refused(verifier, ec_key.sign(claims())) == "token algorithm does not match its key"
    )


async def test_a_token_signed_by_another_key_with_a_known_kid_is_refused(
    verifier: JwksAuthenticator, rsa_key: SigningKey
) -> None:
    impostor = SigningKey(rsa_key.kid)  # same kid, different private key
    assert await refused(verifier, impostor.sign(claims())) == "token signature is invalid"


@pytest.mark.parametrize(
    "token", ["garbage", "a.b.c", "", "x" * 9000, "eyJhbGciOiJSUzI1NiJ9.e30.sig"]
)
async def test_garbage_is_refused(verifier: JwksAuthenticator, token: str) -> None:
    reason = await refused(verifier, token)
    assert reason in {
        "token is malformed",
        "token is too large",
        "token names no signing key",
    }


async def test_unknown_kid_fetches_once_then_rotation_is_picked_up(
    server: JwksServer, verifier: JwksAuthenticator, rsa_key: SigningKey, clock: Clock
) -> None:
    assert (await verifier.authenticate(rsa_key.sign(claims()))).user_id == "user-1"
    assert server.fetches == 1
    rotated = SigningKey("rsa-2")
    server.keys = [rsa_key.jwk, rotated.jwk]  # the provider rotates in a new key
    clock.now += 61
    assert (await verifier.authenticate(rotated.sign(claims()))).user_id == "user-1"
    assert server.fetches == 2
    # Forged kids within the minute cause no further fetch.
    stranger = SigningKey("nobody-knows")
    for _ in range(20):
        assert (
            await refused(verifier, stranger.sign(claims()))
            == "token is signed with an unknown key"
        )
    assert server.fetches == 2
    clock.now += 61
    assert await refused(verifier, stranger.sign(claims())) == "token is signed with an unknown key"
    assert server.fetches == 3


async def test_a_thousand_requests_fetch_the_key_set_once(
    server: JwksServer, verifier: JwksAuthenticator, rsa_key: SigningKey
) -> None:
    tokens = [rsa_key.sign(claims(sub=f"u{i}")) for i in range(20)]
    results = await asyncio.gather(*(verifier.authenticate(tokens[i % 20]) for i in range(1000)))
    assert len(results) == 1000
    assert server.fetches == 1


async def test_provider_down_without_cached_keys_refuses_then_recovers(
    server: JwksServer, verifier: JwksAuthenticator, rsa_key: SigningKey, clock: Clock
) -> None:
    server.down = True
    token = rsa_key.sign(claims())
    assert await refused(verifier, token) == "signing keys are unavailable; try again shortly"
    assert await refused(verifier, token) == "signing keys are unavailable; try again shortly"
    assert server.fetches == 1  # no fetch per request while it is down
    server.down = False
    clock.now += 11
    assert (await verifier.authenticate(token)).user_id == "user-1"
    assert server.fetches == 2


async def test_provider_down_with_cached_keys_keeps_verifying(
    server: JwksServer, verifier: JwksAuthenticator, rsa_key: SigningKey, clock: Clock
) -> None:
    await verifier.authenticate(rsa_key.sign(claims()))
    await server.stop()  # gone entirely: connections refused
    clock.now += 120
    assert (await verifier.authenticate(rsa_key.sign(claims(sub="later")))).user_id == "later"
    stranger = SigningKey("new-kid")
    assert await refused(verifier, stranger.sign(claims())) == "token is signed with an unknown key"


# --- presets -------------------------------------------------------------------------------


async def test_cognito_preset(server: JwksServer, rsa_key: SigningKey) -> None:
    server.keys = [rsa_key.jwk]
    pool_issuer = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123"
    settings = Settings(
        auth="cognito",
        cognito_region="eu-west-1",
        cognito_user_pool_id="eu-west-1_AbC123",
        cognito_client_id="app-client",
        jwks_url=server.url,  # the preset's URL is AWS's; the test serves the keys locally
    )
    authenticator = build_jwks_authenticator(settings)
    try:
        assert authenticator.config.issuer == pool_issuer
        base = {"iss": pool_issuer, "aud": None}  # access tokens carry no aud
        id_token = claims(
            iss=pool_issuer, aud="app-client", token_use="id", **{"cognito:groups": ["Admins"]}
        )
        assert (await authenticator.authenticate(rsa_key.sign(id_token))).is_admin
        access = claims(**base, client_id="app-client", token_use="access")
        identity = await authenticator.authenticate(rsa_key.sign(access))
        assert (identity.user_id, identity.is_admin) == ("user-1", False)
        other_app = claims(**base, client_id="other-client", token_use="access")
        assert (
            await refused(authenticator, rsa_key.sign(other_app)) == "token is for another audience"
        )
        other_groups = claims(
            iss=pool_issuer, aud="app-client", token_use="id", **{"cognito:groups": ["Users"]}
        )
        assert not (await authenticator.authenticate(rsa_key.sign(other_groups))).is_admin
    finally:
        await authenticator.close()


async def test_firebase_preset(server: JwksServer, rsa_key: SigningKey) -> None:
    server.keys = [rsa_key.jwk]
    settings = Settings(auth="firebase", firebase_project_id="my-project", jwks_url=server.url)
    authenticator = build_jwks_authenticator(settings)
    try:
        issuer = "https://securetoken.google.com/my-project"
        assert authenticator.config.issuer == issuer
        admin = claims(iss=issuer, aud="my-project", admin=True)
        assert (await authenticator.authenticate(rsa_key.sign(admin))).is_admin
        plain = claims(iss=issuer, aud="my-project", admin="yes")  # only true counts
        assert not (await authenticator.authenticate(rsa_key.sign(plain))).is_admin
        other_project = claims(iss=issuer, aud="their-project")
        assert (
            await refused(authenticator, rsa_key.sign(other_project))
            == "token is for another audience"
        )
    finally:
        await authenticator.close()


def test_preset_urls_point_at_the_providers() -> None:
    cognito = build_jwks_authenticator(
        Settings(
            auth="cognito",
            cognito_region="us-east-1",
            cognito_user_pool_id="us-east-1_X1",
            cognito_client_id="c",
        )
    ).config
    assert (
        cognito.jwks_url
        == "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_X1/.well-known/jwks.json"
    )
    firebase = build_jwks_authenticator(
        Settings(auth="firebase", firebase_project_id="proj-1")
    ).config
    assert firebase.jwks_url.endswith("securetoken@system.gserviceaccount.com")
    assert firebase.admin_claim == "admin"


# --- through the app -----------------------------------------------------------------------


@pytest.fixture
async def client(server: JwksServer, rsa_key: SigningKey) -> AsyncIterator[httpx.AsyncClient]:
    server.keys = [rsa_key.jwk]
    app = create_app(settings_for(server, store="memory"), store=MemoryStore())
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http,
    ):
        yield http


async def test_the_app_accepts_provider_tokens_and_logs_refusals_without_tokens(
    client: httpx.AsyncClient, rsa_key: SigningKey, caplog: pytest.LogCaptureFixture
) -> None:
    good = rsa_key.sign(claims(sub="ada", groups=["Admins"]))
    response = await client.post(
        "/graphql",
        json={"query": "{ viewer { userId isAdmin } }"},
        headers={"authorization": f"Bearer {good}"},
    )
    assert response.json() == {"data": {"viewer": {"userId": "ada", "isAdmin": True}}}
    expired = rsa_key.sign(claims(exp=int(time.time()) - 600))
    with caplog.at_level(logging.INFO):
        refused_response = await client.post(
            "/graphql",
            json={"query": "{ limits { maxTags } }"},
            headers={"authorization": f"Bearer {expired}"},
        )
    assert refused_response.status_code == 401
    assert refused_response.json()["errors"][0] == {
        "message": "token has expired",
        "extensions": {"code": "UNAUTHENTICATED"},
    }
    assert "Signature has expired" in caplog.text  # the detail, for the operator
    assert expired not in caplog.text
    assert expired.split(".")[2] not in caplog.text


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"auth": "jwt"}, "GQL_API_JWKS_URL, GQL_API_JWT_ISSUER, GQL_API_JWT_AUDIENCE"),
        ({"auth": "cognito", "cognito_region": "eu-west-1"}, "GQL_API_COGNITO_USER_POOL_ID"),
        ({"auth": "firebase"}, "GQL_API_FIREBASE_PROJECT_ID"),
        (
            {"auth": "entra", "entra_tenant_id": "00001111-aaaa-2222-bbbb-3333cccc4444"},
            "GQL_API_ENTRA_CLIENT_ID",
        ),
        (
            {
                "auth": "jwt",
                "jwks_url": "http://keys.example/",
                "jwt_issuer": "i",
                "jwt_audience": "a",
            },
            "must use https",
        ),
    ],
)
def test_incomplete_provider_settings_are_refused(values: dict[str, Any], named: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as raised:
        Settings(**values)
    assert named in str(raised.value)


async def test_doctor_checks_the_providers_keys(
    server: JwksServer, rsa_key: SigningKey, tmp_path: Any
) -> None:
    server.keys = [rsa_key.jwk]
    env = cli_env(
        GQL_API_AUTH="jwt",
        GQL_API_JWKS_URL=server.url,
        GQL_API_JWT_ISSUER=ISSUER,
        GQL_API_JWT_AUDIENCE=AUDIENCE,
        GQL_API_STORE="memory",
        GQL_API_SQLITE_PATH=str(tmp_path / "db.sqlite"),
    )

    ok = await asyncio.to_thread(run_cli, ["doctor"], env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"ok    auth jwt: 1 signing keys from {server.url}" in ok.stdout
    server.down = True
    down = await asyncio.to_thread(run_cli, ["doctor"], env)
    assert down.returncode == 1
    assert f"FAIL  auth jwt: no signing keys from {server.url}; fix:" in down.stdout


async def test_a_bad_key_in_the_set_does_not_spoil_the_others(
    server: JwksServer, verifier: JwksAuthenticator, rsa_key: SigningKey
) -> None:
    broken = {"kty": "RSA", "kid": "broken", "n": "!!not base64!!", "e": "AQAB", "use": "sig"}
    odd_curve = {"kty": "EC", "kid": "odd", "crv": "P-256", "x": "AA", "y": "AA", "use": "sig"}
    server.keys = [broken, odd_curve, rsa_key.jwk]
    assert (await verifier.authenticate(rsa_key.sign(claims()))).user_id == "user-1"
    assert verifier.keys.known == [rsa_key.kid]


@pytest.mark.parametrize("answer", [{"keys": []}, {"keys": "none"}, ["not", "an", "object"]])
async def test_a_key_set_with_nothing_usable_keeps_the_keys_held(
    server: JwksServer,
    verifier: JwksAuthenticator,
    rsa_key: SigningKey,
    clock: Clock,
    answer: Any,
) -> None:
    await verifier.authenticate(rsa_key.sign(claims()))
    server.keys = []
    server.override = answer
    clock.now += 61
    stranger = SigningKey("someone-new")
    assert await refused(verifier, stranger.sign(claims())) == "token is signed with an unknown key"
    assert (await verifier.authenticate(rsa_key.sign(claims()))).user_id == "user-1"
    fetched = server.fetches
    for _ in range(5):  # a failed refresh is not retried per request
        await refused(verifier, stranger.sign(claims()))
    assert server.fetches == fetched


async def test_the_key_set_held_is_bounded_by_bytes_and_count(
    server: JwksServer, verifier: JwksAuthenticator, rsa_key: SigningKey, clock: Clock
) -> None:
    await verifier.authenticate(rsa_key.sign(claims()))
    assert 0 < verifier.keys.held_bytes <= MAX_JWKS_BYTES
    spares = [{**rsa_key.jwk, "kid": f"spare-{n}"} for n in range(MAX_KEYS + 20)]
    server.keys = [rsa_key.jwk, *spares]
    clock.now += 61
    await verifier.keys.refresh()
    assert len(verifier.keys.known) == MAX_KEYS and verifier.keys.known[0] == rsa_key.kid
    held = verifier.keys.known
    server.override = {"keys": [rsa_key.jwk], "padding": "x" * MAX_JWKS_BYTES}
    clock.now += 61
    await verifier.keys.refresh()  # refused as it arrives: the keys held stay
    assert verifier.keys.known == held
    assert verifier.keys.held_bytes <= MAX_JWKS_BYTES
