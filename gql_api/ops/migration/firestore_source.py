"""The earlier service's Firestore collections, read through the async client (never written).

Collections ``posts`` and ``profiles``, one document per post or profile. A page is one
query ordered by document id, ``start_after`` the last id read; its position is that id.
The client honours ``FIRESTORE_EMULATOR_HOST``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from gql_api.ops.migration.sources import (
    Kind,
    LegacyPage,
    LegacyRow,
    SourceUnavailable,
    decode_position,
    page_of,
)
from gql_api.settings import Settings

if TYPE_CHECKING:
    from google.cloud.firestore import AsyncClient, AsyncCollectionReference

DEFAULT_DATABASE = "(default)"
EMULATOR_PROJECT = "google-cloud-firestore-emulator"  # the SDK's, with no project set


class FirestoreSource:
    name = "firestore"

    def __init__(
        self,
        project: str | None,
        *,
        database: str = DEFAULT_DATABASE,
        posts_collection: str = "posts",
        profiles_collection: str = "profiles",
        timeout: float = 10.0,
    ) -> None:
        self.project = project
        self.database = database
        self.collections = {Kind.POSTS: posts_collection, Kind.PROFILES: profiles_collection}
        self.timeout = timeout  # per call, its retries included
        self._client: AsyncClient | None = None
        self._retry: Any = None

    @property
    def location(self) -> str:
        posts, profiles = self.collections.values()
        return (
            f"firestore project {self._project() or '(from credentials)'} database "
            f"{self.database} collections {posts}, {profiles}"
        )

    def overlaps(self, settings: Settings) -> str | None:
        if settings.store != "firestore":
            return None
        # An unknown project (found by the credentials only) may be this one: refuse then.
        source, target = self._project(), settings.firestore_project or _configured_project()
        if source is not None and target is not None and source != target:
            return None
        if (settings.firestore_database or DEFAULT_DATABASE) != self.database:
            return None
        from gql_api.stores.firestore_changes import DELETIONS

        prefix = settings.firestore_prefix
        written = {prefix + "posts", prefix + "profiles", prefix + DELETIONS}
        shared = sorted(written & set(self.collections.values()))
        if not shared:
            return None
        return (
            f"gql-api's Firestore store would write into the legacy collection(s) "
            f"{', '.join(shared)} of project {source or target or '(from credentials)'} "
            f"database {self.database}; set GQL_API_FIRESTORE_PREFIX (or "
            "GQL_API_FIRESTORE_DATABASE to another database)"
        )

    async def open(self) -> None:
        from google.api_core import exceptions, retry_async
        from google.cloud import firestore

        try:
            self._client = firestore.AsyncClient(project=self.project, database=self.database)
        except Exception as error:  # no project or no credentials found
            raise SourceUnavailable(f"cannot create the Firestore client: {error}") from error
        self._retry = retry_async.AsyncRetry(
            predicate=retry_async.if_exception_type(
                exceptions.ServiceUnavailable,
                exceptions.DeadlineExceeded,
                exceptions.ResourceExhausted,
            ),
            initial=0.1,
            maximum=2.0,
            timeout=self.timeout,
        )

    async def close(self) -> None:
        client, self._client = self._client, None
        # The gRPC channel is the transport's, and closing it is a coroutine.
        if client is not None and client._firestore_api_internal is not None:
            await client._firestore_api_internal.transport.close()

    async def count(self, kind: Kind) -> int:
        with self._reading() as client:
            counting = self._collection(client, kind).count()  # type: ignore[no-untyped-call]
            results = await counting.get(**self._options())
        return int(results[0][0].value)

    async def page(self, kind: Kind, after: str | None, size: int) -> LegacyPage:
        from google.cloud.firestore_v1.field_path import FieldPath

        last = None if after is None else _document_id(decode_position(kind, after))
        with self._reading() as client:
            query = self._collection(client, kind).order_by(FieldPath.document_id())
            if last is not None:
                query = query.start_after({FieldPath.document_id(): last})
            # One document past the page: the last page knows it is the last.
            found = [s async for s in query.limit(size + 1).stream(**self._options())]
        return page_of(kind, [LegacyRow(s.id, s.to_dict() or {}) for s in found], size)

    # --- internals ---------------------------------------------------------------------

    def _project(self) -> str | None:
        if self._client is not None:
            return str(self._client.project)
        return self.project or _configured_project()

    def _collection(self, client: AsyncClient, kind: Kind) -> AsyncCollectionReference:
        return client.collection(self.collections[kind])

    def _options(self) -> dict[str, Any]:
        return {"retry": self._retry, "timeout": self.timeout}

    @contextmanager
    def _reading(self) -> Iterator[AsyncClient]:
        """The open client; throttling and outages become ``SourceUnavailable``."""
        from google.api_core import exceptions

        if self._client is None:
            raise SourceUnavailable("the Firestore source is not open")
        outages = (
            exceptions.RetryError,  # the retries' deadline passed
            exceptions.ServiceUnavailable,
            exceptions.DeadlineExceeded,
            exceptions.ResourceExhausted,
        )
        try:
            yield self._client
        except outages as error:
            raise SourceUnavailable(f"Firestore: {error}") from error


def _configured_project() -> str | None:
    """The project a client finds in the environment with none given (as the SDK does)."""
    found = os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GCLOUD_PROJECT")
    return found or (EMULATOR_PROJECT if os.environ.get("FIRESTORE_EMULATOR_HOST") else None)


def _document_id(value: str) -> str:
    """A decoded position, checked to name a document of the collection itself."""
    if "/" in value or value in {".", ".."} or len(value.encode()) > 1500:
        raise ValueError(f"not a Firestore document id: {value!r}")
    return value
