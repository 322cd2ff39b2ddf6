"""Builders shared by the tests."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from gql_api.auth.identity import Identity
from gql_api.domain.records import PostRecord

ALICE = Identity(user_id="alice")
BOB = Identity(user_id="bob")
ADMIN = Identity(user_id="root", is_admin=True)
DEV_SECRET = "test-secret-0123456789abcdef-0123456789"

_BASE = datetime(2026, 1, 1, tzinfo=UTC)
_ids = itertools.count(1)


class StepClock:
    """A clock that moves one millisecond per reading: creation order is feed order."""

    def __init__(self, start: datetime = _BASE) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


def record(
    *,
    author_id: str = "alice",
    tags: tuple[str, ...] = (),
    created_at: datetime | None = None,
    post_id: str | None = None,
    content: str = "hello",
) -> PostRecord:
    number = next(_ids)
    return PostRecord(
        id=post_id or f"p{number:06d}",
        author_id=author_id,
        content=content,
        is_markdown=False,
        tags=tags,
        image_keys=(),
        created_at=created_at or _BASE + timedelta(seconds=number),
        updated_at=None,
        version=1,
    )


class Clock:
    """A monotonic clock that moves only when a test moves it (``now += seconds``)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# For servers standing for many clients while every request comes from one address.
NO_RATE_LIMITS = {"GQL_API_WRITES_PER_MINUTE": "0", "GQL_API_COST_PER_MINUTE": "0"}


def cli_env(**values: str) -> dict[str, str]:
    """This process's environment without our settings, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GQL_API_")}
    env.pop("CLOUD_PROVIDER", None)
    env.update(values)
    return env


def run_cli(
    args: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``gql-api ARGS`` in a subprocess, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "gql_api", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
