"""Automatic persisted queries (Apollo's APQ protocol).

A client sends ``extensions.persistedQuery = {version: 1, sha256Hash}`` with the query
once; afterwards the hash alone (a short GET URL a CDN can cache) stands for it. An
unknown hash answers ``PERSISTED_QUERY_NOT_FOUND`` and the client sends the query again.
Each process keeps its own cache, bounded by the bytes of the texts it holds, so a new
instance simply relearns.
"""

from __future__ import annotations

import hashlib
import sys
from typing import Any

from gql_api.caches import ByteBoundedCache
from gql_api.execution.executor import RequestError, request_error

ENTRIES = 2048
MAX_QUERY_LENGTH = 16 * 1024
# What the query texts may hold in all: a few thousand real queries, whatever is sent.
MAX_BYTES = 4 * 1024 * 1024
ENTRY_OVERHEAD = 120  # the cache's own bookkeeping per entry (its ordered dict node)


class PersistedQueries:
    def __init__(self, entries: int = ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self.queries: ByteBoundedCache[str, str] = ByteBoundedCache(max_bytes, entries)

    def resolve(self, query: Any, extensions: Any) -> Any:
        """The query text to run: ``query`` itself, or the one its hash stands for."""
        persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
        if persisted is None:
            return query
        if not isinstance(persisted, dict) or persisted.get("version") != 1:
            raise RequestError(
                [request_error("unsupported persisted query version", "BAD_REQUEST")]
            )
        digest = persisted.get("sha256Hash")
        if not isinstance(digest, str) or len(digest) != 64:
            raise RequestError([request_error("sha256Hash must be 64 hex digits", "BAD_REQUEST")])
        digest = digest.lower()
        if query is None:
            known = self.queries.get(digest)
            if known is None:
                raise RequestError(
                    [request_error("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")]
                )
            return known
        if not isinstance(query, str):
            return query  # refused with the other malformed requests
        # surrogatepass: a lone surrogate (a JSON escape) hashes instead of failing; the
        # query is then refused by the parser like any other malformed text.
        if hashlib.sha256(query.encode("utf-8", "surrogatepass")).hexdigest() != digest:
            raise RequestError([request_error("provided sha does not match query", "BAD_REQUEST")])
        if len(query) <= MAX_QUERY_LENGTH:
            size = sys.getsizeof(digest) + sys.getsizeof(query) + ENTRY_OVERHEAD
            self.queries.put(digest, query, size)
        return query
