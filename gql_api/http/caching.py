"""HTTP caching of anonymous reads (RFC 9110, RFC 9111): which answers a browser or a
shared cache (a CDN) may keep and for how long, and their ETags.

An anonymous GET of a query whose answer has no errors is public for the settings'
seconds (``max-age`` for browsers, ``s-maxage`` for shared caches), narrowed by the
hints of the fields and types it selects; everything else is ``private, no-store``.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLSchema,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    get_named_type,
    visit,
)

from gql_api.caches import ByteBoundedCache

PRIVATE = "private, no-store"
# Why public answers vary: the media type negotiated, and who asks (an Authorization
# header makes a request private, so a cache must never answer it from an anonymous one).
VARY = "Accept, Authorization"
# Fields and types whose answer is the caller's (None: never public) or should be kept
# at most this many seconds. A response selecting one anywhere takes the narrowest.
CACHE_HINTS: dict[str, int | None] = {
    "Query.viewer": None,  # the signed-in caller: null for anonymous, but never shared
    "Viewer": None,
}
CEILINGS_BYTES = 1 << 20  # the texts of the documents whose ceilings are remembered


@dataclass(frozen=True, slots=True)
class CachePolicy:
    max_age: int = 5  # seconds a browser may keep a public answer
    s_maxage: int = 30  # seconds a shared cache (a CDN) may

    def header(self, ceiling: int | None) -> str:
        """The ``Cache-Control`` of an answer whose fields allow ``ceiling`` seconds
        (None: private)."""
        if ceiling is None:
            return PRIVATE
        browser, shared = min(self.max_age, ceiling), min(self.s_maxage, ceiling)
        if browser <= 0 and shared <= 0:
            return PRIVATE
        return f"public, max-age={browser}, s-maxage={shared}"


class _Hints(Visitor):
    def __init__(self, type_info: TypeInfo) -> None:
        super().__init__()
        self.type_info = type_info
        self.ceiling: int | None = 1 << 31
        self.private = False

    def enter_field(self, node: FieldNode, *_: object) -> None:
        parent = self.type_info.get_parent_type()
        field_type = self.type_info.get_type()
        names = [] if parent is None else [f"{parent.name}.{node.name.value}"]
        if field_type is not None:
            names.append(get_named_type(field_type).name)
        for name in names:
            if name in CACHE_HINTS:
                hint = CACHE_HINTS[name]
                if hint is None:
                    self.private = True
                elif self.ceiling is not None:
                    self.ceiling = min(self.ceiling, hint)


def ceiling_of(schema: GraphQLSchema, document: DocumentNode) -> int | None:
    """The most seconds the fields and types a document selects (in any of its
    operations and fragments) let its answers be kept; None: never public."""
    type_info = TypeInfo(schema)
    hints = _Hints(type_info)
    visit(document, TypeInfoVisitor(type_info, hints))
    return None if hints.private else hints.ceiling


class CacheRules:
    """The ``Cache-Control`` of each query's answers: the policy, narrowed by the hints
    of what the query selects (worked out once per document text)."""

    def __init__(self, schema: GraphQLSchema, policy: CachePolicy) -> None:
        self.schema, self.policy = schema, policy
        self._ceilings: ByteBoundedCache[str, tuple[int | None]] = ByteBoundedCache(CEILINGS_BYTES)

    def header_for(self, query: str, document: DocumentNode) -> str:
        found = self._ceilings.get(query)
        if found is None:
            found = (ceiling_of(self.schema, document),)
            self._ceilings.put(query, found, sys.getsizeof(query) + 64)
        return self.policy.header(found[0])


def etag_of(content: bytes) -> str:
    """A strong validator: the same bytes, the same tag."""
    return f'"{hashlib.blake2b(content, digest_size=16).hexdigest()}"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag`` (its weak comparison, as RFC 9110 says
    for this header: ``W/"x"`` matches ``"x"``)."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False
