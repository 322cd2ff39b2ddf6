"""A shorter path through graphql-core's executor for plain leaf fields.

Most fields of a page are plain attributes holding a scalar or a list of scalars
(``id``, ``content``, ``tags``, ``createdAt``...). graphql-core treats each one like any
field: it builds a ``GraphQLResolveInfo``, calls the resolver, then walks
``complete_value`` through the non-null and list wrappers to the scalar. For such a
field none of that can change the answer, so ``FastExecutionContext`` reads the
attribute and coerces the value itself.

Only the successful case takes the short path. Anything unusual (a null where the
schema says non-null, a value the scalar refuses, anything raising) falls back to
graphql-core's own ``execute_field``, which reads the attribute again (a plain read,
without side effects) and reports the error exactly as it always does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, cast

import strawberry
from graphql import (
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    is_leaf_type,
)
from graphql.pyutils import Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.field import StrawberryField

from gql_api.resolvers.fields import DIRECT_RESOLVER


class _Fallback(Exception):
    """The short path cannot answer: graphql-core's own path will."""


@dataclass(frozen=True, slots=True)
class LeafPlan:
    read: Callable[[object], Any]
    leaf: GraphQLLeafType
    non_null: bool  # the field's value may not be null
    is_list: bool  # a list of leaves, each non-null
    list_non_null: bool = False

    def complete(self, source: object) -> Any:
        return self.complete_value(self.read(source))

    def complete_value(self, value: Any) -> Any:
        """The value read, completed; ``_Fallback`` for anything graphql-core must say."""
        if value is None:
            if self.non_null:
                raise _Fallback
            return None
        coerce = self.leaf.coerce_output_value
        if not self.is_list:
            coerced = coerce(value)
            if coerced is None or coerced is Undefined:
                raise _Fallback
            return coerced
        if isinstance(value, str | bytes | Mapping):
            raise _Fallback
        completed = []
        for item in value:
            coerced = None if item is None else coerce(item)
            if coerced is None or coerced is Undefined:
                raise _Fallback
            completed.append(coerced)
        return completed


class PlainRead:
    """The resolver of a field whose resolver only reads its parent: ``read(parent)``,
    with the short path of its scalar (``leaf``) when it answers one. Compiled plans find
    both on the field itself, so they hold for this schema's field only."""

    __slots__ = ("leaf", "read")

    def __init__(self, read: Callable[[object], Any], leaf: LeafPlan | None) -> None:
        self.read = read
        self.leaf = leaf

    def __call__(self, source: object, info: object, **arguments: object) -> object:
        return self.read(source)


def leaf_plan(read: Callable[[object], Any], field_type: GraphQLOutputType) -> LeafPlan | None:
    """The plan for a field answered by ``read(parent)`` with this type, or None if it is
    not a leaf of a supported shape: ``T``, ``T!``, ``[T!]`` or ``[T!]!``, ``T`` a scalar
    or an enum."""
    non_null = isinstance(field_type, GraphQLNonNull)
    inner = field_type.of_type if isinstance(field_type, GraphQLNonNull) else field_type
    if is_leaf_type(inner):
        return LeafPlan(read, inner, non_null, is_list=False)
    if isinstance(inner, GraphQLList) and isinstance(inner.of_type, GraphQLNonNull):
        item = inner.of_type.of_type
        if is_leaf_type(item):
            return LeafPlan(read, item, non_null, is_list=True)
    return None


# (object type name, field name) -> plan; filled once when the schema is built.
PLANS: dict[tuple[str, str], LeafPlan] = {}


def register(
    schema: GraphQLSchema,
    object_type: GraphQLObjectType,
    field: str,
    read: Callable[[object], Any],
) -> LeafPlan | None:
    """Answer ``object_type.field`` by the short path: ``read(parent)`` must be all its
    resolver does (a plain read, without side effects). Its plan, None when the field
    answers no scalar."""
    assert schema.type_map.get(object_type.name) is object_type
    plan = leaf_plan(read, object_type.fields[field].type)
    if plan is not None:
        PLANS[(object_type.name, field)] = plan
    return plan


# What a leaf adds to the JSON beyond its value: its key, quotes, colon and comma.
LEAF_OVERHEAD = 16


class ResponseBudget:
    """The bytes a response may hold, spent as its leaves are completed. Once spent, no
    field resolves any more (the executor answers RESPONSE_TOO_LARGE instead)."""

    __slots__ = ("exceeded", "left", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit
        self.exceeded = False

    def spend(self, value: Any) -> None:
        self.charge(leaf_bytes(value))

    def charge(self, size: int) -> None:
        """Spend ``size`` bytes at once: what several leaves of an object added up to."""
        self.left -= size
        if self.left < 0:
            self.exceeded = True


def leaf_bytes(value: Any) -> int:
    """What a completed leaf (or list of leaves) spends of the budget."""
    if type(value) is str and value.isascii():  # most leaves: no call for their size
        return LEAF_OVERHEAD + 2 + len(value)
    return LEAF_OVERHEAD + _json_size(value)


def _json_size(value: Any) -> int:
    """At least the bytes ``value`` takes in the response's JSON (a leaf, or a list of
    them); non-ASCII text at 4 bytes a character, which no encoding exceeds."""
    if type(value) is str:
        return len(value) + 2 if value.isascii() else 4 * len(value) + 2
    if isinstance(value, list):
        size = 2
        for item in value:
            size += len(item) + 3 if type(item) is str and item.isascii() else _json_size(item) + 1
        return size
    return 8


class FastExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def execute_field(  # type: ignore[no-untyped-def]
        self, parent_type, source, field_details_list, path, position_context
    ):
        budget = self._budget()
        if budget is not None and budget.exceeded:
            return None  # the response is dropped whole: resolve nothing more for it
        plan = PLANS.get((parent_type.name, field_details_list[0].node.name.value))
        if plan is not None and self.middleware_manager is None:
            try:
                value = plan.complete(source)
            except Exception:  # noqa: BLE001, S110 - graphql-core's path reports it
                pass
            else:
                if budget is not None:
                    budget.spend(value)
                return value
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )

    def complete_leaf_value(self, return_type: GraphQLLeafType, result: Any) -> Any:  # type: ignore[override]
        """graphql-core's own, counted against the response's budget."""
        value = super().complete_leaf_value(return_type, result)
        budget = self._budget()
        if budget is not None:
            budget.spend(value)
        return value

    def _budget(self) -> ResponseBudget | None:
        """The response's budget, looked up once per execution."""
        try:
            return self._response_budget
        except AttributeError:
            budget = getattr(self.context_value, "response_budget", None)
            self._response_budget: ResponseBudget | None = budget
            return budget


# Schemas whose plain fields are wired for the short path already.
_PREPARED: list[strawberry.Schema] = []


def prepare(built: strawberry.Schema) -> None:
    """Resolve plain fields with a bare call: attribute fields (no resolver) and fields
    whose resolver takes only the parent object (no argument, no info, not async), none
    with an extension or a permission. Strawberry's generic field wrapper builds an Info
    and an argument dict per field; for the ~150 plain fields of a page that work
    dominates the request, and buys nothing where there is nothing to pass. Those
    answering scalars also skip graphql-core's per-field work (``register``). Done
    once per schema, by the executor that runs it."""
    if built in _PREPARED:
        return
    _PREPARED.append(built)
    for graphql_type in built._schema.type_map.values():
        if graphql_type.name.startswith("__") or not isinstance(graphql_type, GraphQLObjectType):
            continue
        for field_name, field in graphql_type.fields.items():
            definition = (field.extensions or {}).get("strawberry-definition")
            if definition is None or definition.extensions or definition.permission_classes:
                continue
            direct = definition.metadata.get(DIRECT_RESOLVER)
            if direct is not None:
                # It reads only info.context, which graphql-core's own info carries too.
                field.resolve = direct
                continue
            read = _reader(definition)
            if read is None:
                continue
            plan = register(built._schema, graphql_type, field_name, read)
            field.resolve = PlainRead(read, plan)


def _reader(definition: StrawberryField) -> Callable[[object], object] | None:
    resolver = definition.base_resolver
    if resolver is None:
        return attrgetter(definition.python_name)
    parameters = list(resolver.signature.parameters.values())
    takes_only_parent = len(parameters) == 1 and parameters[0] in (
        resolver.self_parameter,
        resolver.root_parameter,
        resolver.parent_parameter,
    )
    if takes_only_parent and not resolver.is_async:
        return cast(Callable[[object], object], resolver.wrapped_func)
    return None
