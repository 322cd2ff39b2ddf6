"""The static cost estimate (``execution/cost.py``): a field costs 1, a page multiplies
what it selects by its size (the default, a literal or a variable; anything else at the
largest page), imageUrls costs what signing its URLs may cost, fragments count once per
spread; and the root fields a mutation asks for, counted."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import parse

from gql_api.domain.validation import LIMITS
from gql_api.execution.cost import SIGNED_URL_COST, estimate_cost, root_field_count


def cost(query: str, variables: dict[str, Any] | None = None, name: str | None = None) -> int:
    return estimate_cost(parse(query), name, variables)


def test_a_field_costs_one_and_a_page_multiplies_what_it_selects() -> None:
    assert cost("{ limits { maxTags } }") == 2
    # posts (1) + 10 x (nodes (1) + id (1))
    assert cost("{ posts(first: 10) { nodes { id } } }") == 21
    assert cost("{ posts { nodes { id } } }") == 1 + LIMITS.default_page_size * 2


@pytest.mark.parametrize(
    ("first", "variables", "size"),
    [
        ("$n", {"n": 7}, 7),
        ("$n", {}, LIMITS.default_page_size),  # unset: the page the server answers
        ("$n", {"n": 10**30}, LIMITS.max_page_size),  # refused later, costed high now
        ("-5", None, LIMITS.max_page_size),
        ("9" * 5000, None, LIMITS.max_page_size),  # no int() of 5,000 digits
        ('"ten"', None, LIMITS.max_page_size),
    ],
)
def test_a_page_size_from_anything(first: str, variables: Any, size: int) -> None:
    query = f"query ($n: Int) {{ posts(first: {first}) {{ nodes {{ id }} }} }}"
    assert cost(query, variables) == 1 + size * 2


def test_a_variable_default_counts_when_the_variable_is_not_sent() -> None:
    query = "query ($n: Int = 3) { posts(first: $n) { nodes { id } } }"
    assert cost(query) == 7
    assert cost(query, {"n": 5}) == 11


def test_image_urls_cost_their_signatures() -> None:
    per_post = SIGNED_URL_COST * LIMITS.max_images_per_post
    assert cost("{ posts(first: 2) { nodes { imageUrls } } }") == 1 + 2 * (1 + per_post)


def test_fragments_count_once_per_spread_and_cycles_end() -> None:
    spread = "{ posts(first: 2) { nodes { ...F ...F } } } fragment F on Post { id tags }"
    # nodes (1) + two spreads of 2 fields each
    assert cost(spread) == 1 + 2 * (1 + 2 + 2)
    cyclic = "{ posts(first: 1) { nodes { ...A } } } fragment A on Post { id ...A }"
    assert cost(cyclic) == 1 + 1 * (1 + 1)


def test_the_named_operation_is_the_one_costed() -> None:
    query = "query Small { limits { maxTags } } query Big { posts(first: 50) { nodes { id } } }"
    assert cost(query, name="Small") == 2
    assert cost(query, name="Big") == 101
    assert cost(query, name="Missing") == 0


def test_root_fields_are_counted_through_aliases_and_fragments() -> None:
    document = parse(
        """mutation M { a: deletePost(id: "1") { id } b: deletePost(id: "2") { id }
             ...More ... on Mutation { c: deletePost(id: "3") { id } } }
           fragment More on Mutation { d: deletePost(id: "4") { id } ...More }"""
    )
    assert root_field_count(document, "M") == 4
    assert root_field_count(document, "Other") == 0
