"""The query limits (``execution/query_limits.py``) as validation rules on the real
schema: depth through fragments, aliases, directives, introspection when it is off; and
the validation work a document would cost, counted before validating it."""

from __future__ import annotations

from graphql import parse, validate

from gql_api.execution.query_limits import QueryLimits, limit_rules, validation_work
from gql_api.schema.root import schema


def codes(query: str, **limits: object) -> list[str]:
    errors = validate(schema._schema, parse(query), limit_rules(QueryLimits(**limits)))  # type: ignore[arg-type]
    return [str((e.extensions or {}).get("code")) for e in errors]


def test_depth_counts_through_fragments() -> None:
    deep = "{ posts { edges { node { author { nickname } } } } }"  # 5 levels
    assert codes(deep, max_depth=5) == []
    assert codes(deep, max_depth=4) == ["QUERY_TOO_DEEP"]
    hidden = (
        "{ posts { ...E } } fragment E on PostConnection { edges { node { ...N } } } "
        "fragment N on Post { author { nickname } }"
    )
    assert codes(hidden, max_depth=4) == ["QUERY_TOO_DEEP"]


def test_aliases_and_directives_are_counted_once_over_the_limit() -> None:
    aliases = "{ " + " ".join(f"a{i}: limits {{ maxTags }}" for i in range(5)) + " }"
    assert codes(aliases, max_aliases=5) == []
    assert codes(aliases, max_aliases=2) == ["TOO_MANY_ALIASES"]
    directives = "{ limits { " + " ".join("maxTags @include(if: true)" for _ in range(4)) + " } }"
    assert codes(directives, max_directives=4) == []
    assert codes(directives, max_directives=3) == ["TOO_MANY_DIRECTIVES"]


def test_introspection_is_refused_only_when_off() -> None:
    query = "{ __schema { queryType { name } } }"
    assert codes(query) == []
    assert codes(query, introspection=False)  # refused (graphql-core: one error a field)


def test_validation_work_grows_with_the_square_of_repeated_names() -> None:
    def work(repeats: int) -> int:
        return validation_work(parse("{ limits { " + "maxTags " * repeats + "} }"))

    assert work(1) == 2  # limits (1 squared) + maxTags (1 squared)
    assert work(10) == 1 + 100
    assert work(100) == 1 + 10_000
    # Through a fragment spread the same: what the rule compares, not the text's size.
    spread = "{ limits { ...F ...F } } fragment F on Limits { maxTags maxTags }"
    assert validation_work(parse(spread)) == 1 + 4 + 4
