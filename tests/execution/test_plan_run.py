"""Compiled operations fail as graphql-core fails, on a schema made to fail.

The served schema cannot fail everywhere: most of its fields are plain reads and its
root fields are async. This schema's every field behaves as the example says, sync or
async, after a number of turns of the event loop: it answers, answers null, answers a
value its type refuses, or raises. Random operations over it (hypothesis-graphql) run
compiled and on graphql-core, and the results must be the same: data, every error with
its message, path and locations, in the same order; and the resolvers must start and
end in the same order (the same work is awaited, side by side, and cancelled)."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
from graphql import (
    ExecutionResult,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    build_schema,
    parse,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import from_schema

from gql_api.execution.compiled import compile_plan
from gql_api.execution.fast_fields import FastExecutionContext
from gql_api.execution.plan_run import run_plan

SDL = """
schema { query: Root mutation: Changes }
type Root { one: Node  must: Node!  many: [Node]  strict: [Node!]!  count: Int  word: String! }
type Changes { make: Node!  maybe: Node  tally: Int }
type Item { id: ID!  name: String  child: Item  children: [Item!]  kids: [Item]!  value: Int! }
type Node { id: ID!  name: String  child: Node  children: [Node!]  kids: [Node]!  value: Int!
            item: Item  items: [Item!]! }
"""
SCHEMA = build_schema(SDL)
TYPES = {
    name: cast(GraphQLObjectType, SCHEMA.type_map[name])
    for name in ("Root", "Changes", "Node", "Item")
}
# Each async resolver's start and end, in order: the two runs must take the same turns.
JOURNAL: list[str] = []
BEHAVIOURS = ["value", "value", "value", "null", "refused", "raise"]


class Behaviour:
    """How each field answers, per (type, field): drawn once for the example."""

    def __init__(self, data: st.DataObject) -> None:
        self.plan: dict[str, tuple[str, bool, int]] = {}
        for type_name, graphql_type in TYPES.items():
            for name in graphql_type.fields:
                self.plan[f"{type_name}.{name}"] = data.draw(
                    st.tuples(st.sampled_from(BEHAVIOURS), st.booleans(), st.integers(0, 3)),
                    f"{type_name}.{name}",
                )

    def resolver(self, at: str, kind: str) -> Callable[..., Any]:
        behaviour, is_async, turns = self.plan[at]

        def answer(source: Any, info: GraphQLResolveInfo[Any]) -> Any:
            depth = len(info.path.as_list())
            if behaviour == "raise":
                raise ValueError(f"{at} failed at depth {depth}")
            if behaviour == "null":
                return None
            if behaviour == "refused":
                return {"not": "a value"} if kind != "list" else 7
            if kind == "list":
                return [{"n": n} for n in range(depth % 3 + 1)]
            if kind == "object":
                return {"n": depth}
            return depth if kind == "Int" else f"{at}@{depth}"

        if not is_async:
            return answer

        async def later(source: Any, info: GraphQLResolveInfo[Any]) -> Any:
            where = ".".join(map(str, info.path.as_list()))
            JOURNAL.append(f"start {where}")
            for _ in range(turns):
                await asyncio.sleep(0)
            JOURNAL.append(f"end {where}")
            return answer(source, info)

        return later

    def install(self) -> None:
        for type_name, graphql_type in TYPES.items():
            for name, field in graphql_type.fields.items():
                field.resolve = self.resolver(f"{type_name}.{name}", _kind(field.type))


def _kind(output: GraphQLOutputType) -> str:
    """What a resolver answers for this type: a list, an object, or the scalar's name."""
    named = output.of_type if isinstance(output, GraphQLNonNull) else output
    if isinstance(named, GraphQLList):
        return "list"
    return "object" if isinstance(named, GraphQLObjectType) else str(named)


def _run(query: str, compiled: bool) -> str:
    async def run() -> Any:
        JOURNAL.clear()
        built = FastExecutionContext.build(SCHEMA, parse(query), None, None, None)
        assert not isinstance(built, list)
        outcome = (
            run_plan(compile_plan(built), built, None) if compiled else built.execute_operation()
        )
        result = await outcome if asyncio.iscoroutine(outcome) else outcome
        answered = cast(ExecutionResult, result).formatted
        while built.background_futures:  # what settles in the background ends too
            await asyncio.wait(list(built.background_futures))
        return answered, len(built.collected_errors.errors), JOURNAL

    answered = json.dumps(asyncio.run(run()))
    # A sibling cancelled before it started is a coroutine never awaited, finalized by the
    # collector: here, not wherever the next collection happens to run (inside a
    # namedtuple's __new__, whose empty builtins break the warning it gives).
    gc.collect()
    return answered


@pytest.fixture
def young_heap() -> Iterator[None]:
    """The heap so far left out of collections (gc.freeze), so that each run's collection
    walks only what the run made."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


# A sibling cancelled before it started (as gather_with_cancel does, on both paths).
@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(query=from_schema(SCHEMA), data=st.data())
def test_failing_fields_fail_the_same_compiled_and_on_graphql_core(
    young_heap: None, query: str, data: st.DataObject
) -> None:
    Behaviour(data).install()
    assert _run(query, compiled=True) == _run(query, compiled=False)


def _both(schema: Any, query: str) -> tuple[str, str]:
    """One query run twice on each path (a plan serves every request): the answers."""

    async def one(compiled: bool) -> Any:
        built = FastExecutionContext.build(schema, parse(query), None, None, None)
        assert not isinstance(built, list)
        plan = compile_plan(built)
        outcome = run_plan(plan, built, None) if compiled else built.execute_operation()
        result = await outcome if asyncio.iscoroutine(outcome) else outcome
        return cast(ExecutionResult, result).formatted

    async def run(compiled: bool) -> str:
        return json.dumps([await one(compiled), await one(compiled)])

    return asyncio.run(run(True)), asyncio.run(run(False))


def test_a_resolver_changing_its_literal_arguments_changes_no_other_call() -> None:
    schema = build_schema("type Query { items: [Item] } type Item { f(xs: [Int]): String }")

    def grow(source: Any, info: Any, xs: list[int]) -> str:
        xs.append(len(xs))  # its own copy, on graphql-core: each call, each request
        return str(xs)

    cast(GraphQLObjectType, schema.type_map["Item"]).fields["f"].resolve = grow
    cast(GraphQLObjectType, schema.type_map["Query"]).fields["items"].resolve = (
        lambda source, info: [1, 2, 3]
    )
    compiled, core = _both(schema, "{ items { f(xs: [0]) } }")
    assert compiled == core
    assert '"[0, 1, 2]"' not in compiled


def test_a_list_that_is_also_async_iterable_is_completed_as_graphql_core_does() -> None:
    class Both(list[int]):
        def __aiter__(self) -> Any:
            async def items() -> Any:
                for n in (7, 8):
                    yield n

            return items()

    schema = build_schema("type Query { a: [Int] }")
    cast(GraphQLObjectType, schema.type_map["Query"]).fields["a"].resolve = lambda source, info: (
        Both([1, 2])
    )
    compiled, core = _both(schema, "{ a }")
    assert compiled == core
    assert "[7, 8]" in compiled
