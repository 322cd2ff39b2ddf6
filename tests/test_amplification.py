"""Work per request is bounded by what is expensive: each amplification a review found,
refused or bounded, anonymously and signed in (the real app over ASGI)."""

from __future__ import annotations

import unicodedata
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gql_api.app import create_app
from gql_api.auth.dev import mint_dev_token
from gql_api.domain import validation
from gql_api.settings import Settings
from gql_api.stores.memory import MemoryStore
from tests.helpers import DEV_SECRET


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(sqlite_path=tmp_path / "db.sqlite", dev_secret=DEV_SECRET)
    app = create_app(settings, store=MemoryStore())
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        yield http


TOKEN = mint_dev_token(Settings(dev_secret=DEV_SECRET), DEV_SECRET, user_id="mallory")
CALLERS = {"anonymous": {}, "signed in": {"authorization": f"Bearer {TOKEN}"}}


async def ask(
    client: httpx.AsyncClient, caller: str, query: str, variables: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=CALLERS[caller]
    )
    assert response.status_code < 500
    body: dict[str, Any] = response.json()
    return body


def codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors") or []]


@pytest.mark.parametrize("caller", CALLERS)
async def test_a_huge_tag_is_refused_before_nfkc(
    client: httpx.AsyncClient, caller: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    normalized: list[int] = []
    normalize = unicodedata.normalize

    def counted(form: str, text: str) -> str:
        normalized.append(len(text))
        return normalize(form, text)  # type: ignore[arg-type]

    monkeypatch.setattr(unicodedata, "normalize", counted)
    huge = "\ufdfa" * 150_000  # 18 characters each under NFKC
    query = "query($t: String) { posts(tag: $t) { nodes { id } } }"
    body = await ask(client, caller, query, {"t": huge})
    assert codes(body) == ["BAD_USER_INPUT"] and "too long" in body["errors"][0]["message"]
    assert max(normalized, default=0) <= validation.MAX_RAW_TAG_LENGTH
    body = await ask(client, caller, query, {"t": "  Intro  "})
    assert "errors" not in body  # a real tag still passes


async def test_a_huge_nickname_is_refused_before_its_characters_are_read(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    looked_at: list[str] = []
    is_invisible = validation._is_invisible

    def counted(char: str) -> bool:
        looked_at.append(char)
        return is_invisible(char)

    monkeypatch.setattr(validation, "_is_invisible", counted)
    query = "mutation($n: String!) { updateProfile(nickname: $n) { nickname } }"
    body = await ask(client, "signed in", query, {"n": "\u3164" * 150_000})
    assert codes(body) == ["BAD_USER_INPUT"] and "too long" in body["errors"][0]["message"]
    assert looked_at == []
    body = await ask(client, "signed in", query, {"n": "\u3164" * 3})
    assert codes(body) == ["BAD_USER_INPUT"] and "invisible" in body["errors"][0]["message"]


REPEATED = "{ " + "limits { maxTags } " * 600 + "}"
SPREAD = (
    " ".join(f"fragment F{n} on Query {{ limits {{ maxTags }} }}" for n in range(600))
    + " { "
    + " ".join(f"...F{n}" for n in range(600))
    + " }"
)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("query", [REPEATED, SPREAD], ids=["repeated", "through fragments"])
async def test_a_document_too_repetitive_to_validate_is_refused_before_validation(
    client: httpx.AsyncClient, caller: str, query: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gql_api.execution import executor

    validated: list[object] = []
    validate = executor.validate  # type: ignore[attr-defined]

    def counted(*args: Any, **kwargs: Any) -> Any:
        validated.append(args[1])
        return validate(*args, **kwargs)

    monkeypatch.setattr(executor, "validate", counted)
    body = await ask(client, caller, query, {})
    assert codes(body) == ["VALIDATION_TOO_COMPLEX"]
    assert validated == []


async def test_fragments_each_selecting_the_same_field_still_validate(
    client: httpx.AsyncClient,
) -> None:
    """As Relay composes them: 60 components each asking for the post's id."""
    fragments = " ".join(f"fragment C{n} on Post {{ id content }}" for n in range(60))
    spreads = " ".join(f"...C{n}" for n in range(60))
    body = await ask(
        client, "anonymous", f"{{ posts {{ nodes {{ {spreads} }} }} }} {fragments}", {}
    )
    assert body == {"data": {"posts": {"nodes": []}}}


@pytest.mark.parametrize("caller", CALLERS)
async def test_a_response_too_large_is_refused_while_it_is_built(
    client: httpx.AsyncClient, caller: str
) -> None:
    create = "mutation($c: String!) { createPost(input: {content: $c}) { id } }"
    for n in range(25):
        await ask(client, "signed in", create, {"c": f"{n:05d}" + "x" * 9_995})
    one = await ask(client, caller, "{ posts(first: 100) { nodes { content } } }", {})
    assert len(one["data"]["posts"]["nodes"]) == 25  # 250 kB: within the 4 MiB default
    fields = " ".join(f"a{n}: posts(first: 100) {{ nodes {{ content }} }}" for n in range(30))
    response = await client.post(
        "/graphql", json={"query": f"{{ {fields} }}"}, headers=CALLERS[caller]
    )
    body = response.json()
    assert codes(body) == ["RESPONSE_TOO_LARGE"] and body["data"] is None
    assert len(response.content) < 1000  # 7.5 MB asked for
