"""Running a compiled plan (``execution/compiled.py``) for one request.

Each method is the graphql-core step it stands for (named in its docstring), taken in
the same order with the same awaits, so concurrent fields interleave as they would on
graphql-core: one awaitable is awaited directly, several side by side with
``gather_with_cancel``; a bubbling error settles its siblings in the background.
Errors are located, recorded and propagated by the request's graphql-core executor.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterator
from copy import deepcopy
from typing import Any, cast

from graphql import ExecutionResult, GraphQLError, GraphQLOutputType
from graphql.execution.executor import Executor as GraphQLExecutor
from graphql.execution.values import get_argument_values
from graphql.pyutils import Path
from graphql.pyutils.gather_with_cancel import gather_with_cancel

from gql_api.execution.compiled import Complete, FieldPlan, ObjectPlan, Plan, Site
from gql_api.execution.fast_fields import LEAF_OVERHEAD, ResponseBudget, leaf_bytes

# Types no value of which is awaitable (under any is_awaitable graphql-core is given):
# checked inline, before the call, for the values most fields answer.
PLAIN: frozenset[type] = frozenset({type(None), bool, int, float, str, list, tuple, dict})


class _ContextOnly:
    """The info of a direct resolver: it reads only the context."""

    __slots__ = ("context",)

    def __init__(self, context: Any) -> None:
        self.context = context


class Run:
    """One execution of a plan, for one request, on that request's graphql-core executor
    (its errors, its background work, its infos where a resolver needs one)."""

    __slots__ = ("budget", "context_info", "executor", "is_awaitable")

    def __init__(self, executor: GraphQLExecutor[Any], budget: ResponseBudget | None) -> None:
        self.executor = executor
        self.budget = budget
        self.is_awaitable = executor.is_awaitable
        self.context_info = _ContextOnly(executor.context_value)

    def object(self, plan: ObjectPlan, source: Any, path: Path | None) -> Any:
        """graphql-core's ``execute_fields``."""
        results: dict[str, Any] = {}
        awaiting: list[str] = []
        is_awaitable = self.is_awaitable
        budget = self.budget
        spent = 0  # what this object's plain leaves spent, charged before any other field
        type_name = plan.type.name
        try:
            for field in plan.fields:
                fast = field.fast
                if fast is not None and (budget is None or not budget.exceeded):
                    # Most fields: a plain read of a scalar, which cannot be awaitable.
                    try:
                        value = fast(source)
                    except Exception:  # noqa: BLE001, S110 - completed below, errors and all
                        pass
                    else:
                        if budget is not None:
                            spent += (
                                LEAF_OVERHEAD + 2 + len(value)
                                if type(value) is str and value.isascii()
                                else leaf_bytes(value)
                            )
                        results[field.key] = value
                        continue
                if spent:
                    budget.charge(spent)  # type: ignore[union-attr]  # spent: a budget is set
                    spent = 0
                result = self.field(field, source, Path(path, field.key, type_name), False)
                results[field.key] = result
                if type(result) not in PLAIN and is_awaitable(result):
                    awaiting.append(field.key)
            if spent:
                budget.charge(spent)  # type: ignore[union-attr]
        except Exception:
            if spent:  # a nulled object's leaves count, as on graphql-core
                budget.charge(spent)  # type: ignore[union-attr]
            if awaiting:  # their own errors still count: settle them
                self.executor.settle_in_background([results[key] for key in awaiting])
            raise
        if not awaiting:
            return results
        return self._settled(results, awaiting)

    async def _settled(self, results: Any, awaiting: list[Any]) -> Any:
        """The awaitables at ``awaiting`` (keys of an object, indexes of a list) replaced by
        their values: one awaited directly, several side by side, as graphql-core does."""
        if len(awaiting) == 1:
            place = awaiting[0]
            results[place] = await results[place]
        else:
            values = await gather_with_cancel(*(results[place] for place in awaiting))
            for place, value in zip(awaiting, values, strict=True):
                results[place] = value
        return results

    def serially(self, plan: ObjectPlan, source: Any) -> Any:
        """graphql-core's ``execute_fields_serially``: each root field once the one before
        it has ended."""
        results: dict[str, Any] = {}
        fields = iter(plan.fields)
        for field in fields:
            result = self.field(field, source, Path(None, field.key, plan.type.name))
            if self.is_awaitable(result):
                return self._serially_after(plan, source, results, field.key, result, fields)
            results[field.key] = result
        return results

    async def _serially_after(
        self,
        plan: ObjectPlan,
        source: Any,
        results: dict[str, Any],
        key: str,
        pending: Awaitable[Any],
        rest: Iterator[FieldPlan],
    ) -> Any:
        results[key] = await pending
        for field in rest:
            result = self.field(field, source, Path(None, field.key, plan.type.name))
            results[field.key] = await result if self.is_awaitable(result) else result
        return results

    def field(self, field: FieldPlan, source: Any, path: Path, as_leaf: bool = True) -> Any:
        """graphql-core's ``execute_field`` (``as_leaf``: a plain scalar field is first read
        and coerced in one call; False when that was tried already)."""
        budget = self.budget
        if budget is not None and budget.exceeded:
            return None  # the response is dropped whole: resolve nothing more for it
        if field.typename is not None:
            if budget is not None:
                budget.spend(field.typename)
            return field.typename
        leaf = field.leaf
        if leaf is not None and as_leaf:
            try:
                value = leaf.complete(source)
            except Exception:  # noqa: BLE001, S110 - completed below, errors and all
                pass
            else:
                if budget is not None:
                    budget.spend(value)
                return value
        try:
            if field.direct is not None:
                result = field.direct(source, self.context_info)
            elif field.read is not None:
                result = field.read(source)  # all its resolver does
            else:
                result = self._resolved(field, source, path)
            if type(result) not in PLAIN and self.is_awaitable(result):
                return self._awaited(field.complete, field.field.type, field.site, result, path)
            completed = field.complete(self, result, path)
            if type(completed) not in PLAIN and self.is_awaitable(completed):
                return self._completed(field.field.type, field.site, completed, path)
            return completed
        except Exception as error:  # noqa: BLE001 - located as graphql-core does
            self.executor.handle_field_error(error, field.field.type, field.site.details, path)
            return None

    def _resolved(self, field: FieldPlan, source: Any, path: Path) -> Any:
        executor = self.executor
        site = field.site
        # Its own list and arguments, as graphql-core gives each call: a resolver may
        # change them, and the plan serves every request.
        info = executor.build_resolve_info(site.field, list(site.nodes), site.parent, path)
        arguments = field.arguments
        if arguments is not None and field.copied:
            arguments = deepcopy(arguments)
        elif arguments is None:
            arguments = get_argument_values(
                field.field,
                site.nodes[0],
                executor.variable_values,
                None,
                executor.hide_suggestions,
            )
        return field.resolve(source, info, **arguments)

    def items(
        self,
        complete: Complete,
        item_type: GraphQLOutputType,
        site: Site,
        values: Iterator[Any],
        path: Path,
    ) -> Any:
        """graphql-core's ``complete_iterable_value``."""
        completed: list[Any] = []
        awaiting: list[int] = []
        is_awaitable = self.is_awaitable
        handle = self.executor.handle_field_error
        try:
            for index, value in enumerate(values):
                item_path = path.add_key(index, None)
                if is_awaitable(value):
                    completed.append(self._awaited(complete, item_type, site, value, item_path))
                    awaiting.append(index)
                    continue
                try:
                    one = complete(self, value, item_path)
                    if type(one) not in PLAIN and is_awaitable(one):
                        completed.append(self._completed(item_type, site, one, item_path))
                        awaiting.append(index)
                    else:
                        completed.append(one)
                except Exception as error:  # noqa: BLE001 - located as graphql-core does
                    handle(error, item_type, site.details, item_path)
                    completed.append(None)
        except Exception:
            pending = [completed[index] for index in awaiting]
            pending.extend(value for value in values if is_awaitable(value))
            if pending:
                self.executor.settle_in_background(pending)
            raise
        if not awaiting:
            return completed
        return self._settled(completed, awaiting)

    async def _awaited(
        self, complete: Complete, kind: GraphQLOutputType, site: Site, value: Any, path: Path
    ) -> Any:
        """graphql-core's ``complete_awaitable_value`` (of a field's value, or of a list's
        item: ``kind`` is the type the error is located against)."""
        try:
            resolved = await value
            completed = complete(self, resolved, path)
            if self.is_awaitable(completed):
                completed = await completed
        except Exception as error:  # noqa: BLE001 - located as graphql-core does
            self.executor.handle_field_error(error, kind, site.details, path)
            return None
        return completed

    async def _completed(
        self, kind: GraphQLOutputType, site: Site, completion: Awaitable[Any], path: Path
    ) -> Any:
        """A completion that awaits (an object's fields, a list's items), its error located
        at ``path`` as graphql-core's ``await_completed`` does."""
        try:
            return await completion
        except Exception as error:  # noqa: BLE001 - located as graphql-core does
            self.executor.handle_field_error(error, kind, site.details, path)
            return None

    def core_completion(self, kind: GraphQLOutputType, site: Site, path: Path, value: Any) -> Any:
        """graphql-core completes this value itself (and raises its own errors)."""
        executor = self.executor
        info = executor.build_resolve_info(site.field, site.nodes, site.parent, path)
        return executor.complete_value(kind, site.details, info, path, value, None)


def run_plan(
    plan: Plan, executor: GraphQLExecutor[Any], budget: ResponseBudget | None
) -> ExecutionResult | Awaitable[ExecutionResult]:
    """graphql-core's ``execute_operation``, by the plan."""
    run = Run(executor, budget)
    source = executor.root_value
    try:
        if plan.serial:
            data = run.serially(plan.root, source)
        else:
            data = run.object(plan.root, source, None)
    except GraphQLError as error:  # a non-null root field failed: no data at all
        executor.collected_errors.add(error, None)
        return _response(executor, None)
    if not run.is_awaitable(data):
        return _response(executor, data)

    async def settled() -> ExecutionResult:
        try:
            awaited = await data
        except GraphQLError as error:
            executor.collected_errors.add(error, None)
            return _response(executor, None)
        return _response(executor, awaited)

    return settled()


def _response(executor: GraphQLExecutor[Any], data: dict[str, Any] | None) -> ExecutionResult:
    # Without @defer or @stream, graphql-core's executor builds a single result.
    return cast(ExecutionResult, executor.build_response(data))
