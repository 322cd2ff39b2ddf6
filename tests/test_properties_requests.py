"""Properties of what a request is checked with before it runs: the cost estimate
(gql_api.execution.cost) and the query limits (gql_api.execution.query_limits).
Documents are generated as trees, so each property compares the layer with what the tree
says; variables are any JSON. (Automatic persisted queries:
test_properties_persisted.py.)"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from graphql import DocumentNode, GraphQLError, parse, validate
from hypothesis import given
from hypothesis import strategies as st

from gql_api.domain.validation import LIMITS
from gql_api.execution.cost import estimate_cost
from gql_api.execution.query_limits import QueryLimits, limit_rules
from gql_api.schema.root import schema
from tests.property_strategies import FEW, PROPERTY, json_values

FRAGMENTS = ("F0", "F1", "F2")


@dataclass(frozen=True)
class Field:
    name: str
    alias: str | None = None
    first: tuple[str, Any] | None = None  # how `first` is given, for posts
    directives: int = 0
    children: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Inline:
    children: tuple[Any, ...]
    directives: int = 0


@dataclass(frozen=True)
class Spread:
    name: str
    directives: int = 0


first_args = st.one_of(
    st.none(),
    st.tuples(st.just("int"), st.integers(-5, 200)),
    st.tuples(st.just("int"), st.sampled_from([0, 1, 100, 101, 2**31, 10**30])),
    st.tuples(st.just("huge"), st.just(4301)),  # digits
    st.tuples(st.just("var"), st.sampled_from(["a", "b", "unset"])),
    st.tuples(st.just("text"), st.sampled_from(["null", "1.5", '"10"', "TEN", "[10]", "{n: 1}"])),
)
aliases = st.none() | st.sampled_from(["x", "y", "z"])
directives = st.integers(0, 2)
leaves = st.builds(
    Field,
    st.sampled_from(["id", "content", "cursor", "__typename", "userId"]),
    aliases,
    st.none(),
    directives,
)


def extend(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    children = st.lists(inner, min_size=1, max_size=3).map(tuple)
    return st.one_of(
        st.builds(Field, st.just("posts"), aliases, first_args, directives, children),
        st.builds(
            Field,
            st.sampled_from(["edges", "node", "author", "__schema"]),
            aliases,
            st.none(),
            directives,
            children,
        ),
        st.builds(Inline, children, directives),
    )


selections = st.recursive(
    st.one_of(leaves, st.builds(Spread, st.sampled_from([*FRAGMENTS, "Missing"]), directives)),
    extend,
    max_leaves=6,
)
selection_sets = st.lists(selections, min_size=1, max_size=3).map(tuple)


def acyclic(nodes: tuple[Any, ...], index: int) -> tuple[Any, ...]:
    """Fragment ``index`` may spread only later fragments: no cycles."""
    kept: list[Any] = []
    for node in nodes:
        if isinstance(node, Spread) and node.name in FRAGMENTS[: index + 1]:
            kept.append(Field("id"))
        elif isinstance(node, Spread):
            kept.append(node)
        else:
            kept.append(type(node)(**{**node.__dict__, "children": acyclic(node.children, index)}))
    return tuple(kept)


@dataclass(frozen=True)
class Document:
    operation: tuple[Any, ...]
    fragments: dict[str, tuple[Any, ...]]
    default_b: str | None  # the literal default of $b

    def text(self, body: str | None = None) -> str:
        default = "" if self.default_b is None else f" = {self.default_b}"
        parts = [f"query Q($a: Int, $b: Int{default}) @cached {body or render(self.operation)}"]
        parts += [
            f"fragment {name} on Query {render(nodes)}" for name, nodes in self.fragments.items()
        ]
        return "\n".join(parts)


documents = st.builds(
    lambda operation, bodies, default: Document(
        operation,
        {
            name: acyclic(body, i)
            for i, (name, body) in enumerate(zip(FRAGMENTS, bodies, strict=True))
        },
        default,
    ),
    selection_sets,
    st.tuples(*(selection_sets for _ in FRAGMENTS)),
    st.none() | st.sampled_from(["5", "100", "500", "null", "-3"]),
)


def render(nodes: tuple[Any, ...]) -> str:
    return "{ " + " ".join(render_one(node) for node in nodes) + " }"


def render_one(node: Any) -> str:
    marks = " @include(if: true)" * node.directives
    if isinstance(node, Spread):
        return f"...{node.name}{marks}"
    if isinstance(node, Inline):
        return f"... on Query{marks} {render(node.children)}"
    text = f"{node.alias}: {node.name}" if node.alias else node.name
    if node.first is not None:
        kind, value = node.first
        if kind == "int":
            shown = str(value)
        elif kind == "huge":
            shown = "9" * value  # digits past int()'s limit
        else:
            shown = f"${value}" if kind == "var" else value
        text += f"(first: {shown}, after: null)"
    return f"{text}{marks} {render(node.children)}" if node.children else f"{text}{marks}"


def page_size(field: Field, variables: dict[str, Any]) -> int:
    if field.name != "posts":
        return 1
    if field.first is None:
        return LIMITS.default_page_size
    kind, value = field.first
    if kind == "var":
        value = variables.get(value)
        if value is None:
            return LIMITS.default_page_size
    elif kind != "int":
        return LIMITS.max_page_size  # not an int literal: costed as a full page
    return value if isinstance(value, int) and 1 <= value <= LIMITS.max_page_size else 100


def cost(nodes: tuple[Any, ...], doc: Document, variables: dict[str, Any]) -> int:
    total = 0
    for node in nodes:
        if isinstance(node, Field):
            total += 1 + page_size(node, variables) * cost(node.children, doc, variables)
        elif isinstance(node, Inline):
            total += cost(node.children, doc, variables)
        else:
            total += cost(doc.fragments.get(node.name, ()), doc, variables)
    return total


def depth(nodes: tuple[Any, ...], doc: Document) -> int:
    deepest = 0
    for node in nodes:
        if isinstance(node, Field) and not node.name.startswith("__"):
            deepest = max(deepest, 1 + depth(node.children, doc))
        elif isinstance(node, Inline):
            deepest = max(deepest, depth(node.children, doc))
        elif isinstance(node, Spread):
            deepest = max(deepest, depth(doc.fragments.get(node.name, ()), doc))
    return deepest


def count(nodes: tuple[Any, ...], what: str) -> int:
    own = sum(
        int(n.directives if what == "directives" else getattr(n, "alias", None) is not None)
        for n in nodes
    )
    return own + sum(count(getattr(n, "children", ()), what) for n in nodes)


def quick_parse(text: str) -> DocumentNode:
    return parse(text, no_location=True)


variable_sets = st.dictionaries(st.sampled_from(["a", "b", "c"]), json_values)


@FEW
@given(
    documents, variable_sets, st.sampled_from([None, "Q", "Other"]), st.sampled_from([1, 7, 100])
)
def test_cost_is_each_field_times_the_page_size_above_it(
    doc: Document, variables: dict[str, Any], operation_name: str | None, n: int
) -> None:
    values = dict(variables)
    if doc.default_b is not None and "b" not in values:
        values["b"] = None if doc.default_b == "null" else int(doc.default_b)
    expected = 0 if operation_name == "Other" else cost(doc.operation, doc, values)
    assert estimate_cost(quick_parse(doc.text()), operation_name, variables) == expected
    # A field more costs one more; the same selection under posts(first: n), n times more.
    plus_one = doc.text(render((*doc.operation, Field("id"))))
    expected_plus_one = 0 if operation_name == "Other" else expected + 1
    assert estimate_cost(quick_parse(plus_one), operation_name, variables) == expected_plus_one
    paged = doc.text(render((Field("posts", first=("int", n), children=doc.operation),)))
    expected_paged = 0 if operation_name == "Other" else 1 + n * expected
    assert estimate_cost(quick_parse(paged), operation_name, variables) == expected_paged


def limit_codes(document: DocumentNode, limits: QueryLimits) -> list[Any]:
    errors = validate(schema._schema, document, limit_rules(limits))
    assert all(isinstance(error, GraphQLError) for error in errors)
    return [(error.extensions or {}).get("code") for error in errors]


@FEW
@given(documents, st.integers(0, 8), st.integers(0, 6), st.integers(0, 6))
def test_each_limit_is_refused_with_its_code_exactly_when_passed(
    doc: Document, max_depth: int, max_aliases: int, max_directives: int
) -> None:
    limits = QueryLimits(
        max_depth=max_depth, max_aliases=max_aliases, max_directives=max_directives
    )
    every = [doc.operation, *doc.fragments.values()]
    expected = []
    if depth(doc.operation, doc) > max_depth:
        expected.append("QUERY_TOO_DEEP")
    if sum(count(nodes, "aliases") for nodes in every) > max_aliases:
        expected.append("TOO_MANY_ALIASES")
    if 1 + sum(count(nodes, "directives") for nodes in every) > max_directives:  # 1: @cached
        expected.append("TOO_MANY_DIRECTIVES")
    document = quick_parse(doc.text())
    assert sorted(limit_codes(document, limits)) == sorted(expected)
    assert isinstance(limit_codes(document, QueryLimits(introspection=False)), list)


TOKENS = [
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ":",
    ",",
    "...",
    "@include(if: $a)",
    "query",
    "fragment",
    "on",
    "Query",
    "posts",
    "first",
    "$a",
    "F0",
    "F1",
    "1",
    "-7",
    "9" * 5000,
    "null",
    "x",
    "=",
]


@PROPERTY
@given(st.lists(st.sampled_from(TOKENS), max_size=40).map(" ".join), variable_sets)
def test_any_document_that_parses_gets_a_cost_and_limit_errors(
    text: str, variables: dict[str, Any]
) -> None:
    try:
        document = parse(text)
    except GraphQLError:
        return
    assert estimate_cost(document, None, variables) >= 0
    assert isinstance(validate(schema._schema, document, limit_rules(QueryLimits())), list)


@pytest.mark.parametrize("length", [2, 1200])
def test_fragment_chains_and_cycles_are_costed_and_limited_without_recursion_errors(
    length: int,
) -> None:
    chain = [f"fragment F{i} on Query {{ ...F{i + 1} }}" for i in range(length)]
    for last in ("{ posts(first: 5) { nodes { id } } }", "{ ...F0 ...F1 }"):  # a chain; a cycle
        text = "\n".join(["query { ...F0 }", *chain, f"fragment F{length} on Query {last}"])
        document = parse(text, max_tokens=100_000)
        assert estimate_cost(document, None, None) >= (11 if "posts" in last else 0)
        assert isinstance(validate(schema._schema, document, limit_rules(QueryLimits())), list)
