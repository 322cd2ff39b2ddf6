"""Properties of automatic persisted queries (gql_api.http.persisted): any ``query`` and
``extensions`` values (as a JSON body carries them) give the query text to run or a
``RequestError`` coded ``BAD_REQUEST`` or ``PERSISTED_QUERY_NOT_FOUND``, never another
exception; a registered query is found by its hash (any case) until evicted."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gql_api.execution.executor import RequestError
from gql_api.http.persisted import MAX_QUERY_LENGTH, PersistedQueries
from tests.property_strategies import PROPERTY, attempt, json_values, nasty_text


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


persisted_queries = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "version": st.one_of(st.just(1), json_values),
            "sha256Hash": st.one_of(
                st.text("0123456789abcdefABCDEF", min_size=64, max_size=64), nasty_text, json_values
            ),
        }
    ),
)
extensions = st.one_of(json_values, st.fixed_dictionaries({"persistedQuery": persisted_queries}))


def resolve_or_refuse(apq: PersistedQueries, query: Any, extension: Any) -> Any:
    result = attempt(RequestError, apq.resolve, query, extension)
    if isinstance(result, RequestError):
        codes = {e["extensions"]["code"] for e in result.errors}
        assert codes <= {"BAD_REQUEST", "PERSISTED_QUERY_NOT_FOUND"} and result.errors
    return result


@PROPERTY
@given(st.one_of(nasty_text, json_values), extensions)
def test_apq_resolve_of_any_query_and_extensions_answers_or_refuses(
    query: Any, extension: Any
) -> None:
    result = resolve_or_refuse(PersistedQueries(), query, extension)
    if not isinstance(result, RequestError):
        assert result is query  # nothing was registered: only the query itself comes back


@pytest.mark.parametrize(
    "query", ["{ posts { nodes { content } } }\ud800", "\udfff", "\ud83d\ude00"]
)
def test_apq_query_with_a_lone_surrogate_is_refused_not_a_500(query: str) -> None:
    """Was a UnicodeEncodeError (HTTP 500) from hashing the query; fixed by the lead."""
    extension = {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}
    assert isinstance(resolve_or_refuse(PersistedQueries(), query, extension), RequestError)


@PROPERTY
@given(
    st.lists(
        st.one_of(
            st.text(max_size=40),
            st.sampled_from(["x" * MAX_QUERY_LENGTH, "y" * (MAX_QUERY_LENGTH + 1)]),
        ),
        min_size=1,
        max_size=6,
        unique=True,
    ),
    st.integers(1, 4),
)
def test_apq_a_registered_query_is_found_by_its_hash_until_evicted(
    queries: list[str], entries: int
) -> None:
    apq = PersistedQueries(entries=entries)
    for query in queries:
        assert (
            apq.resolve(query, {"persistedQuery": {"version": 1, "sha256Hash": sha(query)}})
            == query
        )
        wrong = {"persistedQuery": {"version": 1, "sha256Hash": sha(query + "!")}}
        assert isinstance(resolve_or_refuse(apq, query, wrong), RequestError)  # nor stored
    kept = [query for query in queries if len(query) <= MAX_QUERY_LENGTH][-entries:]
    for query in reversed(queries):
        for digest in (sha(query), sha(query).upper(), sha(query + "!")):
            found = resolve_or_refuse(
                apq, None, {"persistedQuery": {"version": 1, "sha256Hash": digest}}
            )
            assert found == (query if query in kept and digest != sha(query + "!") else found)
            if query not in kept or digest == sha(query + "!"):
                assert isinstance(found, RequestError)
