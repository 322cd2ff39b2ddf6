"""Automatic persisted queries (``http/persisted.py``): a query registered with its
SHA-256 runs by hash alone; a wrong hash, version or text is a request error, never a
500; the cache is bounded by the bytes it holds."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest

from gql_api.execution.executor import RequestError
from gql_api.http.persisted import MAX_QUERY_LENGTH, PersistedQueries
from tests.http_layer.conftest import JSON


def persisted(query: str) -> dict[str, object]:
    digest = hashlib.sha256(query.encode()).hexdigest()
    return {"persistedQuery": {"version": 1, "sha256Hash": digest}}


def code(call: object, *arguments: object) -> str:
    with pytest.raises(RequestError) as refused:
        call(*arguments)  # type: ignore[operator]
    return str(refused.value.errors[0]["extensions"]["code"])


def test_a_registered_query_answers_by_hash_in_any_case() -> None:
    queries = PersistedQueries()
    query = "{ limits { maxTags } }"
    assert code(queries.resolve, None, persisted(query)) == "PERSISTED_QUERY_NOT_FOUND"
    assert queries.resolve(query, persisted(query)) == query
    assert queries.resolve(None, persisted(query)) == query
    upper = {
        "persistedQuery": {
            "version": 1,
            "sha256Hash": hashlib.sha256(query.encode()).hexdigest().upper(),
        }
    }
    assert queries.resolve(None, upper) == query
    assert queries.resolve(query, None) == query  # no extension: the text itself


@pytest.mark.parametrize(
    "extension",
    [
        {"persistedQuery": {"version": 2, "sha256Hash": "0" * 64}},
        {"persistedQuery": {"version": 1, "sha256Hash": "0" * 63}},
        {"persistedQuery": {"version": 1, "sha256Hash": 12}},
        {"persistedQuery": "yes"},
    ],
    ids=["version", "short-hash", "hash-not-text", "not-an-object"],
)
def test_malformed_extensions_are_bad_requests(extension: dict[str, object]) -> None:
    assert code(PersistedQueries().resolve, "{ __typename }", extension) == "BAD_REQUEST"


def test_a_hash_that_is_not_the_query_s_registers_nothing() -> None:
    queries = PersistedQueries()
    wrong = {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}
    assert code(queries.resolve, "{ __typename }", wrong) == "BAD_REQUEST"
    assert len(queries.queries) == 0


def test_long_queries_run_but_are_not_kept_and_the_cache_is_bounded() -> None:
    queries = PersistedQueries(entries=1000, max_bytes=20_000)
    long = "{ __typename }" + " " * MAX_QUERY_LENGTH
    assert queries.resolve(long, persisted(long)) == long
    assert len(queries.queries) == 0
    for n in range(100):
        query = f"{{ a{n}: __typename {' ' * 500} }}"
        queries.resolve(query, persisted(query))
    assert 0 < len(queries.queries) < 100  # the oldest went when the bytes ran out
    assert queries.queries.bytes <= 20_000


async def test_persisted_queries_by_hash_over_get(client: httpx.AsyncClient) -> None:
    import hashlib

    query = "{ limits { maxTags maxPageSize } }"
    digest = hashlib.sha256(query.encode()).hexdigest()
    persisted = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    unknown = await client.get(
        "/graphql", params={"extensions": json.dumps(persisted)}, headers={"accept": JSON}
    )
    assert unknown.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    registered = await client.post("/graphql", json={"query": query, "extensions": persisted})
    assert registered.json() == {"data": {"limits": {"maxTags": 10, "maxPageSize": 100}}}
    by_hash = await client.get(
        "/graphql", params={"extensions": json.dumps(persisted)}, headers={"accept": JSON}
    )
    assert by_hash.json() == registered.json()
    wrong = {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}
    mismatch = await client.post("/graphql", json={"query": query, "extensions": wrong})
    assert mismatch.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    mutation = 'mutation { deletePost(id: "x") { id } }'
    mutation_hash = {
        "persistedQuery": {
            "version": 1,
            "sha256Hash": hashlib.sha256(mutation.encode()).hexdigest(),
        }
    }
    await client.post("/graphql", json={"query": mutation, "extensions": mutation_hash})
    over_get = await client.get("/graphql", params={"extensions": json.dumps(mutation_hash)})
    assert over_get.status_code == 405


@pytest.mark.parametrize("digest", ["0" * 64, "surrogate"])
async def test_a_persisted_query_with_a_lone_surrogate_is_refused_not_a_500(
    client: httpx.AsyncClient, digest: str
) -> None:
    import hashlib

    query = "{ __typename }\ud800"
    if digest == "surrogate":  # the hash a client computes over the escaped text
        digest = hashlib.sha256(query.encode("utf-8", "surrogatepass")).hexdigest()
    body = {"query": query, "extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}}}
    # Sent as raw JSON: the escape \ud800 is valid JSON text for a lone surrogate.
    response = await client.post(
        "/graphql", content=json.dumps(body).encode(), headers={"content-type": JSON}
    )
    assert response.status_code < 500
    codes = [e["extensions"]["code"] for e in response.json()["errors"]]
    assert codes in (["BAD_REQUEST"], ["GRAPHQL_PARSE_FAILED"])
