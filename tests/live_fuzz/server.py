"""The `gql-api serve` the live fuzz attacks: its limits and what it may say, the
tokens it is attacked with, how it is started, and its log."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import websockets

from gql_api.auth.dev import mint_dev_token
from gql_api.settings import Settings
from tests.helpers import DEV_SECRET, NO_RATE_LIMITS, cli_env
from tests.servers import gql_api_server

PROTOCOL = websockets.Subprotocol("graphql-transport-ws")
DEADLINE = 3.0  # seconds any one reaction of the server may take (they take milliseconds)
MAX_SUBSCRIPTIONS = 3  # GQL_API_MAX_SUBSCRIPTIONS_PER_CONNECTION, low: the fuzz reaches it
INIT_TIMEOUT = 3  # GQL_API_SUBSCRIPTION_INIT_TIMEOUT
OVERSIZED = 1024 * 1024 + 1  # characters: over the server's 1 MiB a message

# The README's codes (docs/contract.md's table) a live operation may be refused with;
# never INTERNAL_SERVER_ERROR, and the local SQLite store is never unavailable.
DOCUMENTED_CODES = frozenset(
    {
        "BAD_USER_INPUT",
        "UNAUTHENTICATED",
        "FORBIDDEN",
        "NOT_FOUND",
        "CONFLICT",
        "BAD_REQUEST",
        "GRAPHQL_PARSE_FAILED",
        "GRAPHQL_VALIDATION_FAILED",
        "QUERY_TOO_DEEP",
        "TOO_MANY_ALIASES",
        "TOO_MANY_TOKENS",
        "TOO_MANY_DIRECTIVES",
        "QUERY_TOO_COMPLEX",
        "VALIDATION_TOO_COMPLEX",
        "RESPONSE_TOO_LARGE",
        "PERSISTED_QUERY_NOT_FOUND",
        "METHOD_NOT_ALLOWED",
        "NOT_ACCEPTABLE",
        "PAYLOAD_TOO_LARGE",
        "RATE_LIMITED",
        "TOO_MANY_SUBSCRIPTIONS",
        "TOO_MANY_CONNECTIONS",
    }
)
# What a server may send (graphql-transport-ws), and the close codes the README names.
SERVER_TYPES = frozenset({"connection_ack", "ping", "pong", "next", "error", "complete"})
CLOSE_CODES = frozenset({1000, 1001, 1012, 1013, 4400, 4401, 4403, 4406, 4408, 4409, 4429})

PROBE_POST = 'mutation { createPost(input: {content: "probe", tags: ["fuzz"]}) { id } }'
FRESH = "subscription { postEvents { kind postId } }"


@dataclass(frozen=True)
class Server:
    url: str
    log: Path
    token: str  # user "fuzzer"
    admin: str  # user "boss", an admin
    expired: str
    foreign: str  # signed with another secret
    tampered: str

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/graphql"


@contextmanager
def start_server(folder: Path) -> Iterator[Server]:
    """A `gql-api serve` on SQLite in ``folder``, its log there too."""
    log = folder / "server.log"
    env = cli_env(
        GQL_API_DEV_SECRET=DEV_SECRET,
        GQL_API_SQLITE_PATH=str(folder / "gql-api.db"),
        GQL_API_MAX_SUBSCRIPTIONS_PER_CONNECTION=str(MAX_SUBSCRIPTIONS),
        GQL_API_SUBSCRIPTION_INIT_TIMEOUT=str(INIT_TIMEOUT),
        GQL_API_SUBSCRIPTION_KEEPALIVE="2",  # the server's pings come in the sequences too
        **NO_RATE_LIMITS,
    )
    settings_ = Settings(dev_secret=DEV_SECRET)
    token = mint_dev_token(settings_, DEV_SECRET, user_id="fuzzer")
    other = "another-secret-0123456789abcdef-012345"
    header, payload, signature = token.split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    with gql_api_server(env, log_path=log) as (url, _):
        yield Server(
            url=url,
            log=log,
            token=token,
            admin=mint_dev_token(settings_, DEV_SECRET, user_id="boss", admin=True),
            expired=mint_dev_token(settings_, DEV_SECRET, user_id="fuzzer", ttl_seconds=-3600),
            foreign=mint_dev_token(Settings(dev_secret=other), other, user_id="fuzzer"),
            tampered=".".join([header, payload, flipped]),
        )


def log_size(server: Server) -> int:
    return server.log.stat().st_size


def assert_no_traceback(server: Server, since: int = 0) -> None:
    with server.log.open("rb") as log:
        log.seek(since)
        said = log.read().decode(errors="replace")
    tracebacks = [line[:3000] for line in said.splitlines() if "Traceback" in line]
    assert not tracebacks, "\n".join(tracebacks)
