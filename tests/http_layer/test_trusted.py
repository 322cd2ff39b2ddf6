"""Trusted documents (``http/trusted.py``): with a manifest, only its operations run, by
id or by their exact text; introspection only where it is allowed; a bad manifest stops
the start, naming the file."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gql_api.app import create_app
from gql_api.settings import SettingsError
from gql_api.stores.memory import MemoryStore
from tests.http_layer.conftest import make_settings

FEED = "query Feed { posts(first: 2) { edges { node { id } } } }"
LIMITS = "query Limits { limits { maxTags } }"
INTROSPECTION = "query { __schema { queryType { name } } }"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def apollo_manifest(path: Path) -> Path:
    operations = [
        {"id": sha256(FEED), "name": "Feed", "type": "query", "body": FEED},
        {"id": sha256(LIMITS), "name": "Limits", "type": "query", "body": LIMITS},
    ]
    manifest = {"format": "apollo-persisted-query-manifest", "version": 1, "operations": operations}
    path.write_text(json.dumps(manifest))
    return path


async def client_for(tmp_path: Path, manifest: Path, **values: Any) -> AsyncIterator[Any]:
    settings = make_settings(tmp_path, trusted_documents=manifest, **values)
    application = create_app(settings, store=MemoryStore())
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for http in client_for(tmp_path, apollo_manifest(tmp_path / "manifest.json")):
        yield http


def code_of(answer: httpx.Response) -> str | None:
    errors = answer.json().get("errors")
    return errors[0]["extensions"]["code"] if errors else None


async def test_a_trusted_document_runs_by_id_hash_or_text(client: httpx.AsyncClient) -> None:
    apq = {"persistedQuery": {"version": 1, "sha256Hash": sha256(FEED)}}
    answers = [
        await client.post("/graphql", json={"documentId": sha256(LIMITS)}),
        await client.get("/graphql", params={"documentId": sha256(LIMITS)}),
        await client.get("/graphql", params={"extensions": json.dumps(apq)}),  # Apollo's link
        await client.post("/graphql", json={"query": FEED}),
    ]
    for answer in answers:
        assert answer.status_code == 200 and code_of(answer) is None, answer.json()
    assert answers[0].json()["data"]["limits"]["maxTags"] > 0
    assert answers[2].json()["data"]["posts"] == {"edges": []}


@pytest.mark.parametrize(
    "body",
    [
        {"query": "{ limits { maxTags } }"},  # the same operation, not the same text
        {"query": FEED + " "},
        {"documentId": "nope"},
        {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha256("{ x }")}}},
        {"query": 'mutation { createPost(input: {content: "x"}) { id } }'},
    ],
)
async def test_anything_else_is_refused(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    answer = await client.post("/graphql", json=body)
    assert code_of(answer) == "UNTRUSTED_DOCUMENT"
    assert "trusted documents" in answer.json()["errors"][0]["message"]


async def test_an_id_with_another_text_is_a_bad_request(client: httpx.AsyncClient) -> None:
    answer = await client.post("/graphql", json={"documentId": sha256(FEED), "query": LIMITS})
    assert code_of(answer) == "BAD_REQUEST"


async def test_introspection_runs_only_where_it_is_allowed(tmp_path: Path) -> None:
    manifest = apollo_manifest(tmp_path / "manifest.json")
    async for http in client_for(tmp_path, manifest):  # a developer's machine: allowed
        answer = await http.post("/graphql", json={"query": INTROSPECTION})
        assert answer.json()["data"]["__schema"]["queryType"]["name"] == "Query"
        mixed = await http.post("/graphql", json={"query": "{ __typename limits { maxTags } }"})
        assert code_of(mixed) == "UNTRUSTED_DOCUMENT"
    async for http in client_for(tmp_path, manifest, introspection=False):
        answer = await http.post("/graphql", json={"query": INTROSPECTION})
        assert code_of(answer) == "UNTRUSTED_DOCUMENT"


async def test_graphql_code_generators_manifest_is_read_too(tmp_path: Path) -> None:
    manifest = tmp_path / "persisted-documents.json"
    manifest.write_text(json.dumps({"b2d6e2": LIMITS}))  # its own ids (sha1 by default)
    async for http in client_for(tmp_path, manifest):
        by_id = await http.post("/graphql", json={"documentId": "b2d6e2"})
        assert by_id.json()["data"]["limits"]["maxTags"] > 0
        by_text = await http.post("/graphql", json={"query": LIMITS})
        assert code_of(by_text) is None
        assert code_of(await http.post("/graphql", json={"query": FEED})) == "UNTRUSTED_DOCUMENT"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot be read"),
        ("{", "not JSON"),
        ("[1]", "not a manifest"),
        ('{"format": "apollo-persisted-query-manifest", "version": 2}', "version 1"),
        ('{"format": "apollo-persisted-query-manifest", "version": 1, "operations": [{}]}', "id"),
        ("{}", "no operation"),
    ],
)
def test_a_bad_manifest_stops_the_start_naming_it(
    tmp_path: Path, content: str | None, problem: str
) -> None:
    manifest = tmp_path / "manifest.json"
    if content is not None:
        manifest.write_text(content)
    with pytest.raises(SettingsError) as refused:
        create_app(make_settings(tmp_path, trusted_documents=manifest), store=MemoryStore())
    message = str(refused.value)
    assert "GQL_API_TRUSTED_DOCUMENTS" in message and str(manifest) in message
    assert problem in message
