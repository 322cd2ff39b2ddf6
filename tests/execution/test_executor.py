"""The executor (``execution/executor.py``): parse and validate once per document text
(cached, bounded), the error codes of each phase, errors masked unless raised on
purpose, and the response's byte budget. On a small schema of its own."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import pytest
import strawberry

from gql_api.errors import Forbidden
from gql_api.execution.executor import CACHEABLE_QUERY_LENGTH, Executor, RequestError
from gql_api.execution.query_limits import QueryLimits


@strawberry.type
class Query:
    @strawberry.field
    def hello(self, name: str = "world") -> str:
        return f"hello {name}"

    @strawberry.field
    def words(self, count: int) -> list[str]:
        return ["word"] * count

    @strawberry.field
    def refused(self) -> str | None:
        raise Forbidden("not yours")

    @strawberry.field
    def broken(self) -> str | None:
        raise RuntimeError("the secret connection string")


SCHEMA = strawberry.Schema(query=Query)


@dataclass
class Context:
    response_budget: Any = None  # set by the executor for each execution
    notices: list[dict[str, Any]] = field(default_factory=list)


async def run(executor: Executor, query: str, variables: dict[str, Any] | None = None) -> Any:
    prepared = executor.prepare(query, None)
    return await executor.execute(
        prepared, variables=variables, operation_name=None, context=Context(), request_id="r-1"
    )


def codes(error: RequestError) -> list[str]:
    return [e["extensions"]["code"] for e in error.errors]


async def test_a_valid_query_answers_data_and_no_errors() -> None:
    assert await run(Executor(SCHEMA), '{ hello(name: "ada") }') == {"data": {"hello": "hello ada"}}


def test_a_document_is_parsed_and_validated_once() -> None:
    executor = Executor(SCHEMA)
    first = executor.prepare("{ hello }", None)
    again = executor.prepare("{ hello }", None)
    assert again.document is first.document  # from the cache, not parsed again
    assert len(executor.documents) == 1


def test_a_document_too_long_to_cache_is_checked_every_time() -> None:
    executor = Executor(SCHEMA)
    query = "{ hello " + " " * CACHEABLE_QUERY_LENGTH + "}"
    assert executor.prepare(query, None).document is not executor.prepare(query, None).document
    assert len(executor.documents) == 0


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("{ hello", "GRAPHQL_PARSE_FAILED"),
        ("{ nope }", "GRAPHQL_VALIDATION_FAILED"),
        ("{ " + "hello " * 50 + "}", "TOO_MANY_TOKENS"),
        ("{ " + " ".join(f"a{i}: hello" for i in range(5)) + " }", "TOO_MANY_ALIASES"),
        ("{ hello hello hello hello hello hello }", "VALIDATION_TOO_COMPLEX"),
    ],
    ids=["syntax", "unknown-field", "tokens", "aliases", "validation-work"],
)
def test_each_refusal_before_execution_has_its_code(query: str, code: str) -> None:
    limits = QueryLimits(max_tokens=40, max_aliases=4, max_validation_work=20)
    with pytest.raises(RequestError) as refused:
        Executor(SCHEMA, limits).prepare(query, None)
    assert codes(refused.value) == [code]


def test_an_unnamed_choice_among_several_operations_is_a_bad_request() -> None:
    with pytest.raises(RequestError) as refused:
        Executor(SCHEMA).prepare("query A { hello } query B { hello }", None)
    assert codes(refused.value) == ["BAD_REQUEST"]
    assert Executor(SCHEMA).prepare("query A { hello } query B { hello }", "B").name == "B"


async def test_variables_of_the_wrong_type_are_a_request_error() -> None:
    with pytest.raises(RequestError) as refused:
        await run(Executor(SCHEMA), "query ($n: Int!) { words(count: $n) }", {"n": "three"})
    assert codes(refused.value) == ["BAD_USER_INPUT"]


async def test_errors_raised_on_purpose_keep_their_code_and_others_are_masked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR):
        body = await run(Executor(SCHEMA), "{ refused broken hello }")
    assert body["data"] == {"refused": None, "broken": None, "hello": "hello world"}
    refused, broken = sorted(body["errors"], key=lambda e: e["path"])[::-1]
    assert refused["extensions"]["code"] == "FORBIDDEN" and refused["message"] == "not yours"
    assert broken["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": "r-1"}
    assert "secret" not in str(body)
    assert "secret" in caplog.text  # the cause is in the log, with the request id
    assert "r-1" in caplog.text


async def test_a_response_over_its_byte_budget_is_refused_whole() -> None:
    executor = Executor(SCHEMA, QueryLimits(max_response_bytes=1000))
    assert (await run(executor, "{ words(count: 10) }"))["data"] == {"words": ["word"] * 10}
    body = await run(executor, "{ words(count: 100) }")
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["RESPONSE_TOO_LARGE"]
