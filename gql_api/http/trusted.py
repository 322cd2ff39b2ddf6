"""Trusted documents: with ``GQL_API_TRUSTED_DOCUMENTS`` set, only the operations of a
manifest run, sent by id (``documentId``, or APQ's ``extensions.persistedQuery``) or by
a text that hashes to one of them; anything else is refused with UNTRUSTED_DOCUMENT.

Two manifest formats are read: Apollo's persisted query manifest
(``{"format": "apollo-persisted-query-manifest", "version": 1, "operations": [{"id",
"body", ...}]}``) and GraphQL Code Generator's client-preset ``persisted-documents.json``
(``{"<hash>": "<document>"}``). The file is read once, at start. An introspection-only
document also runs where introspection is allowed, so GraphiQL's schema explorer works
there; GraphiQL's own queries are refused like any other untrusted text.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from graphql import FieldNode, GraphQLError, OperationDefinitionNode, parse

from gql_api.execution.executor import RequestError, request_error

APOLLO_FORMAT = "apollo-persisted-query-manifest"
INTROSPECTION_FIELDS = {"__schema", "__type", "__typename"}
MAX_INTROSPECTION_TOKENS = 2_000  # GraphiQL's introspection query is about 300


class ManifestError(ValueError):
    """The manifest cannot be read: the message names the file and the problem."""


def sha256_of(text: str) -> str:
    # surrogatepass: a lone surrogate (a JSON escape) hashes instead of failing.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _documents(path: Path, manifest: Any) -> dict[str, str]:
    """The manifest's documents by their ids, in either format."""
    if isinstance(manifest, Mapping) and manifest.get("format") == APOLLO_FORMAT:
        if manifest.get("version") != 1:
            raise ManifestError(f"{path}: only version 1 of {APOLLO_FORMAT} is known")
        operations = manifest.get("operations")
        if not isinstance(operations, list):
            raise ManifestError(f"{path}: operations must be a list")
        documents: dict[str, str] = {}
        for number, operation in enumerate(operations):
            if not isinstance(operation, Mapping) or not all(
                isinstance(operation.get(key), str) for key in ("id", "body")
            ):
                raise ManifestError(f"{path}: operation {number} needs an id and a body")
            documents[operation["id"]] = operation["body"]
        return documents
    if isinstance(manifest, Mapping) and all(
        isinstance(key, str) and isinstance(value, str) for key, value in manifest.items()
    ):
        return dict(manifest)  # GraphQL Code Generator's: hash -> document
    raise ManifestError(
        f"{path}: not a manifest: expected Apollo's persisted query manifest or "
        "GraphQL Code Generator's persisted documents (an object of hash to document)"
    )


class TrustedDocuments:
    def __init__(self, documents: Mapping[str, str], *, allow_introspection: bool) -> None:
        self.by_id: dict[str, str] = {}
        for document_id, body in documents.items():
            self.by_id[document_id] = body
            self.by_id[sha256_of(body)] = body  # a text is trusted by its own hash too
        self.allow_introspection = allow_introspection

    @classmethod
    def load(cls, path: Path, *, allow_introspection: bool) -> TrustedDocuments:
        try:
            manifest = json.loads(path.read_bytes())
        except OSError as error:
            raise ManifestError(f"{path}: cannot be read: {error.strerror}") from None
        except ValueError as error:
            raise ManifestError(f"{path}: not JSON: {error}") from None
        documents = _documents(path, manifest)
        if not documents:
            raise ManifestError(f"{path}: holds no operation")
        return cls(documents, allow_introspection=allow_introspection)

    def resolve(self, params: Mapping[str, Any]) -> Any:
        """The text to run: the trusted document the request names, or its own text if
        trusted; ``RequestError`` (UNTRUSTED_DOCUMENT) for anything else."""
        document_id = params.get("documentId")
        extensions = params.get("extensions")
        persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
        if document_id is None and isinstance(persisted, dict):
            document_id = persisted.get("sha256Hash")
        query = params.get("query")
        if document_id is not None:
            body = self.by_id.get(document_id) if isinstance(document_id, str) else None
            if body is None:
                raise _untrusted("no trusted document has this id")
            if isinstance(query, str) and query != body:
                raise RequestError(
                    [request_error("the query is not the document its id names", "BAD_REQUEST")]
                )
            return body
        if not isinstance(query, str):
            return query  # refused with the other malformed requests
        if sha256_of(query) in self.by_id:
            return query
        if self.allow_introspection and _introspection_only(query):
            return query
        raise _untrusted("this text is not one of them")


def _untrusted(why: str) -> RequestError:
    message = (
        "this server runs only its trusted documents (GQL_API_TRUSTED_DOCUMENTS): "
        f"{why}; send a document of the manifest, by its id"
    )
    return RequestError([request_error(message, "UNTRUSTED_DOCUMENT")])


def _introspection_only(query: str) -> bool:
    """Whether every operation of ``query`` asks only for the schema (``__schema``,
    ``__type``, ``__typename``) at its root."""
    try:
        document = parse(query, max_tokens=MAX_INTROSPECTION_TOKENS, no_location=True)
    except GraphQLError:
        return False
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if not operations:
        return False
    for operation in operations:
        for selection in operation.selection_set.selections:
            if not isinstance(selection, FieldNode):
                return False  # a fragment at the root could hold anything
            if selection.name.value not in INTROSPECTION_FIELDS:
                return False
    return True
