"""The Starlette application factory."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from typing import cast

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gql_api.auth.dev import DevAuthenticator, DevSecretError, dev_secret
from gql_api.auth.identity import Authenticator
from gql_api.auth.verified import VerifiedTokens
from gql_api.domain.live_feed import LiveFeed
from gql_api.domain.service import PostService
from gql_api.errors import StoreUnavailableError
from gql_api.execution.executor import Executor, request_error
from gql_api.execution.query_limits import QueryLimits
from gql_api.http.caching import CachePolicy, CacheRules
from gql_api.http.endpoint import GRAPHIQL_STATIC, GraphQLEndpoint
from gql_api.http.graphql_ws import GraphQLWebSocket
from gql_api.http.live import LiveLimits, LiveOperations
from gql_api.http.rate_limits import RateLimiter, RateLimits
from gql_api.http.sse import GraphQLOverSSE
from gql_api.http.trusted import ManifestError, TrustedDocuments
from gql_api.images import ImageStorage, open_image_storage, upload_url_ttl
from gql_api.logs import configure_logging
from gql_api.schema.root import schema
from gql_api.settings import Settings, SettingsError, load_settings
from gql_api.stores import Preparable, create_store
from gql_api.stores.base import ChangeFeed, PostStore

log = logging.getLogger(__name__)

# /healthz answers within this, however slow the store is.
HEALTH_TIMEOUT_SECONDS = 2.0


async def build_authenticator(settings: Settings) -> Authenticator:
    """The settings' authenticator, remembering the tokens it verified for a minute."""
    if settings.auth != "dev":
        from gql_api.auth.jwks import build_jwks_authenticator

        return VerifiedTokens(build_jwks_authenticator(settings))
    if settings.shared_dev_server:
        log.warning(
            "GQL_API_SHARED_DEV_SERVER=true: dev tokens are accepted, so whoever holds "
            "GQL_API_DEV_SECRET can sign in as any user, admin included; never serve real "
            "users like this"
        )
    secret = await asyncio.to_thread(dev_secret, settings)
    return VerifiedTokens(DevAuthenticator(settings, secret))


class Runtime:
    """What the app holds open: the store's connections, the image storage's client (when
    an images bucket is set) and the authenticator.

    A server with a lifespan (uvicorn) starts it at start-up; on AWS Lambda, where
    Mangum would run the lifespan around every invocation, the first request starts
    it and later invocations of the same execution environment reuse it (and a
    SnapStart snapshot, taken before any request, holds no connection).
    """

    def __init__(
        self,
        settings: Settings,
        store: PostStore,
        endpoint: GraphQLEndpoint,
        images: ImageStorage | None = None,
        *,
        freeze_heap: bool = False,
        live: LiveOperations | None = None,
    ) -> None:
        self.settings = settings
        self.live = live
        self.freeze_heap = freeze_heap
        self.store = store
        self.images = images
        self.endpoint = endpoint
        self.started = False
        self.failure: str | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        async with self._lock:
            if self.started:
                return
            try:
                if self.endpoint.authenticator is None:  # may read the dev secret file
                    try:
                        self.endpoint.authenticator = await build_authenticator(self.settings)
                    except DevSecretError as error:
                        self.failure = f"gql-api cannot start: {error}"
                        raise
                await self.store.open()
            except DevSecretError:
                raise
            except Exception as error:
                self.failure = f"gql-api cannot start: store {self.store.name}: {error}"
                with contextlib.suppress(Exception):  # release what was half opened
                    await self.store.close()
                raise
            self.started = True
            log.info("store %s open", self.store.name)
            if self.images is not None:
                await self._open_images(self.images)
            if self.freeze_heap:
                # What start-up built (modules, the schema, clients) lives as long as the
                # process: the collector's full passes then never walk it again, which
                # were the page load's slowest answers (p99 46 against 13-18 ms). No
                # collection first: that would cost the first request on Lambda.
                gc.freeze()

    async def _open_images(self, images: ImageStorage) -> None:
        """Create the image SDK client now rather than in the first upload's request. A
        failure leaves posts working: the storage tries again on its next use, and that
        request answers IMAGE_STORAGE_UNAVAILABLE while it still fails."""
        try:
            await images.open()
        except Exception as error:  # noqa: BLE001 - said in the log, retried on use
            log.error("images %s: bucket %s cannot open: %r", images.name, images.bucket, error)
        else:
            log.info("images %s: bucket %s ready", images.name, images.bucket)

    async def stop(self) -> None:
        async with self._lock:
            if not self.started:
                return
            self.started = False
            if self.live is not None:  # each connection closed cleanly, then the feed
                await self.live.connections.close_all()
                if self.endpoint.service.live is not None:
                    await self.endpoint.service.live.close()
            await self.store.close()
            log.info("store %s closed", self.store.name)
            if self.images is not None:
                await self.images.close()
            if self.endpoint.authenticator is not None:
                await self.endpoint.authenticator.close()


class _StartOnFirstRequest:
    """Starts the runtime on the first request where no lifespan did (Lambda), and
    reports a known start-up failure to a lifespan server as one line, not a traceback."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._clean(send))
            return
        if scope["type"] == "http" and not self.runtime.started:
            try:
                await self.runtime.start()
            except Exception:  # noqa: BLE001 - answered as 503, said in the log
                log.error("%s", self.runtime.failure)
                response = JSONResponse(
                    {"errors": [request_error("the service cannot start", "STORE_UNAVAILABLE")]},
                    status_code=503,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _clean(self, send: Send) -> Send:
        async def send_clean(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed" and self.runtime.failure:
                message = {**message, "message": self.runtime.failure}
            await send(message)

        return send_clean


def create_app(
    settings: Settings,
    *,
    store: PostStore | None = None,
    authenticator: Authenticator | None = None,
    images: ImageStorage | None = None,
    freeze_heap: bool = False,
    subscriptions: bool = True,
) -> Starlette:
    """Build the app; the store and the image storage (``images``, else the one the
    settings name, if any) open at start-up (or on the first request, on Lambda).
    ``freeze_heap``: once started, exempt what the process holds so far from garbage
    collection (a server's process, not a test's)."""
    store = store if store is not None else create_store(settings)
    images = images if images is not None else open_image_storage(settings)
    live_feed = None
    if subscriptions and settings.subscriptions and hasattr(store, "changes"):
        live_feed = LiveFeed(
            cast(ChangeFeed, store),
            queue_size=settings.subscription_queue,
            timeout=settings.store_timeout,
        )
    service = PostService(
        store,
        timeout=settings.store_timeout,
        images=images,
        upload_url_ttl=upload_url_ttl(settings),
        live=live_feed,
    )
    limits = QueryLimits(
        max_depth=settings.max_depth,
        max_aliases=settings.max_aliases,
        max_tokens=settings.max_tokens,
        max_directives=settings.max_directives,
        max_cost=settings.max_cost,
        max_validation_work=settings.max_validation_work,
        max_response_bytes=settings.max_response_bytes,
        introspection=settings.introspection_enabled,
    )
    log.debug("store %s, %s", store.name, limits)  # what this instance enforces, at start
    graphiql = settings.graphiql_enabled
    if graphiql and not GRAPHIQL_STATIC.is_dir():  # a package built without its assets
        if settings.graphiql:
            raise SettingsError(
                "GQL_API_GRAPHIQL is on but GraphiQL's assets are not in this package: "
                "build it with `gql-api package lambda --graphiql`, or set "
                "GQL_API_GRAPHIQL=false"
            )
        graphiql = False
    trusted = None
    if settings.trusted_documents is not None:
        try:  # read once, here: a bad manifest stops the start, naming the file
            trusted = TrustedDocuments.load(
                settings.trusted_documents, allow_introspection=settings.introspection_enabled
            )
        except ManifestError as error:
            raise SettingsError(f"GQL_API_TRUSTED_DOCUMENTS: {error}") from None
    endpoint = GraphQLEndpoint(
        Executor(schema, limits, compile_operations=settings.compiled_operations),
        service=service,
        authenticator=authenticator,
        max_body_bytes=settings.max_body_bytes,
        graphiql=graphiql,
        rate_limiter=RateLimiter(
            RateLimits(
                writes_per_minute=settings.writes_per_minute,
                cost_per_minute=settings.cost_per_minute,
            )
        ),
        trusted_proxies=settings.trusted_proxies,
        body_timeout=settings.body_timeout,
        caching=CacheRules(
            schema._schema, CachePolicy(settings.cache_max_age, settings.cache_s_maxage)
        ),
        trusted=trusted,
    )
    live = None
    if live_feed is not None:
        live = LiveOperations(
            endpoint,
            LiveLimits(
                max_connections=settings.max_subscription_connections,
                max_subscriptions=settings.max_subscriptions_per_connection,
                keepalive=settings.subscription_keepalive,
                idle_timeout=settings.subscription_idle_timeout,
                init_timeout=settings.subscription_init_timeout,
            ),
        )
        endpoint.events = GraphQLOverSSE(live).respond
    runtime = Runtime(settings, store, endpoint, images, freeze_heap=freeze_heap, live=live)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    async def healthz(request: Request) -> JSONResponse:
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT_SECONDS):
                await service.ping()
        except (TimeoutError, StoreUnavailableError):
            return JSONResponse({"status": "unavailable", "store": store.name}, status_code=503)
        return JSONResponse({"status": "ok", "store": store.name})

    middleware = [Middleware(_StartOnFirstRequest, runtime=runtime)]
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
    routes: list[BaseRoute] = [
        Route("/graphql", endpoint),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    if live is not None:
        websocket = GraphQLWebSocket(
            live,
            max_message_bytes=settings.max_body_bytes,
            max_unread_bytes=settings.subscription_max_unread_bytes,
        )
        routes.append(WebSocketRoute("/graphql", websocket))
    if graphiql:
        static = StaticFiles(directory=GRAPHIQL_STATIC)
        routes.append(Mount("/graphiql/static", app=static, name="graphiql"))
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.store = store
    app.state.images = images
    app.state.runtime = runtime
    app.state.live = live
    return app


def create_function_app() -> Starlette:
    """The app of a function platform's worker (Lambda, Azure Functions), built once when
    the worker loads its entry point: settings read and checked then (a bad one fails
    loudly, naming the variable), logging set up, the store's SDK imported and prepared
    (its service model loaded: init runs at full CPU). Nothing opens until the first
    request, which starts the app; the heap is frozen then."""
    settings = load_settings()
    configure_logging(settings.log_level)
    store = create_store(settings)
    if isinstance(store, Preparable):
        store.prepare()
    # No subscriptions: a function's invocation holds no connection open (on Lambda, the
    # WebSocket API's handlers serve them: gql_api/lambda_websocket.py).
    return create_app(settings, store=store, freeze_heap=True, subscriptions=False)
