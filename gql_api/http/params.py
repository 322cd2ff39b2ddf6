"""What a GraphQL request over HTTP carries: its parameters checked for shape, its
media type negotiated, and the HTTP-level refusal every transport raises."""

from __future__ import annotations

import json
from typing import Any

JSON = "application/json"
GRAPHQL = "application/graphql"
GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
EVENT_STREAM = "text/event-stream"


class HttpError(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def first_code(errors: list[dict[str, Any]]) -> str | None:
    for error in errors:
        code = error.get("extensions", {}).get("code")
        if isinstance(code, str):
            return code
    return None


def description(reason: str) -> str:
    return f'error_description="{reason}"'


def check_query(params: dict[str, Any]) -> dict[str, Any]:
    query = params.get("query")
    if not isinstance(query, str) or not query.strip():
        raise HttpError(400, "BAD_REQUEST", "the request has no query (a non-empty string)")
    return params


def check_shapes(params: dict[str, Any]) -> dict[str, Any]:
    for name in ("variables", "extensions"):
        if params.get(name) is not None and not isinstance(params[name], dict):
            raise HttpError(400, "BAD_REQUEST", f"{name} must be a JSON object")
    for name in ("operationName", "documentId"):
        if params.get(name) is not None and not isinstance(params[name], str):
            raise HttpError(400, "BAD_REQUEST", f"{name} must be a string")
    return params


def decode_json(raw: str | bytes, message: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested thousands deep
        raise HttpError(400, "BAD_REQUEST", message) from None


def negotiate(accept: str | None) -> str:
    """The response media type: graphql-response+json when accepted, else application/json."""
    if accept is None or not accept.strip():
        return JSON
    best: tuple[float, int, str] | None = None
    for position, item in enumerate(accept.split(",")):
        media, *options = (part.strip().lower() for part in item.split(";"))
        quality = 1.0
        for option in options:
            name, _, value = option.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality <= 0:
            continue
        if media == GRAPHQL_RESPONSE_JSON:
            candidate = GRAPHQL_RESPONSE_JSON
        elif media in (JSON, "application/*", "*/*"):
            candidate = JSON
        else:
            continue
        key = (quality, -position, candidate)
        if best is None or key[:2] > best[:2]:
            best = key
    if best is None:
        raise HttpError(
            406,
            "NOT_ACCEPTABLE",
            f"the Accept header must allow {GRAPHQL_RESPONSE_JSON} or {JSON}",
        )
    return best[2]


def wants_event_stream(accept: str | None) -> bool:
    """Whether a request asks for an event stream (GraphQL over SSE) before JSON."""
    if not accept or EVENT_STREAM not in accept:
        return False
    first = accept.split(",")[0].split(";")[0].strip().lower()
    return first == EVENT_STREAM or (JSON not in accept and GRAPHQL_RESPONSE_JSON not in accept)
