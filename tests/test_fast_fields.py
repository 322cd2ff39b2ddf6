"""The short path for plain leaf fields answers exactly what graphql-core's own path does,
errors included (it hands every unusual value back to graphql-core)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import pytest
from graphql import (
    ExecutionResult,
    GraphQLField,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    GraphQLString,
    execute,
    parse,
)
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from gql_api import fast_fields
from gql_api.fast_fields import PLANS, FastExecutionContext


@dataclass
class Thing:
    name: Any
    count: Any
    labels: Any
    note: Any


def reader(attribute: str) -> Any:
    read = attrgetter(attribute)
    return lambda source, info, **arguments: read(source)


FIELDS: dict[str, GraphQLOutputType] = {
    "name": GraphQLNonNull(GraphQLString),
    "count": GraphQLNonNull(GraphQLInt),
    "labels": GraphQLNonNull(GraphQLList(GraphQLNonNull(GraphQLString))),
    "note": GraphQLString,
}
THING = GraphQLObjectType(
    "FastFieldsProbeThing",
    {name: GraphQLField(kind, resolve=reader(name)) for name, kind in FIELDS.items()},
)
QUERY_TYPE = GraphQLObjectType(
    "FastFieldsProbeQuery",
    {"things": GraphQLField(GraphQLList(THING), resolve=lambda root, info: root)},
)
SCHEMA = GraphQLSchema(QUERY_TYPE)
DOCUMENT = parse("{ things { name count labels note alias: name } }")


@pytest.fixture(autouse=True)
def registered() -> Iterator[None]:
    for name in FIELDS:
        fast_fields.register(SCHEMA, THING, name, attrgetter(name))
    yield
    for name in FIELDS:
        PLANS.pop((THING.name, name), None)


def run(things: list[Thing], fast: bool) -> ExecutionResult:
    context = FastExecutionContext if fast else StrawberryGraphQLCoreExecutionContext
    result = execute(SCHEMA, DOCUMENT, root_value=things, executor_class=context)
    assert isinstance(result, ExecutionResult)
    return result


def as_compared(result: ExecutionResult) -> tuple[Any, list[tuple[str, Any]]]:
    return result.data, [(error.message, error.path) for error in result.errors or []]


@pytest.mark.parametrize(
    "thing",
    [
        Thing("ada", 3, ["x", "y"], None),
        Thing("ada", 3, ("x",), "a note"),
        Thing(None, 3, [], None),  # null for a non-null field
        Thing("ada", "three", [], None),  # a value Int refuses
        Thing("ada", 2**40, [], None),  # out of Int's range
        Thing("ada", 1, ["x", None], None),  # null inside [String!]!
        Thing("ada", 1, "xy", None),  # a string where a list belongs
        Thing("ada", 1, None, 5),  # null list; a note Int-valued (String coerces it)
    ],
)
def test_the_short_path_answers_as_graphql_core_does(thing: Thing) -> None:
    fast = run([thing, Thing("bob", 1, [], None)], fast=True)
    plain = run([thing, Thing("bob", 1, [], None)], fast=False)
    assert as_compared(fast) == as_compared(plain)


def test_the_short_path_is_taken_for_registered_leaves() -> None:
    taken: list[str] = []

    class Counting(FastExecutionContext):
        def build_resolve_info(self, field_def: Any, *args: Any) -> Any:
            taken.append(args[1].name)  # the parent type of a field on the long path
            return super().build_resolve_info(field_def, *args)

    result = execute(
        SCHEMA,
        DOCUMENT,
        root_value=[Thing("ada", 3, ["x"], None)],
        executor_class=Counting,
    )
    assert isinstance(result, ExecutionResult) and not result.errors
    assert taken == [QUERY_TYPE.name]  # only `things` went the long way


def test_the_schema_registers_the_plain_leaves_of_a_post() -> None:
    import gql_api.schema  # noqa: F401 - builds the schema, which registers its fields

    for field in ("id", "content", "tags", "createdAt", "updatedAt", "version"):
        assert ("Post", field) in PLANS
    assert ("PostEdge", "cursor") in PLANS  # a resolver that takes only its parent
    assert ("Post", "author") not in PLANS  # an object, resolved by its own resolver
