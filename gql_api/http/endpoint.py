"""``/graphql`` over HTTP, following the GraphQL-over-HTTP spec.

POST with a JSON body, or GET with URL parameters (queries only: a mutation over GET
is 405). Responses are ``application/graphql-response+json`` when the client accepts
it (request errors then answer 400) or ``application/json`` (always 200 for a
well-formed request). A browser's GET without a query gets GraphiQL.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from graphql import OperationType
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send

from gql_api.auth.identity import Authenticator, Identity, InvalidToken
from gql_api.domain.service import PostService
from gql_api.execution.cost import estimate_cost, root_field_count
from gql_api.execution.executor import (
    Executor,
    Prepared,
    RequestError,
    internal_error,
    request_error,
)
from gql_api.execution.subscriptions import encoded
from gql_api.http.caching import PRIVATE, VARY, CacheRules, etag_of, matches
from gql_api.http.params import (
    GRAPHQL,
    GRAPHQL_RESPONSE_JSON,
    JSON,
    HttpError,
    check_query,
    check_shapes,
    decode_json,
    description,
    first_code,
    negotiate,
    wants_event_stream,
)
from gql_api.http.persisted import PersistedQueries
from gql_api.http.rate_limits import RateLimited, RateLimiter, client_address
from gql_api.http.trusted import TrustedDocuments
from gql_api.logs import STORE_CALLS
from gql_api.resolvers.context import RequestContext

log = logging.getLogger(__name__)
access_log = logging.getLogger("gql_api.access")  # one line per request

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
GRAPHIQL_STATIC = Path(__file__).resolve().parent / "static" / "graphiql"
# The page and everything it loads come from this server; fonts are inline (data:).
GRAPHIQL_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; font-src 'self' data:; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


@functools.cache
def graphiql_page() -> str:
    """GraphiQL's page, read once (assets are served from GRAPHIQL_STATIC)."""
    return (GRAPHIQL_STATIC / "index.html").read_text(encoding="utf-8")


EventsResponder = Callable[[Request, dict[str, Any], Identity | None, str], Awaitable[Response]]


class GraphQLEndpoint:
    """An ASGI app serving one GraphQL schema."""

    def __init__(
        self,
        executor: Executor,
        *,
        service: PostService,
        authenticator: Authenticator | None,
        max_body_bytes: int,
        graphiql: bool,
        rate_limiter: RateLimiter | None = None,
        trusted_proxies: int = 0,
        body_timeout: float = 30.0,
        caching: CacheRules | None = None,
        trusted: TrustedDocuments | None = None,
    ) -> None:
        self.caching = caching
        self.trusted = trusted
        self.body_timeout = body_timeout
        self.rate_limiter = rate_limiter
        self.trusted_proxies = trusted_proxies
        self.executor = executor
        self.service = service
        self.authenticator = authenticator
        self.max_body_bytes = max_body_bytes
        self.graphiql = graphiql
        self.persisted = PersistedQueries()
        # Answers a request that accepts an event stream (GraphQL over SSE); set by the app
        # where it serves subscriptions (the live transports build on this endpoint).
        self.events: EventsResponder | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response = await self.handle(request)
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        """Answer one request and log one line about it."""
        started = time.perf_counter()
        calls = [0]
        reset = STORE_CALLS.set(calls)
        request.state.operation = None
        try:
            response = await self._answer(request)
        finally:
            STORE_CALLS.reset(reset)
        outcome = getattr(request.state, "outcome", None) or (
            "OK" if response.status_code < 400 else str(response.status_code)
        )
        access_log.info(
            "%s %s %s",
            request.method,
            request.scope["path"],  # not request.url, which builds the whole URL
            response.status_code,
            extra={
                "request_id": response.headers.get("x-request-id"),
                "client_request_id": _client_request_id(request),
                "method": request.method,
                "operation": request.state.operation,
                "status": response.status_code,
                "outcome": outcome,
                "duration_ms": round(1000 * (time.perf_counter() - started), 2),
                "store_calls": calls[0],
            },
        )
        return response

    async def _answer(self, request: Request) -> Response:
        request_id = _request_id(request)
        media_type = JSON
        try:
            if request.method not in ("GET", "POST"):
                raise HttpError(
                    405, "METHOD_NOT_ALLOWED", "use GET or POST", {"Allow": "GET, POST"}
                )
            if request.method == "GET" and self._wants_graphiql(request):
                return HTMLResponse(
                    graphiql_page(),
                    headers={
                        "X-Request-Id": request_id,
                        "Content-Security-Policy": GRAPHIQL_CSP,
                        "X-Content-Type-Options": "nosniff",
                        "Referrer-Policy": "no-referrer",
                        "Cache-Control": "no-cache",
                    },
                )
            if self.events is not None and wants_event_stream(request.headers.get("accept")):
                params = await self._params(request)
                viewer = await self._authenticate(request, request_id)
                request.state.operation = "stream"
                return await self.events(request, params, viewer, request_id)
            media_type = negotiate(request.headers.get("accept"))
            params = await self._params(request)
            viewer = await self._authenticate(request, request_id)
            body = await self._run(request, params, viewer, request_id)
            status = 200
        except HttpError as error:
            request.state.outcome = error.code
            body = {"errors": [request_error(error.message, error.code)]}
            return _json(body, error.status, media_type, request_id, error.headers)
        except RequestError as error:
            request.state.outcome = first_code(error.errors)
            body = {"errors": error.errors}
            status = 400 if media_type == GRAPHQL_RESPONSE_JSON else 200
        except Exception:
            request.state.outcome = "INTERNAL_SERVER_ERROR"
            log.exception("request %s: unhandled error", request_id)
            return _json({"errors": [internal_error(request_id)]}, 500, media_type, request_id)
        request.state.outcome = first_code(body.get("errors", [])) or "OK"
        if "errors" in body:  # an answer with errors is never kept: the next may be whole
            return _json(body, status, media_type, request_id)
        cache_control = getattr(request.state, "cache_control", PRIVATE)
        return _json(
            body,
            status,
            media_type,
            request_id,
            cache_control=cache_control,
            if_none_match=request.headers.get("if-none-match"),
        )

    def _wants_graphiql(self, request: Request) -> bool:
        accept = request.headers.get("accept", "")
        return self.graphiql and "query" not in request.query_params and "text/html" in accept

    async def _params(self, request: Request) -> dict[str, Any]:
        if request.method == "GET":
            params: dict[str, Any] = dict(request.query_params)
            for name in ("variables", "extensions"):
                if name in params:
                    params[name] = decode_json(params[name], f"{name} is not valid JSON")
        else:
            # Only media types a browser cannot send cross-site without a CORS preflight:
            # a form or a plain-text POST from another site is refused (CSRF).
            content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type not in (JSON, GRAPHQL):
                raise HttpError(
                    415,
                    "UNSUPPORTED_MEDIA_TYPE",
                    f"send the request body as {JSON} (or the query alone as {GRAPHQL})",
                )
            raw = await self._body(request)
            if content_type == GRAPHQL:
                try:
                    params = {"query": raw.decode()}
                except UnicodeDecodeError:
                    raise HttpError(400, "BAD_REQUEST", "the query is not valid UTF-8") from None
            else:
                params = decode_json(raw, "the request body is not valid JSON")
            if not isinstance(params, dict):
                raise HttpError(400, "BAD_REQUEST", "the request body must be a JSON object")
        return check_query(self.resolve_document(check_shapes(params)))

    def resolve_document(self, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` with the text to run as its query: the trusted document it names
        (with GQL_API_TRUSTED_DOCUMENTS), else its own or the one its APQ hash stands for."""
        if self.trusted is not None:
            params["query"] = self.trusted.resolve(params)
        else:
            params["query"] = self.persisted.resolve(params.get("query"), params.get("extensions"))
        return params

    async def _body(self, request: Request) -> bytes:
        too_large = HttpError(
            413, "PAYLOAD_TOO_LARGE", f"the request body is over {self.max_body_bytes} bytes"
        )
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.body_timeout):  # a client trickling its body
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > self.max_body_bytes:
                        raise too_large
                    chunks.append(chunk)
        except TimeoutError:
            raise HttpError(
                408,
                "REQUEST_TIMEOUT",
                f"the request body did not arrive within {self.body_timeout:g} seconds",
                {"Connection": "close"},
            ) from None
        return b"".join(chunks)

    async def _authenticate(self, request: Request, request_id: str) -> Identity | None:
        return await self.verify_authorization(request.headers.get("authorization"), request_id)

    async def verify_authorization(self, header: str | None, request_id: str) -> Identity | None:
        """The caller an ``Authorization`` value names (None: anonymous); ``HttpError``
        401 for a malformed, tampered or expired one. Every transport signs in here."""
        if header is None:
            return None
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            log.info("request %s: refused Authorization header: not 'Bearer <token>'", request_id)
            raise HttpError(
                401,
                "UNAUTHENTICATED",
                "the Authorization header must be 'Bearer <token>'",
                {"WWW-Authenticate": 'Bearer error="invalid_request"'},
            )
        if self.authenticator is None:
            raise RuntimeError("the application has not started (no authenticator)")
        try:
            return await self.authenticator.authenticate(token)
        except InvalidToken as error:
            log.info("request %s: refused token: %s", request_id, error.detail)
            raise HttpError(
                401,
                "UNAUTHENTICATED",
                error.reason,
                {"WWW-Authenticate": f'Bearer error="invalid_token", {description(error.reason)}'},
            ) from None

    def admit(
        self,
        prepared: Prepared,
        params: dict[str, Any],
        viewer: Identity | None,
        address: str | None,
    ) -> None:
        """The limits on what an operation may ask, on every transport: its estimated
        cost (``RequestError``), and the caller's rate limits (``HttpError`` 429)."""
        operation_name = params.get("operationName")
        cost = estimate_cost(prepared.document, operation_name, params.get("variables"))
        max_cost = self.executor.limits.max_cost
        if cost > max_cost:
            raise RequestError(
                [
                    request_error(
                        f"the query asks for too much: estimated cost {cost}, at most "
                        f"{max_cost} (each field 1, times the page size under posts)",
                        "QUERY_TOO_COMPLEX",
                    )
                ]
            )
        if self.rate_limiter is not None:
            writes = root_field_count(prepared.document, operation_name)
            try:
                self.rate_limiter.check(
                    user=None if viewer is None else viewer.user_id,
                    address=address,
                    writes=writes if prepared.operation is OperationType.MUTATION else 0,
                    cost=cost,
                )
            except RateLimited as limited:
                raise HttpError(
                    429, "RATE_LIMITED", limited.message, {"Retry-After": str(limited.retry_after)}
                ) from None

    async def _run(
        self,
        request: Request,
        params: dict[str, Any],
        viewer: Identity | None,
        request_id: str,
    ) -> dict[str, Any]:
        operation_name = params.get("operationName")
        prepared = self.executor.prepare(params["query"], operation_name)
        # The operation's name, or its kind when it has none ("query", "mutation").
        request.state.operation = prepared.name or (
            prepared.operation.value if prepared.operation else None
        )
        if (
            self.caching is not None
            and request.method == "GET"
            and prepared.operation is OperationType.QUERY
            and "authorization" not in request.headers
        ):
            request.state.cache_control = self.caching.header_for(prepared.query, prepared.document)
        if request.method == "GET" and prepared.operation is not OperationType.QUERY:
            raise HttpError(
                405,
                "METHOD_NOT_ALLOWED",
                "only queries may be sent with GET: send mutations with POST",
                {"Allow": "POST"},
            )
        self.admit(
            prepared,
            params,
            viewer,
            client_address(
                request.headers.get("x-forwarded-for", ""),
                request.client.host if request.client is not None else None,
                self.trusted_proxies,
            ),
        )
        context = RequestContext(service=self.service, viewer=viewer, request_id=request_id)
        return await self.executor.execute(
            prepared,
            variables=params.get("variables"),
            operation_name=operation_name,
            context=context,
            request_id=request_id,
        )


def _request_id(request: Request) -> str:
    """The server's own id for the request: Lambda's request id or Azure Functions'
    invocation id (what the platform's own logs name), else a new one. Never the client's,
    which any client may reuse or forge (it is logged beside, as the client's)."""
    lambda_context = request.scope.get("aws.context")
    platform_id = getattr(lambda_context, "aws_request_id", None) or request.scope.get(
        "azure_functions.invocation_id"
    )
    if isinstance(platform_id, str) and _REQUEST_ID.fullmatch(platform_id):
        return platform_id
    return uuid.uuid4().hex


def _client_request_id(request: Request) -> str | None:
    """The client's X-Request-Id when it is a sane token, for the log line only."""
    given = request.headers.get("x-request-id")
    return given if given is not None and _REQUEST_ID.fullmatch(given) else None


def _json(
    body: dict[str, Any],
    status: int,
    media_type: str,
    request_id: str,
    headers: dict[str, str] | None = None,
    *,
    cache_control: str = PRIVATE,
    if_none_match: str | None = None,
) -> Response:
    content = encoded(body)
    sent = {"X-Request-Id": request_id, "Cache-Control": cache_control, **(headers or {})}
    if cache_control != PRIVATE:  # public: validated by its ETag, kept per Accept
        sent |= {"ETag": etag_of(content), "Vary": VARY}
        if matches(if_none_match, sent["ETag"]):
            return Response(status_code=304, headers=sent)
    return Response(
        content, status_code=status, media_type=f"{media_type}; charset=utf-8", headers=sent
    )
