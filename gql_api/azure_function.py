"""The Azure Functions entry point (Python v2 model): ``app``, which the deployment's
``function_app.py`` (deploy/azure) exposes to the Functions host.

As on Lambda, the app is built once per worker process, when the host loads
``function_app.py``: settings are read and checked then (a bad setting fails loudly,
naming the variable), the store's SDK is imported, and every invocation reuses the one
app. The Cosmos DB and Blob clients open with the first request and are reused after.

``AsgiFunctionApp`` would run the app's lifespan before the first request and, if the
store could not open, answer that request and every later one with the host's bare 500
(its start-up is tried once). The lifespan is answered here without starting anything
instead, so the app starts on its first request as on Lambda: a store that cannot open
answers 503 ``STORE_UNAVAILABLE``, and the next request tries again.
"""

from __future__ import annotations

import azure.functions as func
from starlette.types import ASGIApp, Receive, Scope, Send

from gql_api.app import create_function_app


class LifespanSkipped:
    """The app, its lifespan answered without running it (the app starts itself on its
    first request)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


asgi_app = create_function_app()  # as on Lambda: built once per worker
# Anonymous: the API signs its callers in itself (bearer tokens), not with function keys.
app = func.AsgiFunctionApp(app=LifespanSkipped(asgi_app), http_auth_level=func.AuthLevel.ANONYMOUS)
