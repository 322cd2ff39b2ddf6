"""``selects`` (resolvers/posts.py): whether a page's selection asks for a field anywhere
below it, read from graphql-core's nodes, as graphql-core would collect the fields."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import FieldNode, FragmentDefinitionNode, OperationDefinitionNode, parse

from gql_api.resolvers.posts import _selects

SKIP = "query ($s: Boolean!) { posts { nodes { author @skip(if: $s) { userId } } } }"
CASES = [
    ("{ posts { nodes { id author { nickname } } } }", {}, True),
    ("{ posts { nodes { id } } }", {}, False),
    ('{ posts { nodes { id } } author: profile(userId: "u") { userId } }', {}, False),
    (
        "{ posts { ...F } } "
        "fragment F on PostConnection { edges { node { who: author { userId } } } }",
        {},
        True,
    ),
    ("{ posts { edges { node { ... on Post { author { userId } } } } } }", {}, True),
    ("{ posts { nodes { id author @skip(if: true) { nickname } } } }", {}, False),
    ("{ posts { nodes { id author @include(if: false) { nickname } } } }", {}, False),
    ("{ posts { nodes { author @include(if: true) @skip(if: false) { userId } } } }", {}, True),
    (
        "query ($s: Boolean!) { posts { nodes { author @skip(if: $s) { userId } } } }",
        {"s": True},
        False,
    ),
    (
        "query ($s: Boolean!) { posts { nodes { author @skip(if: $s) { userId } } } }",
        {"s": False},
        True,
    ),
    (
        "query ($i: Boolean!) { posts { ... @include(if: $i) { nodes { author { userId } } } } }",
        {"i": False},
        False,
    ),
    (
        "query ($i: Boolean!) { posts { ...F @include(if: $i) } } "
        "fragment F on PostConnection { nodes { author { userId } } }",
        {"i": True},
        True,
    ),
]


@pytest.mark.parametrize(("document", "variables", "expected"), CASES)
def test_a_field_is_selected_where_graphql_core_would_collect_it(
    document: str, variables: dict[str, Any], expected: bool
) -> None:
    parsed = parse(document)
    operation = next(d for d in parsed.definitions if isinstance(d, OperationDefinitionNode))
    fragments = {
        d.name.value: d for d in parsed.definitions if isinstance(d, FragmentDefinitionNode)
    }
    page = next(
        s
        for s in operation.selection_set.selections
        if isinstance(s, FieldNode) and s.name.value == "posts"
    )
    assert _selects([page], "author", fragments, variables) is expected
