"""Automatic persisted queries (Apollo's APQ protocol).

A client sends ``extensions.persistedQuery = {version: 1, sha256Hash}`` with the query
once; afterwards the hash alone (a short GET URL a CDN can cache) stands for it. An
unknown hash answers ``PERSISTED_QUERY_NOT_FOUND`` and the client sends the query again.
Each process keeps its own bounded cache, so a new instance simply relearns.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

from gql_api.executor import RequestError, request_error

ENTRIES = 2048
MAX_QUERY_LENGTH = 16 * 1024


class PersistedQueries:
    def __init__(self, entries: int = ENTRIES) -> None:
        self._queries: OrderedDict[str, str] = OrderedDict()
        self._entries = entries

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
            known = self._queries.get(digest)
            if known is None:
                raise RequestError(
                    [request_error("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")]
                )
            self._queries.move_to_end(digest)
            return known
        if not isinstance(query, str):
            return query  # refused with the other malformed requests
        if hashlib.sha256(query.encode()).hexdigest() != digest:
            raise RequestError([request_error("provided sha does not match query", "BAD_REQUEST")])
        if len(query) <= MAX_QUERY_LENGTH:
            self._queries[digest] = query
            self._queries.move_to_end(digest)
            while len(self._queries) > self._entries:
                self._queries.popitem(last=False)
        return query
