"""GraphQL execution: cached parsing and validation, graphql-core execution, error shaping.

Parsing and validating a document depends only on its text and the schema, so both
are done once per distinct query, not once per request. The cache is bounded by the
bytes its documents hold: a parsed document weighs some 50 times its text.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeGuard, cast

import strawberry
from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    Location,
    Node,
    OperationType,
    parse,
    specified_rules,
    validate,
)
from graphql.execution.executor import Executor as GraphQLExecutor
from graphql.utilities import get_operation_ast
from strawberry.execution.is_awaitable import optimized_is_awaitable

from gql_api.caches import ByteBoundedCache, deep_size
from gql_api.errors import ApiError
from gql_api.execution.compiled import Plan, Unsupported, compile_plan
from gql_api.execution.fast_fields import FastExecutionContext, ResponseBudget, prepare
from gql_api.execution.plan_run import run_plan
from gql_api.execution.query_limits import QueryLimits, limit_rules, validation_work

log = logging.getLogger(__name__)
_is_awaitable = cast(Callable[[Any], TypeGuard[Awaitable[Any]]], optimized_is_awaitable)

# Documents up to this size are cached; larger ones (rare, legitimate or not) are not.
CACHEABLE_QUERY_LENGTH = 16 * 1024
CACHE_ENTRIES = 1024
# What the parsed and validated documents may hold in all: hundreds of real queries (a
# 2 KB query parses into some 100 KB), whatever clients send.
CACHE_BYTES = 24 * 1024 * 1024
# What the compiled plans may hold in all, charged per field plan: its closures, lists and
# dataclasses measure 1.5-1.7 KB (tests/execution/test_compiled.py holds the charge to it).
PLAN_BYTES = 8 * 1024 * 1024
PLAN_FIELD_BYTES = 2000

Checked = tuple[DocumentNode | None, list[dict[str, Any]]]


class RequestError(Exception):
    """The request cannot be executed at all: the response carries no ``data``."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors[0]["message"] if errors else "request error")
        self.errors = errors


@dataclass(frozen=True, slots=True)
class Prepared:
    document: DocumentNode
    operation: OperationType | None  # None when the operation cannot be determined
    name: str | None = None  # the operation's name in the document
    query: str = ""  # the document's text: its plans' key


class Executor:
    def __init__(
        self,
        schema: strawberry.Schema,
        limits: QueryLimits | None = None,
        *,
        compile_operations: bool = True,
    ) -> None:
        self.limits = limits or QueryLimits()
        self.compile_operations = compile_operations
        # Per (document, operation name): its plan, or (None,) when graphql-core runs it.
        self.plans: ByteBoundedCache[tuple[str, str | None], tuple[Plan | None]] = ByteBoundedCache(
            PLAN_BYTES, CACHE_ENTRIES
        )
        self.planned_runs = 0  # operations a plan ran (the rest: graphql-core)
        self._rules = [*specified_rules, *limit_rules(self.limits)]
        self._schema = schema._schema
        self._executor_class = FastExecutionContext
        prepare(schema)  # its plain fields wired for the short path
        self.documents: ByteBoundedCache[str, Checked] = ByteBoundedCache(
            CACHE_BYTES, CACHE_ENTRIES
        )

    def prepare(self, query: str, operation_name: str | None) -> Prepared:
        """Parse and validate; raise ``RequestError`` with the GraphQL errors when invalid."""
        document, errors = self._checked(query)
        if errors:
            raise RequestError(errors)
        assert document is not None
        operation = get_operation_ast(document, operation_name)
        if operation is None:
            message = (
                f"no operation named {operation_name!r} in the document"
                if operation_name
                else "the document has several operations: say which with operationName"
            )
            raise RequestError([request_error(message, "BAD_REQUEST")])
        name = operation.name.value if operation.name else None
        return Prepared(document=document, operation=operation.operation, name=name, query=query)

    async def execute(
        self,
        prepared: Prepared,
        *,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        context: Any,
        request_id: str,
    ) -> dict[str, Any]:
        """Run the operation; raise ``RequestError`` when variables cannot be coerced."""
        budget = ResponseBudget(self.limits.max_response_bytes)
        if hasattr(context, "response_budget"):
            context.response_budget = budget
        built = self._built(prepared, variables, operation_name, context)
        outcome: ExecutionResult | Awaitable[ExecutionResult]
        if isinstance(built, list):  # the variables cannot be coerced
            outcome = ExecutionResult(None, built)
        else:
            plan = self._plan(prepared, built)
            if plan is not None:
                self.planned_runs += 1
                outcome = run_plan(plan, built, budget)
            else:
                outcome = built.execute_operation()  # type: ignore[assignment]
        result: ExecutionResult = (
            await outcome if not isinstance(outcome, ExecutionResult) else outcome
        )
        return self._body(result, budget, context, request_id)

    def build(
        self, prepared: Prepared, variables: dict[str, Any] | None, context: Any
    ) -> GraphQLExecutor[Any]:
        """graphql-core's executor of the operation (for a subscription's stream);
        ``RequestError`` when the variables cannot be coerced."""
        built = self._built(prepared, variables, prepared.name, context)
        if isinstance(built, list):
            raise RequestError([_shape(e, "BAD_USER_INPUT") for e in built])
        return built

    def _built(
        self,
        prepared: Prepared,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        context: Any,
    ) -> GraphQLExecutor[Any] | list[GraphQLError]:
        """graphql-core's executor, or the errors of variables that cannot be coerced."""
        return self._executor_class.build(
            self._schema,
            prepared.document,
            None,
            context,
            variables,
            operation_name,
            is_awaitable=_is_awaitable,  # a fast path for plain values
        )

    async def execute_event(
        self, built: GraphQLExecutor[Any], payload: Any, context: Any, request_id: str
    ) -> dict[str, Any]:
        """Run a subscription's selection over one event, in a context of its own (its
        own loaders: a profile read for one event is not kept for the next)."""
        budget = ResponseBudget(self.limits.max_response_bytes)
        if hasattr(context, "response_budget"):
            context.response_budget = budget
        per_event = built.build_per_event_executor(payload)
        per_event.context_value = context
        # graphql-core's copy shares the subfield cache, keyed by the identity of field
        # lists each event collects anew: shared, it would grow by every event for good.
        per_event._relevant_sub_fields = {}
        outcome = per_event.execute_operation(False)
        result = cast(ExecutionResult, await outcome if _is_awaitable(outcome) else outcome)
        return self._body(result, budget, context, request_id)

    def _body(
        self, result: ExecutionResult, budget: ResponseBudget, context: Any, request_id: str
    ) -> dict[str, Any]:
        """The response of an execution: its data and its errors, shaped and masked."""
        if budget.exceeded:  # what was built is dropped: no partial answer of that size
            log.info("request %s: response over %d bytes, refused", request_id, budget.limit)
            message = (
                f"the response would be over {budget.limit} bytes: ask for fewer posts, "
                "fields or aliases"
            )
            return {"errors": [request_error(message, "RESPONSE_TOO_LARGE")], "data": None}
        errors = result.errors or []
        if result.data is None and errors and all(e.path is None for e in errors):
            # Failed before execution (variable coercion): a request error, no data.
            raise RequestError([_shape(e, "BAD_USER_INPUT") for e in errors])
        body: dict[str, Any] = {}
        notices = getattr(context, "notices", None) or []
        if errors or notices:
            body["errors"] = [field_error(e, request_id) for e in errors] + notices
        body["data"] = result.data
        return body

    def _plan(self, prepared: Prepared, built: GraphQLExecutor[Any]) -> Plan | None:
        """The operation's plan, compiled on its first run; None: graphql-core runs it."""
        if not self.compile_operations or len(prepared.query) > CACHEABLE_QUERY_LENGTH:
            return None
        key = (prepared.query, prepared.name)
        cached = self.plans.get(key)
        if cached is None:
            try:
                cached = (compile_plan(built),)
            except Unsupported as why:
                log.debug("operation %s runs on graphql-core: %s", prepared.name or "", why)
                cached = (None,)
            size = sys.getsizeof(prepared.query)
            if cached[0] is not None:  # its nodes too: they outlive the document's entry
                size += PLAN_FIELD_BYTES * cached[0].fields + deep_size(prepared.document)
            self.plans.put(key, cached, size)
        return cached[0]

    def _checked(self, query: str) -> Checked:
        """The outcome of ``_check``, from the cache when the same text came before."""
        checked = self.documents.get(query)
        if checked is not None:
            return checked
        checked = self._check(query)
        if len(query) <= CACHEABLE_QUERY_LENGTH:
            if checked[0] is not None:
                _drop_tokens(checked[0])
            self.documents.put(query, checked, sys.getsizeof(query) + deep_size(*checked))
        return checked

    def _check(self, query: str) -> Checked:
        try:
            document = parse(query, max_tokens=self.limits.max_tokens)
        except GraphQLError as error:
            return None, [_shape(error, _parse_failure_code(error.message))]
        work, most = validation_work(document), self.limits.max_validation_work
        if work > most:  # validating it would hold the event loop for long
            message = (
                f"the document repeats fields too much to validate: {work} field pairs to "
                f"compare, at most {most} (select each field once per selection set)"
            )
            return None, [request_error(message, "VALIDATION_TOO_COMPLEX")]
        errors = validate(
            self._schema,
            document,
            self._rules,
            hide_suggestions=not self.limits.introspection,
        )
        if errors:
            return None, [_shape(e, _own_code(e, "GRAPHQL_VALIDATION_FAILED")) for e in errors]
        return document, []


def _drop_tokens(document: DocumentNode) -> None:
    """Keep each node's place in the text (error locations need it) but not the lexer's
    tokens, linked from every node and most of a parsed document's memory."""
    stack: list[Node] = [document]
    while stack:
        node = stack.pop()
        if node.loc is not None:
            place = Location.__new__(Location)
            place.start, place.end, place.source = node.loc.start, node.loc.end, node.loc.source
            place.start_token = place.end_token = None  # type: ignore[assignment]
            object.__setattr__(node, "loc", place)  # a frozen dataclass, ours to change
        for key in node.keys[1:]:  # the first is "loc"
            value = getattr(node, key, None)
            if isinstance(value, Node):
                stack.append(value)
            elif isinstance(value, tuple | list):
                stack.extend(item for item in value if isinstance(item, Node))


def _parse_failure_code(message: str) -> str:
    if "tokens" in message and "Parsing aborted" in message:
        return "TOO_MANY_TOKENS"
    if "nested too deeply" in message:
        return "QUERY_TOO_DEEP"
    return "GRAPHQL_PARSE_FAILED"


def _own_code(error: GraphQLError, default: str) -> str:
    """A limit rule's own code, else the default for its phase."""
    code = (error.extensions or {}).get("code")
    return code if isinstance(code, str) else default


def request_error(message: str, code: str) -> dict[str, Any]:
    return {"message": message, "extensions": {"code": code}}


def internal_error(request_id: str) -> dict[str, Any]:
    """What a client sees of a failure we did not foresee: nothing but where to look."""
    return {
        "message": f"Internal server error (request id {request_id})",
        "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
    }


def field_error(error: GraphQLError, request_id: str) -> dict[str, Any]:
    """Errors we raised on purpose keep their message and code; anything else is masked."""
    original = error.original_error
    if isinstance(original, ApiError):
        shaped = _shape(error, original.code)
        shaped["message"] = original.message
        shaped["extensions"] = dict(original.extensions)
        return shaped
    log.error(
        "request %s: internal error at %s: %s",
        request_id,
        ".".join(map(str, error.path or [])),
        error.message,
        exc_info=original if original is not None else None,
    )
    return {**_shape(error, "INTERNAL_SERVER_ERROR"), **internal_error(request_id)}


def _shape(error: GraphQLError, code: str) -> dict[str, Any]:
    shaped: dict[str, Any] = {"message": error.message}
    if error.locations:
        shaped["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if error.path:
        shaped["path"] = list(error.path)
    shaped["extensions"] = {**(error.extensions or {}), "code": code}
    return shaped


shape_error = _shape  # for the subscriptions' errors (execution.subscriptions)
