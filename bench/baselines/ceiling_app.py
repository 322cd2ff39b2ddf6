"""The ceiling of bench/http_bench.py: bare Starlette answering gql-api's own response to
the page query (read from BENCH_BODY) to every POST, on the same server stack."""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BODY = open(os.environ["BENCH_BODY"], "rb").read()  # noqa: SIM115 - once at start


async def graphql(request: Request) -> Response:
    await request.body()
    return Response(BODY, media_type="application/json")


app = Starlette(routes=[Route("/graphql", graphql, methods=["POST", "GET"])])
