"""Limits on what one GraphQL document may ask for, each refused with its own code.

Tokens are counted while parsing; depth, aliases and directives by validation rules
(so a refused document is cached like any invalid one and never executed); the cost
(``gql_api.cost``) once the variables are known.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    ASTValidationRule,
    DirectiveNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
)


@dataclass(frozen=True, slots=True)
class QueryLimits:
    max_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 10_000
    max_directives: int = 20
    max_cost: int = 20_000
    introspection: bool = True


def limit_rules(limits: QueryLimits) -> list[type[ASTValidationRule]]:
    """Validation rules enforcing ``limits`` (classes, as graphql-core wants them)."""

    class DepthLimit(ASTValidationRule):
        def enter_document(self, node: DocumentNode, *_: Any) -> None:
            fragments = {
                d.name.value: d for d in node.definitions if isinstance(d, FragmentDefinitionNode)
            }
            memo: dict[str, int] = {}
            for definition in node.definitions:
                if isinstance(definition, OperationDefinitionNode):
                    depth = _depth(definition.selection_set, fragments, memo, frozenset())
                    if depth > limits.max_depth:
                        self.report_error(
                            _error(
                                f"the query is {depth} levels deep, at most {limits.max_depth}",
                                "QUERY_TOO_DEEP",
                                definition,
                            )
                        )

    class AliasLimit(ASTValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self.count = 0

        def enter_field(self, node: FieldNode, *_: Any) -> None:
            if node.alias is not None:
                self.count += 1
                if self.count == limits.max_aliases + 1:
                    self.report_error(
                        _error(
                            f"the document uses more than {limits.max_aliases} aliases",
                            "TOO_MANY_ALIASES",
                            node,
                        )
                    )

    class DirectiveLimit(ASTValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self.count = 0

        def enter_directive(self, node: DirectiveNode, *_: Any) -> None:
            self.count += 1
            if self.count == limits.max_directives + 1:
                self.report_error(
                    _error(
                        f"the document uses more than {limits.max_directives} directives",
                        "TOO_MANY_DIRECTIVES",
                        node,
                    )
                )

    rules: list[type[ASTValidationRule]] = [DepthLimit, AliasLimit, DirectiveLimit]
    if not limits.introspection:
        from graphql.validation import NoSchemaIntrospectionCustomRule

        rules.append(NoSchemaIntrospectionCustomRule)
    return rules


def _error(message: str, code: str, node: Any) -> GraphQLError:
    return GraphQLError(message, node, extensions={"code": code})


def _depth(
    selection_set: SelectionSetNode | None,
    fragments: dict[str, FragmentDefinitionNode],
    memo: dict[str, int],
    seen: frozenset[str],
) -> int:
    """The deepest field path; each fragment is measured once (``memo``), so fragments
    that spread each other twice cannot make this exponential."""
    if selection_set is None:
        return 0
    deepest = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            if selection.name.value.startswith("__"):
                continue  # introspection is as deep as the schema, and bounded by it
            below = _depth(selection.selection_set, fragments, memo, seen)
            deepest = max(deepest, 1 + below)
        elif isinstance(selection, InlineFragmentNode):
            deepest = max(deepest, _depth(selection.selection_set, fragments, memo, seen))
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name not in memo and name in fragments and name not in seen:  # no cycles
                fragment = fragments[name]
                memo[name] = _depth(fragment.selection_set, fragments, memo, seen | {name})
            deepest = max(deepest, memo.get(name, 0))
    return deepest
