"""Compiled operations (``execution/compiled.py``, ``plan_run.py``) answer exactly what
graphql-core answers: data, errors with their paths, locations and extensions, the order
of every key, and the same log lines.

Random valid operations of the served schema (hypothesis-graphql: queries with aliases,
fragments, ``__typename`` and introspection, and mutations) run over random posts and
profiles in the memory store: nulls where the schema allows them, values the schema
refuses (a null content, a tag that is not a string, a date that is not one), profiles
that fail for one author, pages or reads that fail, a store that is down. Each runs once
compiled and once on graphql-core alone, on stores seeded alike with the same clock and
ids, and the two responses must be the same bytes. The fast tier runs some hundreds;
``make test`` runs thousands."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from graphql import (
    REMOVE,
    ArgumentNode,
    DocumentNode,
    IntValueNode,
    ObjectFieldNode,
    StringValueNode,
    Visitor,
    parse,
    print_ast,
    visit,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import from_schema

from gql_api.auth.identity import Identity
from gql_api.domain.records import PostRecord, ProfileRecord
from gql_api.domain.service import PostService
from gql_api.execution.compiled import Unsupported, compile_plan
from gql_api.execution.executor import Executor, RequestError
from gql_api.resolvers.context import RequestContext
from gql_api.schema.root import schema, sdl
from gql_api.stores.base import DatabaseUnavailable, PageQuery, PostPage
from gql_api.stores.memory import MemoryStore

COMPILED = Executor(schema)
CORE = Executor(schema, compile_operations=False)
START = datetime(2026, 1, 1, tzinfo=UTC)
IDS = [f"{n:032x}" for n in range(1, 9)]
USERS = ["u1", "u2", "u3"]
SHOWN = "fragment Shown on Post { id body: content tags createdAt updatedAt author { ...Who } }"
WHO = "fragment Who on Profile { userId nickname }"
# (document, variables strategy): what hypothesis-graphql does not write (variables,
# directives on them, several operations).
HANDWRITTEN: list[tuple[str, st.SearchStrategy[dict[str, Any]]]] = [
    (
        "query Feed($first: Int!, $tag: String) {"
        "  latest: posts(first: $first) { nodes { ...Shown } }"
        "  tagged: posts(first: 2, tag: $tag) {"
        "    edges { node { ...Shown who: author { nickname } } } }"
        f"}} {SHOWN} {WHO}",
        st.fixed_dictionaries(
            {"first": st.integers(-1, 30), "tag": st.none() | st.sampled_from(["a", "b", "ä"])}
        ),
    ),
    (
        "query ($on: Boolean!) { posts { nodes { id content @include(if: $on) } } }",
        st.fixed_dictionaries({"on": st.booleans()}),
    ),
    (
        "{ posts { nodes { id tags @skip(if: true) version @include(if: true) } } }",
        st.just({}),
    ),
    (
        "query ($id: ID!) { post(id: $id) { id author { nickname } imageUrls } "
        "other: post(id: $id) { __typename content } limits { maxTags } }",
        st.fixed_dictionaries({"id": st.sampled_from([*IDS, "nope"])}),
    ),
    (
        "query ($user: ID!) { profile(userId: $user) { userId nickname } "
        "viewer { userId isAdmin profile { nickname } } }",
        st.fixed_dictionaries({"user": st.sampled_from(USERS)}),
    ),
    (
        "query ($n: Int, $after: String) { posts(first: $n, after: $after) "
        "{ pageInfo { hasNextPage endCursor } nodes { id } } }",
        st.fixed_dictionaries(
            {"n": st.none() | st.integers(-1, 200), "after": st.none() | st.text(max_size=8)}
        ),
    ),
    (
        "query A { posts(first: 1) { nodes { id } } } query B { viewer { userId } }",
        st.just({}),
    ),
    (
        "mutation ($content: String!, $key: String) { "
        'first: createPost(input: {content: $content, tags: ["a"]}, idempotencyKey: $key) '
        "{ id content tags author { userId nickname } } "
        "again: createPost(input: {content: $content}, idempotencyKey: $key) { id version } "
        'gone: deletePost(id: "' + IDS[0] + '") { id } }',
        st.fixed_dictionaries(
            {"content": st.text(max_size=12), "key": st.none() | st.sampled_from(["k1", "k2"])}
        ),
    ),
]
# A stored value the schema refuses, as a store could return it (a bug, an old item).
CORRUPTIONS = [
    ("content", None),
    ("tags", ("a", None)),
    ("tags", "a"),
    ("tags", ("a", {"b": 1})),
    ("updated_at", "yesterday"),
    ("created_at", None),
    ("version", "two"),
    ("is_markdown", None),
    ("author_id", None),
]


class Failing(MemoryStore):
    """The memory store, failing where the example says, and taking its time: each call
    yields to the loop as many times as the example says for it (so concurrent fields
    end in an order of the example's choosing, the same on both runs)."""

    def __init__(self, failure: str, delays: Mapping[str, int]) -> None:
        super().__init__()
        self.failure = failure
        self.delays = delays

    async def _wait(self, call: str) -> None:
        for _ in range(self.delays.get(call, 0)):
            await asyncio.sleep(0)

    async def list_posts(self, query: PageQuery) -> PostPage:
        await self._wait("tagged pages" if query.tag else "pages")
        if self.failure == "pages" or (self.failure == "tagged pages" and query.tag):
            raise RuntimeError("a bug below a resolver")
        return await super().list_posts(query)

    async def get(self, post_id: str) -> PostRecord | None:
        await self._wait("reads")
        if self.failure == "reads":
            raise DatabaseUnavailable("reads are down")
        return await super().get(post_id)

    async def get_profiles(self, user_ids: Sequence[str]) -> Mapping[str, ProfileRecord]:
        await self._wait("profiles")
        if self.failure == "profiles" or (self.failure == "u2's profile" and "u2" in user_ids):
            raise DatabaseUnavailable("profiles are down")
        return await super().get_profiles(user_ids)


FAILURES = ["none", "none", "none", "profiles", "u2's profile", "pages", "tagged pages", "reads"]

posts_strategy = st.lists(
    st.builds(
        lambda n, author, content, tags, updated, nickname: PostRecord(
            id=IDS[n],
            author_id=author,
            content=content,
            is_markdown=n % 2 == 0,
            tags=tuple(tags),
            image_keys=(),
            created_at=START + timedelta(seconds=n),
            updated_at=None if updated is None else START + timedelta(days=updated),
            version=1 if updated is None else 2,
            author_nickname=nickname,
        ),
        st.integers(0, len(IDS) - 1),
        st.sampled_from(USERS),
        st.text(min_size=1, max_size=20).filter(str.strip),
        st.lists(st.sampled_from(["a", "b", "ä"]), unique=True, max_size=3),
        st.none() | st.integers(1, 5),
        st.none() | st.sampled_from(["Ada", "Bo"]),
    ),
    min_size=1,
    max_size=6,
    unique_by=lambda post: post.id,
)
profiles_strategy = st.dictionaries(
    st.sampled_from(USERS), st.none() | st.sampled_from(["Stored", "Other", {"not": "text"}])
)
viewer_strategy = (
    st.builds(Identity, user_id=st.sampled_from(["u1", "u2", "u9"]), is_admin=st.booleans())
    | st.none()
)


class World:
    """One example's data: stored alike for each of the two runs."""

    def __init__(self, data: st.DataObject) -> None:
        self.failure = data.draw(st.sampled_from(FAILURES), "failure")
        calls = st.sampled_from(["pages", "tagged pages", "reads", "profiles"])
        self.delays = data.draw(st.dictionaries(calls, st.integers(0, 4)), "delays")
        self.posts = data.draw(posts_strategy, "posts")
        indexes = st.integers(0, max(0, len(self.posts) - 1))
        corruptions = st.dictionaries(indexes, st.sampled_from(CORRUPTIONS), max_size=2)
        self.corruptions = data.draw(corruptions | st.just({}), "corruptions")
        self.profiles = data.draw(profiles_strategy, "profiles")
        self.viewer = data.draw(viewer_strategy, "viewer")

    async def service(self) -> PostService:
        store = Failing(self.failure, self.delays)
        await store.open()
        for index, post in enumerate(self.posts):
            stored = dataclasses.replace(post)  # this run's own
            await store.create(stored)
            if index in self.corruptions:
                name, value = self.corruptions[index]
                object.__setattr__(stored, name, value)  # past the store's own checks
        for user_id, nickname in self.profiles.items():
            # past the store's checks too: a nickname that is not text
            await store.put_profile(ProfileRecord(user_id, nickname, START))  # type: ignore[arg-type]
        ticks = (START + timedelta(minutes=n) for n in itertools.count())
        ids: Iterator[str] = (f"{n:032x}" for n in itertools.count(100))
        return PostService(store, timeout=5, clock=lambda: next(ticks), new_id=lambda: next(ids))


class Lines(logging.Handler):
    """What the service logs: an internal error's real message and place are only there."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.INFO:
            self.lines.append(f"{record.levelname} {record.getMessage()}")


LINES = Lines()


async def answer(executor: Executor, world: World, query: str, variables: Any) -> str:
    LINES.lines.clear()
    context = RequestContext(service=await world.service(), viewer=world.viewer, request_id="r")
    try:
        prepared = executor.prepare(query, None)
        body = await executor.execute(
            prepared, variables=variables, operation_name=None, context=context, request_id="r"
        )
    except RequestError as error:
        body = {"errors": error.errors}
    return json.dumps({"body": body, "logged": LINES.lines})  # the bytes: key order included


def both(world: World, query: str, variables: Any = None) -> tuple[str, str]:
    async def run() -> tuple[str, str]:
        compiled = await answer(COMPILED, world, query, variables)
        core = await answer(CORE, world, query, variables)
        return compiled, core

    return asyncio.run(run())


@pytest.fixture(autouse=True)
def _logged_here() -> Iterator[None]:
    """The service's log lines go to ``LINES`` only: thousands of failing resolvers each
    log an error with its trace, not worth keeping."""
    logger = logging.getLogger("gql_api")
    level, propagate = logger.level, logger.propagate
    logger.addHandler(LINES)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield
    logger.removeHandler(LINES)
    logger.setLevel(level)
    logger.propagate = propagate


STEERED = {
    "tag": ["a", "b", "ä", "c"],
    "id": IDS,
    "userId": USERS,
    "idempotencyKey": ["k1", "k2"],
    "nickname": ["Ada", "Bo"],
}


def steered(document: DocumentNode) -> str:
    """The document, its arguments mostly turned into values the service takes (random
    ones are nearly all refused, which nulls the root and tests little else): a mapping
    of the drawn value, so a failing example replays."""

    class Steer(Visitor):
        def enter_argument(self, node: ArgumentNode, *_: Any) -> Any:
            name, value = node.name.value, node.value
            if name == "first" and isinstance(value, IntValueNode):
                drawn = abs(int(value.value))
                small = IntValueNode(value=str(drawn % 25 if drawn else 3))
                return ArgumentNode(name=node.name, value=small)
            if isinstance(value, IntValueNode) and name in STEERED:  # an ID written as a number
                value = StringValueNode(value=value.value)
            if not isinstance(value, StringValueNode) or len(value.value) % 5 == 1:
                return None  # kept as drawn
            if name == "after":
                return REMOVE
            pool = STEERED.get("userId" if name == "authorId" else name)
            if pool is None:
                return None
            chosen = StringValueNode(value=pool[len(value.value) % len(pool)])
            return ArgumentNode(name=node.name, value=chosen)

        def enter_object_field(self, node: ObjectFieldNode, *_: Any) -> Any:
            value = node.value
            blank = isinstance(value, StringValueNode) and not value.value.strip()
            if node.name.value == "content" and blank:
                return ObjectFieldNode(name=node.name, value=StringValueNode(value="hello"))
            return None

    return print_ast(visit(document, Steer()))


OPERATIONS = from_schema(sdl(), print_ast=steered)  # every query and mutation field
EVERY = settings(deadline=None, suppress_health_check=list(HealthCheck), database=None)


def examples(count: int) -> settings:
    return settings(EVERY, max_examples=count)


def check_random_operations(query: str, data: st.DataObject) -> None:
    compiled, core = both(World(data), query)
    assert compiled == core


@examples(300)
@given(query=OPERATIONS, data=st.data())
def test_random_operations_answer_the_same_compiled_and_on_graphql_core(
    query: str, data: st.DataObject
) -> None:
    check_random_operations(query, data)


@pytest.mark.slow
@examples(3000)
@given(query=OPERATIONS, data=st.data())
def test_thousands_of_random_operations_answer_the_same(query: str, data: st.DataObject) -> None:
    check_random_operations(query, data)


@examples(400)
@given(index=st.integers(0, len(HANDWRITTEN) - 1), data=st.data())
def test_variables_directives_and_several_operations_answer_the_same(
    index: int, data: st.DataObject
) -> None:
    query, variables = HANDWRITTEN[index]
    compiled, core = both(World(data), query, data.draw(variables, "variables"))
    assert compiled == core


def test_a_plan_runs_nearly_every_operation() -> None:
    world = World.__new__(World)
    world.failure, world.posts, world.corruptions, world.profiles = "none", [], {}, {}
    world.delays = {}
    world.viewer = Identity("u1")
    before = COMPILED.planned_runs
    documents = [query for query, _ in HANDWRITTEN if "$on" not in query and "query A" not in query]
    for query in documents:
        both(world, query, {"first": 2, "tag": None, "id": IDS[0], "user": "u1", "content": "x"})
    both(world, "{ __schema { queryType { name } types { name kind } } }")
    # Every one but those with a directive on a variable: those run on graphql-core.
    assert COMPILED.planned_runs - before == len(documents) + 1


@pytest.mark.parametrize(
    ("document", "why"),
    [
        (
            "query ($on: Boolean!) { limits @include(if: $on) { maxTags } }",
            "@include on a variable",
        ),
        ("subscription { posts { nodes { id } } }", "a subscription"),
    ],
)
def test_what_a_plan_does_not_run_is_named(document: str, why: str) -> None:
    from gql_api.execution.fast_fields import FastExecutionContext

    built = FastExecutionContext.build(schema._schema, parse(document), None, None, {"on": True})
    assert not isinstance(built, list)
    with pytest.raises(Unsupported, match=why):
        compile_plan(built)


def test_an_operation_under_field_middleware_is_left_to_graphql_core() -> None:
    from gql_api.execution.fast_fields import FastExecutionContext

    def middleware(next_: Any, root: Any, info: Any, **arguments: Any) -> Any:
        return next_(root, info, **arguments)

    document = parse("{ limits { maxTags } }")
    built = FastExecutionContext.build(
        schema._schema, document, None, None, None, middleware=[middleware]
    )
    assert not isinstance(built, list)
    with pytest.raises(Unsupported, match="middleware"):
        compile_plan(built)


@pytest.mark.parametrize(
    "document",
    [
        "{ posts(first: 20) { edges { node { id content tags author { userId nickname } } } } }",
        "{ "
        + " ".join(
            f"a{n}: posts(first: 2) {{ nodes {{ id content tags version createdAt updatedAt "
            "author { userId nickname } } pageInfo { hasNextPage endCursor } }"
            for n in range(25)
        )
        + " }",
    ],
)
def test_the_plan_cache_charges_at_least_what_a_plan_holds(document: str) -> None:
    import gc
    import tracemalloc

    from gql_api.execution.executor import PLAN_FIELD_BYTES
    from gql_api.execution.fast_fields import FastExecutionContext

    built = FastExecutionContext.build(schema._schema, parse(document), None, None, None)
    assert not isinstance(built, list)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    plans = [compile_plan(built) for _ in range(10)]
    gc.collect()
    held = (tracemalloc.get_traced_memory()[0] - before) / len(plans)
    tracemalloc.stop()
    charged = PLAN_FIELD_BYTES * plans[0].fields
    assert held <= charged <= 2 * held


async def spent_on_graphql_core(world: World, query: str, variables: Any) -> int:
    """The bytes graphql-core's path spends of the budget on the whole response."""
    context = RequestContext(service=await world.service(), viewer=world.viewer, request_id="r")
    try:
        await CORE.execute(
            CORE.prepare(query, None),
            variables=variables,
            operation_name=None,
            context=context,
            request_id="r",
        )
    except RequestError:
        return 0
    budget = context.response_budget
    return 0 if budget is None else int(budget.limit - budget.left)


@examples(200)
@given(margin=st.integers(-60, 60), index=st.integers(0, len(HANDWRITTEN) - 1), data=st.data())
def test_a_response_over_its_byte_budget_is_refused_alike(
    margin: int, index: int, data: st.DataObject
) -> None:
    """A budget within a few bytes of what the response spends: the two paths refuse the
    same responses (RESPONSE_TOO_LARGE) and answer the others alike, whatever errors null
    on the way."""
    from gql_api.execution.query_limits import QueryLimits

    world = World(data)
    query, variables = HANDWRITTEN[index]
    drawn = data.draw(variables, "variables")

    async def run() -> tuple[str, str]:
        spent = await spent_on_graphql_core(world, query, drawn)
        limits = QueryLimits(max_response_bytes=max(1, spent + margin))
        compiled = await answer(Executor(schema, limits), world, query, drawn)
        core = await answer(Executor(schema, limits, compile_operations=False), world, query, drawn)
        return compiled, core

    compiled, core = asyncio.run(run())
    assert compiled == core
