"""A static estimate of what an operation asks for, to refuse amplifying queries.

Each field selected costs 1, but ``imageUrls``, which may sign a URL per image key
(``SIGNED_URL_COST`` each, for the most keys a post may have); a page field (``posts``)
multiplies what is selected under it by its page size (``first``, 20 when absent). So
``posts(first: 100) { nodes { id } }`` costs 1 + 100 * 2, and 700 aliased copies of it
cost 140,700.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
)
from graphql.utilities import value_from_ast_untyped

from gql_api.domain.validation import LIMITS

# Fields that return a page, sized by their ``first`` argument (null or absent: 20).
PAGED_FIELDS = frozenset({"posts"})
# A signed URL costs about what 25 plain fields do (an HMAC, or an IAM call on Cloud Run).
SIGNED_URL_COST = 25
FIELD_COSTS = {"imageUrls": SIGNED_URL_COST * LIMITS.max_images_per_post}


def estimate_cost(
    document: DocumentNode, operation_name: str | None, variables: Mapping[str, Any] | None
) -> int:
    fragments: dict[str, FragmentDefinitionNode] = {}
    operation: OperationDefinitionNode | None = None
    for definition in document.definitions:
        if isinstance(definition, FragmentDefinitionNode):
            fragments[definition.name.value] = definition
        elif isinstance(definition, OperationDefinitionNode) and (
            operation_name is None or (definition.name and definition.name.value == operation_name)
        ):
            operation = definition
    if operation is None:
        return 0
    values = {
        definition.variable.name.value: value_from_ast_untyped(definition.default_value)
        for definition in operation.variable_definitions or ()
        if definition.default_value is not None
    }
    values.update(variables or {})
    try:
        return _selection_cost(operation.selection_set, fragments, values, {}, frozenset())
    except RecursionError:  # fragments nested past the stack (validation aborts them too)
        return sys.maxsize


def root_field_count(document: DocumentNode, operation_name: str | None) -> int:
    """The operation's root fields, aliases and fragments included: for a mutation, the
    writes it asks for."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    operation = next(
        (
            d
            for d in document.definitions
            if isinstance(d, OperationDefinitionNode)
            and (operation_name is None or (d.name is not None and d.name.value == operation_name))
        ),
        None,
    )
    if operation is None:
        return 0
    count, pending, seen = 0, [operation.selection_set], set()
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode):
                count += 1
            elif isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name in fragments and name not in seen:
                    seen.add(name)
                    pending.append(fragments[name].selection_set)
    return count


def _selection_cost(
    selection_set: SelectionSetNode | None,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
    memo: dict[str, int],
    seen: frozenset[str],
) -> int:
    """Each fragment is costed once (``memo``): fragments spreading each other twice
    cannot make this exponential."""
    if selection_set is None:
        return 0
    total = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            inner = _selection_cost(selection.selection_set, fragments, variables, memo, seen)
            own = FIELD_COSTS.get(selection.name.value, 1)
            total += own + _page_size(selection, variables) * inner
        elif isinstance(selection, InlineFragmentNode):
            total += _selection_cost(selection.selection_set, fragments, variables, memo, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name not in memo and name in fragments and name not in seen:  # no cycles
                memo[name] = _selection_cost(
                    fragments[name].selection_set, fragments, variables, memo, seen | {name}
                )
            total += memo.get(name, 0)
    return total


def _page_size(field: FieldNode, variables: Mapping[str, Any]) -> int:
    if field.name.value not in PAGED_FIELDS:
        return 1
    value: Any = None
    for argument in field.arguments or ():
        if argument.name.value == "first":
            if isinstance(argument.value, IntValueNode):
                # int() refuses over 4,300 digits (ValueError); 20 digits are past any page.
                digits = argument.value.value
                value = int(digits) if len(digits) <= 20 else argument.value
            elif isinstance(argument.value, VariableNode):
                value = variables.get(argument.value.name.value)
            else:
                value = argument.value  # not an int: refused when executed, costed high now
    if value is None:
        return LIMITS.default_page_size
    if isinstance(value, int) and 1 <= value <= LIMITS.max_page_size:
        return value
    return LIMITS.max_page_size
