"""Compiled operations: each validated operation becomes a plan once, which then resolves
and completes its fields without graphql-core's per-field path.

A plan is the operation's selections as graphql-core collects them (fragments merged,
literal ``@skip``/``@include`` applied), per object type. Each field knows, as closures
built once, how it is read (a plain field's ``LeafPlan``, a direct resolver, or its
resolver with a full info) and completed (non-null, list, scalar, object,
``__typename``), and its literal arguments are coerced once.

Errors take graphql-core's own steps, in the same order: a failing field is located by
the request's graphql-core executor (``handle_field_error``), which records it or lets
it null the nearest nullable parent; siblings are awaited side by side and cancelled as
``gather_with_cancel`` does; anything unusual (a value that is not a list, a scalar
that refuses a value) is completed by graphql-core itself, which raises its own error.
So a plan's response is graphql-core's, byte for byte (tests/execution/test_compiled.py
proves it on thousands of random operations).

Not compiled, and run on graphql-core instead (logged once at debug level): a
``@skip``/``@include`` on a variable (the selection would depend on the request),
fragment variables, ``@defer``/``@stream``, subscriptions, abstract types (none in this
schema), field middleware, and selections nested past Python's stack.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graphql import (
    DirectiveNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLBoolean,
    GraphQLField,
    GraphQLID,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLString,
    OperationType,
    VariableNode,
    visit,
)
from graphql.execution.collect_fields import FieldDetails, collect_fields, collect_subfields
from graphql.execution.executor import Executor as GraphQLExecutor
from graphql.execution.values import get_argument_values
from graphql.language import Visitor
from graphql.pyutils import Path, Undefined

from gql_api.execution.fast_fields import LeafPlan, PlainRead
from gql_api.resolvers.fields import DIRECT_RESOLVER

if TYPE_CHECKING:
    from gql_api.execution.plan_run import Run

# (the run, the resolved value, its path) -> the completed value, or an awaitable of it
Complete = Callable[["Run", Any, Path], Any]


class Unsupported(Exception):
    """The operation cannot be compiled: graphql-core runs it."""


@dataclass(frozen=True, slots=True)
class Site:
    """Where a field is selected: what graphql-core's errors and infos name."""

    field: GraphQLField
    parent: GraphQLObjectType
    details: list[FieldDetails]
    nodes: list[FieldNode]


@dataclass(slots=True)
class FieldPlan:
    key: str  # the response key (the alias, or the name)
    site: Site
    field: GraphQLField
    leaf: LeafPlan | None  # a plain field: read and coerced in one call
    fast: Callable[[Any], Any] | None  # the leaf's read and coercion, specialized
    read: Callable[[Any], Any] | None  # a plain field of any type: all its resolver does
    direct: Callable[..., Any] | None  # a resolver that needs only info.context
    resolve: Callable[..., Any]
    arguments: dict[str, Any] | None  # None: the arguments name variables
    copied: bool  # the literal arguments hold lists or objects: each call gets its own
    complete: Complete
    typename: str | None = None  # for __typename: the parent type's name


@dataclass(slots=True)
class ObjectPlan:
    type: GraphQLObjectType
    fields: list[FieldPlan]


@dataclass(slots=True)
class Plan:
    root: ObjectPlan
    serial: bool  # a mutation's root fields run one after another
    fields: int  # how many field plans in all: what the cache charges for it


def compile_plan(executor: GraphQLExecutor[Any]) -> Plan:
    """The plan of ``executor``'s operation (graphql-core's executor, built for the
    request); ``Unsupported`` when graphql-core must run it."""
    operation = executor.operation
    if operation.operation is OperationType.SUBSCRIPTION:
        raise Unsupported("a subscription")
    if executor.middleware_manager is not None:  # it wraps each resolver: graphql-core's
        raise Unsupported("field middleware")
    _check_document(executor)
    root_type = executor.schema.get_root_type(operation.operation)
    if root_type is None:  # graphql-core says so in its own words
        raise Unsupported(f"no {operation.operation.value} type")
    collected = collect_fields(
        executor.schema, executor.fragments, executor.variable_values, root_type, operation
    )
    if collected.new_defer_usages:
        raise Unsupported("@defer")
    builder = _Builder(executor)
    try:
        root = builder.object_plan(root_type, collected.grouped_field_set)
    except RecursionError:  # selections nested past the stack: graphql-core says so
        raise Unsupported("selections nested too deeply") from None
    serial = operation.operation is OperationType.MUTATION
    return Plan(root=root, serial=serial, fields=builder.fields)


def _check_document(executor: GraphQLExecutor[Any]) -> None:
    unsupported: list[str] = []

    class Check(Visitor):
        def enter_directive(self, node: DirectiveNode, *_: Any) -> None:
            if node.name.value in ("defer", "stream"):
                unsupported.append(f"@{node.name.value}")
            if any(isinstance(a.value, VariableNode) for a in node.arguments or ()):
                unsupported.append(f"@{node.name.value} on a variable")

        def enter_fragment_definition(self, node: FragmentDefinitionNode, *_: Any) -> None:
            if node.variable_definitions:
                unsupported.append("fragment variables")

    document = DocumentNode(
        definitions=(executor.operation, *executor.fragment_definitions.values())
    )
    visit(document, Check())
    if unsupported:
        raise Unsupported(unsupported[0])


class _Builder:
    def __init__(self, executor: GraphQLExecutor[Any]) -> None:
        self.executor = executor
        self.fields = 0

    def object_plan(
        self, parent: GraphQLObjectType, grouped: Mapping[str, list[FieldDetails]]
    ) -> ObjectPlan:
        if parent.is_type_of is not None:
            raise Unsupported(f"{parent.name} checks its values (is_type_of)")
        plans = []
        for key, details in grouped.items():
            if any(d.fragment_variable_values is not None for d in details):
                raise Unsupported("fragment variables")
            nodes = [d.node for d in details]
            name = nodes[0].name.value
            field = self.executor.schema.get_field(parent, name)
            if field is None:  # graphql-core leaves it out of the response
                continue
            self.fields += 1
            definition = (field.extensions or {}).get("strawberry-definition")
            direct = None if definition is None else definition.metadata.get(DIRECT_RESOLVER)
            if field.resolve is not direct:  # not installed (a permission, an extension)
                direct = None
            site = Site(field, parent, details, nodes)
            plain = field.resolve if isinstance(field.resolve, PlainRead) else None
            arguments = self._arguments(field, details[0])
            leaf = None if plain is None else plain.leaf
            plans.append(
                FieldPlan(
                    key=key,
                    site=site,
                    field=field,
                    leaf=leaf,
                    fast=None if leaf is None else _fast_leaf(leaf),
                    read=None if plain is None else plain.read,
                    direct=direct,
                    resolve=field.resolve or self.executor.field_resolver,
                    arguments=arguments,
                    copied=arguments is not None
                    and any(isinstance(value, list | dict) for value in arguments.values()),
                    complete=self.completer(field.type, site),
                    typename=parent.name if name == "__typename" else None,
                )
            )
        return ObjectPlan(type=parent, fields=plans)

    def _arguments(self, field: GraphQLField, details: FieldDetails) -> dict[str, Any] | None:
        node = details.node
        if not field.args and not node.arguments:
            return {}
        if any(_names_variable(argument.value) for argument in node.arguments or ()):
            return None  # coerced per request, from its variables
        try:
            return get_argument_values(field, node, self.executor.variable_values)
        except Exception as error:  # a literal refused at run time: graphql-core says so
            raise Unsupported("an argument graphql-core refuses") from error

    def completer(self, kind: GraphQLOutputType, site: Site) -> Complete:
        if isinstance(kind, GraphQLNonNull):
            inner = self.completer(kind.of_type, site)
            at = f"{site.parent.name}.{site.nodes[0].name.value}"
            message = f"Cannot return null for non-nullable field {at}."

            def non_null(run: Run, value: Any, path: Path) -> Any:
                completed = inner(run, value, path)
                if completed is None:
                    raise TypeError(message)
                return completed

            return non_null
        if isinstance(kind, GraphQLList):
            return _list_completer(kind, self.completer(kind.of_type, site), site)
        if isinstance(kind, GraphQLLeafType):
            return _leaf_completer(kind)
        if isinstance(kind, GraphQLObjectType):
            executor = self.executor
            sub = collect_subfields(
                executor.schema,
                executor.fragments,
                executor.variable_values,
                executor.operation,
                kind,
                site.details,
            )
            if sub.new_defer_usages:
                raise Unsupported("@defer")
            plan = self.object_plan(kind, sub.grouped_field_set)

            def obj(run: Run, value: Any, path: Path) -> Any:
                if isinstance(value, Exception):
                    raise value
                if value is None or value is Undefined:
                    return None
                return run.object(plan, value, path)

            return obj
        raise Unsupported(f"the abstract type {kind}")  # none in this schema


# Scalars whose coercion answers a value of exactly this Python type as it is.
_AS_IS: dict[GraphQLLeafType, type] = {GraphQLString: str, GraphQLID: str, GraphQLBoolean: bool}


def _fast_leaf(plan: LeafPlan) -> Callable[[Any], Any]:
    """``plan.complete``, without the coercion call where the scalar would answer the value
    read as it is (a ``str`` for String and ID, a ``bool`` for Boolean): most leaves."""
    exact = _AS_IS.get(plan.leaf)
    if exact is None:
        return plan.complete
    read, complete = plan.read, plan.complete_value
    if plan.is_list:

        def items(source: Any) -> Any:
            value = read(source)
            if type(value) in (list, tuple) and all(type(one) is exact for one in value):
                return list(value)
            return complete(value)  # checks, coerces, or raises for the slow path

        return items

    def one(source: Any) -> Any:
        value = read(source)
        if type(value) is exact:
            return value
        return complete(value)

    return one


def _leaf_completer(kind: GraphQLLeafType) -> Complete:
    coerce = kind.coerce_output_value

    def leaf(run: Run, value: Any, path: Path) -> Any:
        if isinstance(value, Exception):
            raise value
        if value is None or value is Undefined:
            return None
        try:
            coerced = coerce(value)
        except Exception:  # noqa: BLE001 - graphql-core raises it, in its own words
            coerced = Undefined
        if coerced is None or coerced is Undefined:
            run.executor.complete_leaf_value(kind, value)  # raises graphql-core's error
        if run.budget is not None:
            run.budget.spend(coerced)
        return coerced

    return leaf


def _list_completer(kind: GraphQLList[Any], item: Complete, site: Site) -> Complete:
    item_type = kind.of_type

    def items(run: Run, value: Any, path: Path) -> Any:
        if isinstance(value, Exception):
            raise value
        if value is None or value is Undefined:
            return None
        if type(value) not in (list, tuple):  # async iterables, or no list: graphql-core's
            return run.core_completion(kind, site, path, value)
        return run.items(item, item_type, site, iter(value), path)

    return items


def _names_variable(value: Any) -> bool:
    if isinstance(value, VariableNode):
        return True
    children = getattr(value, "values", None) or getattr(value, "fields", None) or ()
    return any(_names_variable(getattr(child, "value", child)) for child in children)
