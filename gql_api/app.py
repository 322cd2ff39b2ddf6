"""The Starlette application factory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gql_api.auth import Authenticator, DevAuthenticator, dev_secret
from gql_api.endpoint import GraphQLEndpoint
from gql_api.errors import StoreUnavailableError
from gql_api.executor import Executor
from gql_api.schema import schema
from gql_api.service import PostService
from gql_api.settings import Settings
from gql_api.stores import create_store
from gql_api.stores.base import PostStore, StoreUnavailable

log = logging.getLogger(__name__)

# /healthz answers within this, however slow the store is.
HEALTH_TIMEOUT_SECONDS = 2.0


async def build_authenticator(settings: Settings) -> Authenticator:
    if settings.auth != "dev":
        from gql_api.jwks import build_jwks_authenticator

        return build_jwks_authenticator(settings)
    secret = await asyncio.to_thread(dev_secret, settings)
    return DevAuthenticator(settings, secret)


class _CleanStartupFailure:
    """Reports a known start-up failure to the server as one line, not a traceback."""

    def __init__(self, app: ASGIApp, failures: list[str]) -> None:
        self.app = app
        self.failures = failures

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_clean(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed" and self.failures:
                message = {**message, "message": self.failures[-1]}
            await send(message)

        await self.app(scope, receive, send_clean)


def create_app(
    settings: Settings,
    *,
    store: PostStore | None = None,
    authenticator: Authenticator | None = None,
) -> Starlette:
    """Build the app; the store is opened and closed by the app's lifespan."""
    store = store if store is not None else create_store(settings)
    service = PostService(store, timeout=settings.store_timeout)
    endpoint = GraphQLEndpoint(
        Executor(schema),
        service=service,
        authenticator=authenticator,
        max_body_bytes=settings.max_body_bytes,
        graphiql=settings.graphiql,
    )

    startup_failures: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            if endpoint.authenticator is None:  # built here: it may read the secret file
                endpoint.authenticator = await build_authenticator(settings)
            await store.open()
        except (StoreUnavailable, OSError, RuntimeError) as error:
            startup_failures.append(f"gql-api cannot start: store {store.name}: {error}")
            raise
        log.info("store %s open", store.name)
        try:
            yield
        finally:
            await store.close()
            log.info("store %s closed", store.name)
            if endpoint.authenticator is not None:
                await endpoint.authenticator.close()

    async def healthz(request: Request) -> JSONResponse:
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT_SECONDS):
                await service.ping()
        except (TimeoutError, StoreUnavailableError):
            return JSONResponse({"status": "unavailable", "store": store.name}, status_code=503)
        return JSONResponse({"status": "ok", "store": store.name})

    middleware = [Middleware(_CleanStartupFailure, failures=startup_failures)]
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type", "X-Request-Id"],
                expose_headers=["X-Request-Id"],
                max_age=600,
            )
        )
    app = Starlette(
        routes=[Route("/graphql", endpoint), Route("/healthz", healthz, methods=["GET"])],
        middleware=middleware,
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.store = store
    return app
