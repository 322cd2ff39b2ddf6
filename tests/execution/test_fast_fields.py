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

from gql_api.execution import fast_fields
from gql_api.execution.fast_fields import PLANS, FastExecutionContext


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
    from gql_api.schema.root import schema

    fast_fields.prepare(schema)  # what the executor does with the schema it runs

    for field in ("id", "content", "tags", "createdAt", "updatedAt", "version"):
        assert ("Post", field) in PLANS
    assert ("PostEdge", "cursor") in PLANS  # a resolver that takes only its parent
    assert ("Post", "author") not in PLANS  # an object, resolved by its own resolver


# --- the real schema, through the real app ---------------------------------------------------
#
# The same operations over the same posts, once with the short path (the app as it runs) and
# once without it (PLANS emptied: every field takes graphql-core's own path); the HTTP
# answers, data and errors, must be identical.

REAL_OPERATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "aliases": (
        """{ feed: posts(first: 3) { nodes { key: id body: content labels: tags
               made: createdAt changed: updatedAt v: version md: isMarkdown } }
             one: posts(first: 1) { nodes { id again: id } } }""",
        {},
    ),
    "fragments": (
        """query Frag($id: ID!) {
             post(id: $id) { ...Whole }
             posts(first: 5, tag: "a") { nodes { ...Short ... on Post { tags } } }
           }
           fragment Short on Post { id version author { ...Who } }
           fragment Whole on Post { ...Short content isMarkdown imageKeys imageUrls
             createdAt updatedAt authorId }
           fragment Who on Profile { userId nickname }""",
        {"id": "{first}"},
    ),
    "skip-include-true": (
        """query Cond($with: Boolean!, $without: Boolean!) {
             posts(first: 5) { nodes { id tags @include(if: $with)
               content @skip(if: $without) updatedAt @include(if: $without)
               author @skip(if: $without) { nickname }
               ... on Post @include(if: $with) { createdAt version } } } }""",
        {"with": True, "without": True},
    ),
    "skip-include-false": (
        """query Cond($with: Boolean!, $without: Boolean!) {
             posts(first: 5) { nodes { id tags @include(if: $with)
               content @skip(if: $without) updatedAt @include(if: $without)
               author @skip(if: $without) { nickname }
               ... on Post @include(if: $with) { createdAt version } } } }""",
        {"with": False, "without": False},
    ),
    "typename": (
        """{ __typename posts(first: 2) { __typename nodes { __typename id
               author { __typename userId } }
             edges { __typename cursor } pageInfo { __typename hasNextPage } } }""",
        {},
    ),
    "introspection": (
        """{ __type(name: "Post") { name kind description
               fields { name description isDeprecated args { name }
                 type { kind name ofType { kind name ofType { kind name } } } } }
             dt: __type(name: "DateTime") { name kind description } }""",
        {},
    ),
    "datetimes": (
        """query When($id: ID!) { post(id: $id) { createdAt updatedAt }
             posts(first: 5) { nodes { id createdAt updatedAt } } }""",
        {"id": "{updated}"},
    ),
    "cursors": (
        """query Page($after: String) {
             first: posts(first: 2) { edges { cursor node { id } }
               pageInfo { hasNextPage endCursor } }
             rest: posts(first: 2, after: $after) { edges { cursor node { id } }
               pageInfo { hasNextPage endCursor } } }""",
        {"after": "{cursor}"},
    ),
    "nested-author": (
        """query Who($id: ID!) { viewer { userId isAdmin profile { userId nickname } }
             post(id: $id) { author { userId nickname } }
             posts(first: 5, authorId: "alice") { nodes { id authorId
               author { userId nickname } } }
             profile(userId: "bob") { userId nickname }
             nobody: profile(userId: "nobody") { userId nickname } }""",
        {"id": "{first}"},
    ),
    "nulls": (
        """{ missing: post(id: "no-such-post") { id content }
             nobody: profile(userId: "nobody") { userId nickname }
             posts(first: 5, tag: "no-such-tag") { nodes { id } pageInfo { endCursor } } }""",
        {},
    ),
    "errors": (
        """query Bad($after: String) { tooMany: posts(first: 100000) { nodes { id } }
             bad: posts(first: 2, after: $after) { nodes { id } } }""",
        {"after": "not-a-cursor"},
    ),
}


@pytest.fixture
async def real_app(tmp_path: Any) -> Any:
    from gql_api.app import create_app
    from gql_api.auth.dev import mint_dev_token
    from gql_api.settings import Settings
    from gql_api.stores.memory import MemoryStore
    from tests.helpers import DEV_SECRET

    settings = Settings(
        sqlite_path=tmp_path / "db.sqlite", dev_secret=DEV_SECRET, introspection=True
    )
    app = create_app(settings, store=MemoryStore())
    tokens = {
        user: mint_dev_token(settings, DEV_SECRET, user_id=user, nickname=nickname)
        for user, nickname in (("alice", None), ("bob", "Bobby"), ("carol", None))
    }
    async with app.router.lifespan_context(app):
        import httpx

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:

            async def call(query: str, variables: dict[str, Any], user: str = "alice") -> Any:
                response = await client.post(
                    "/graphql",
                    json={"query": query, "variables": variables},
                    headers={"authorization": f"Bearer {tokens[user]}"},
                )
                return response.status_code, response.json()

            create = """mutation C($c: String!, $t: [String!], $md: Boolean) {
                createPost(input: {content: $c, tags: $t, isMarkdown: $md}) { id } }"""
            await call('mutation { updateProfile(nickname: "Alice") { nickname } }', {})
            ids = {}
            for name, user, tags, markdown in (
                ("first", "alice", ["a", "b"], False),
                ("bobs", "bob", [], True),
                ("updated", "alice", ["a"], False),
                ("carols", "carol", ["a", "c"], False),
            ):
                _, body = await call(create, {"c": f"{name} post", "t": tags, "md": markdown}, user)
                ids[name] = body["data"]["createPost"]["id"]
            _, body = await call(
                'mutation U($id: ID!) { updatePost(id: $id, input: {content: "edited"}) '
                "{ updatedAt } }",
                {"id": ids["updated"]},
            )
            assert body["data"]["updatePost"]["updatedAt"] is not None
            _, body = await call("{ posts(first: 1) { pageInfo { endCursor } } }", {})
            ids["cursor"] = body["data"]["posts"]["pageInfo"]["endCursor"]
            yield call, ids


@pytest.mark.parametrize("operation", REAL_OPERATIONS)
async def test_the_real_schema_answers_the_same_with_and_without_the_short_path(
    real_app: Any, operation: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    call, ids = real_app
    query, template = REAL_OPERATIONS[operation]
    variables = {
        name: ids[value[1:-1]] if isinstance(value, str) and value.startswith("{") else value
        for name, value in template.items()
    }
    assert PLANS  # the app's schema registered its plain fields
    fast = await call(query, variables)
    monkeypatch.setattr(fast_fields, "PLANS", {})  # every field takes graphql-core's path
    slow = await call(query, variables)
    assert fast == slow
    status, body = fast
    assert status == 200, body
    if operation == "errors":
        assert body["errors"], body
    else:
        assert body["data"] and "errors" not in body, body
