"""Logging: one JSON object per line, and the per-request record of what happened.

Every line carries the time, level, logger and message, plus whatever the caller put in
``extra`` (for requests: request id, operation, duration, outcome code, store calls).
Tokens and post content are never logged: only such metadata is. The SDKs' own loggers
stay at WARNING whatever ``GQL_API_LOG_LEVEL`` says: at DEBUG (and Azure's at INFO) they
log requests with their headers and bodies, session tokens and post content included.
"""

from __future__ import annotations

import contextvars
import json
import logging
import time
from typing import Any

import orjson

# Store calls made for the current request; the service adds one per call.
STORE_CALLS: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "store_calls", default=None
)
# Loggers of the libraries that talk to the clouds and the network, and of Mangum (which
# can log whole events): never below WARNING.
SDK_LOGGERS = (
    "aiobotocore",
    "aioboto3",
    "aiohttp",
    "azure",
    "boto3",
    "botocore",
    "google",
    "grpc",
    "hpack",
    "httpcore",
    "httpx",
    "mangum",
    "s3transfer",
    "urllib3",
)
# LogRecord's own attributes, and uvicorn's coloured copy of the message.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        try:  # orjson: several times faster than json, on a line written for every request
            return orjson.dumps(line, default=str).decode()
        except TypeError:  # what orjson refuses (an int over 64 bits, a lone surrogate)
            return json.dumps(line, default=str)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "mangum"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    for name in SDK_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def count_store_call() -> None:
    calls = STORE_CALLS.get()
    if calls is not None:
        calls[0] += 1
