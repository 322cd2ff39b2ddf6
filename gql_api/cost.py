"""A static estimate of what an operation asks for, to refuse amplifying queries.

Each field selected costs 1; a page field (``posts``) multiplies what is selected
under it by its page size (``first``, 20 when absent). So ``posts(first: 100) { nodes { id } }``
costs 1 + 100 * 2, and 700 aliased copies of it cost 140,700.
"""

from __future__ import annotations

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

from gql_api.validation import LIMITS

# Fields that return a page, sized by their ``first`` argument (null or absent: 20).
PAGED_FIELDS = frozenset({"posts"})


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
    return _selection_cost(operation.selection_set, fragments, variables or {}, frozenset())


def _selection_cost(
    selection_set: SelectionSetNode | None,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
    seen: frozenset[str],
) -> int:
    if selection_set is None:
        return 0
    total = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            inner = _selection_cost(selection.selection_set, fragments, variables, seen)
            total += 1 + _page_size(selection, variables) * inner
        elif isinstance(selection, InlineFragmentNode):
            total += _selection_cost(selection.selection_set, fragments, variables, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name in fragments and name not in seen:  # validation refuses cycles anyway
                fragment = fragments[name]
                total += _selection_cost(
                    fragment.selection_set, fragments, variables, seen | {name}
                )
    return total


def _page_size(field: FieldNode, variables: Mapping[str, Any]) -> int:
    if field.name.value not in PAGED_FIELDS:
        return 1
    value: Any = None
    for argument in field.arguments or ():
        if argument.name.value == "first":
            if isinstance(argument.value, IntValueNode):
                value = int(argument.value.value)
            elif isinstance(argument.value, VariableNode):
                value = variables.get(argument.value.name.value)
            else:
                value = argument.value  # not an int: refused when executed, costed high now
    if value is None:
        return LIMITS.default_page_size
    if isinstance(value, int) and 1 <= value <= LIMITS.max_page_size:
        return value
    return LIMITS.max_page_size
