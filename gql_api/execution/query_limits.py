"""Limits on what one GraphQL document may ask for, each refused with its own code.

Tokens are counted while parsing; the validation work before validating
(``validation_work``); depth, aliases and directives by validation rules (so a refused
document is cached like any invalid one and never executed); the cost (``gql_api.execution.cost``)
once the variables are known.
"""

from __future__ import annotations

from collections import Counter
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
    max_validation_work: int = 10_000
    max_response_bytes: int = 4 * 1024 * 1024
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


def validation_work(document: DocumentNode) -> int:
    """What validating ``document`` costs where its cost grows fastest: the rule that
    fields answering to one name can merge compares every pair of them, so each selection
    set adds the square of the number of fields sharing each response name (counting
    those its inline fragments and fragment spreads bring). Linear in the document."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    memo: dict[str, Counter[str]] = {}

    def names(selection_set: SelectionSetNode, seen: frozenset[str]) -> Counter[str]:
        counted: Counter[str] = Counter()
        spread: set[str] = set()  # the rule compares a fragment spread twice only once
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                counted[(selection.alias or selection.name).value] += 1
            elif isinstance(selection, InlineFragmentNode):
                counted.update(names(selection.selection_set, seen))
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name in fragments and name not in seen and name not in spread:
                    spread.add(name)
                    if name not in memo:
                        memo[name] = names(fragments[name].selection_set, seen | {name})
                    counted.update(memo[name])
        return counted

    work = 0
    stack: list[Any] = list(document.definitions)
    while stack:
        node = stack.pop()
        selection_set = getattr(node, "selection_set", None)
        if selection_set is None:
            continue
        work += sum(n * n for n in names(selection_set, frozenset()).values())
        stack.extend(selection_set.selections)
    return work


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
