"""Firestore store: one document per post, read and written with the async client.

A page is one query on a composite index (``INDEXES``, also ``firestore.indexes.json``);
update and delete are conditional on the update time read; a delete leaves a tombstone for
the change feed (``firestore_changes``). Layout, indexes, retries and scale: README, "The
Firestore store".
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gql_api.domain.records import PostChange, PostChanges, PostRecord, ProfileRecord, apply_changes
from gql_api.stores import firestore_changes
from gql_api.stores.base import (
    AlreadyExists,
    DatabaseUnavailable,
    PageQuery,
    PostPage,
    is_storable_post_id,
    lost_race,
    opened,
    page_of,
    profile_document_id,
    storable_post,
    stored_post_id,
    translated,
    with_etag,
)
from gql_api.stores.documents import DocumentCodec
from gql_api.stores.keyset import from_micros, parse_position, position_of, to_micros

if TYPE_CHECKING:
    from google.cloud.firestore import AsyncClient, AsyncCollectionReference, AsyncQuery

# (name, fields in order) of every composite index the page queries need.
INDEXES: list[tuple[str, list[tuple[str, str]]]] = [
    ("feed", [("createdAt", "DESCENDING"), ("id", "DESCENDING")]),
    ("author", [("authorId", "ASCENDING"), ("createdAt", "DESCENDING"), ("id", "DESCENDING")]),
    ("tag", [("tags", "CONTAINS"), ("createdAt", "DESCENDING"), ("id", "DESCENDING")]),
    (
        "tagAuthor",
        [
            ("tags", "CONTAINS"),
            ("authorId", "ASCENDING"),
            ("createdAt", "DESCENDING"),
            ("id", "DESCENDING"),
        ],
    ),
]


def indexes_document(prefix: str = "") -> dict[str, Any]:
    """The ``firestore.indexes.json`` that production needs (the Firebase CLI's format)."""
    return {
        "indexes": [
            {
                "collectionGroup": f"{prefix}posts",
                "queryScope": "COLLECTION",
                "fields": [
                    {"fieldPath": path, "arrayConfig": "CONTAINS"}
                    if order == "CONTAINS"
                    else {"fieldPath": path, "order": order}
                    for path, order in fields
                ],
            }
            for _, fields in INDEXES
        ],
        "fieldOverrides": [],
    }


class FirestoreStore:
    name = "firestore"

    def __init__(
        self,
        project: str | None = None,
        *,
        database: str | None = None,
        prefix: str = "",
        timeout: float = 5.0,
        change_window: float = firestore_changes.WINDOW,
    ) -> None:
        self.project = project
        self.database = database
        self.prefix = prefix
        self.timeout = timeout
        self._client: AsyncClient | None = None
        self._listening = firestore_changes.Listening(
            project,
            database,
            prefix,
            timeout=timeout,
            window=change_window,
            decode=_record,
            outage=_outage,
        )

    # --- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        from google.api_core import exceptions, retry_async
        from google.cloud import firestore

        # Created here, on the loop that serves requests: the client's channel is bound to it.
        try:
            self._client = firestore.AsyncClient(project=self.project, database=self.database)
        except Exception as error:  # no project or credentials found
            raise DatabaseUnavailable(f"cannot create the Firestore client: {error}") from error
        self._retry = retry_async.AsyncRetry(
            predicate=retry_async.if_exception_type(
                exceptions.Aborted, exceptions.ServiceUnavailable, exceptions.DeadlineExceeded
            ),
            initial=0.05,
            maximum=1.0,
            multiplier=2.0,
            timeout=self.timeout,
        )

    async def close(self) -> None:
        await self._listening.close()  # its feeds end, its sync client is closed
        client, self._client = self._client, None
        # AsyncClient.close() closes only its HTTP session; the gRPC channel is the
        # transport's, and closing it is a coroutine.
        api = None if client is None else client._firestore_api_internal
        if api is not None:
            await api.transport.close()

    async def ping(self) -> None:
        async with self._calling() as client:
            await self._posts(client).document("healthz-probe").get(**self._options())

    # --- posts -------------------------------------------------------------------------

    async def get(self, post_id: str) -> PostRecord | None:
        if not is_storable_post_id(post_id):
            return None
        async with self._calling() as client:
            snapshot = await self._posts(client).document(post_id).get(**self._options())
        return _record(snapshot) if snapshot.exists else None

    async def create(self, post: PostRecord) -> PostRecord:
        from google.api_core import exceptions

        async with self._calling() as client:
            try:
                result = (
                    await self._posts(client)
                    .document(storable_post(post).id)
                    .create(CODEC.post(post) | firestore_changes.written(), **self._options())
                )
            except exceptions.AlreadyExists:
                raise AlreadyExists(post.id) from None
        return _with_etag(post, result.update_time)

    async def update(self, current: PostRecord, changes: PostChanges) -> PostRecord:
        updated = apply_changes(current, changes)
        fields = CODEC.changed(updated) | firestore_changes.written()
        async with self._conditional(current) as (client, option):
            result = (
                await self._posts(client)
                .document(current.id)
                .update(fields, option=option, **self._options())
            )
        return _with_etag(updated, result.update_time)

    async def delete(self, current: PostRecord) -> None:
        async with self._conditional(current) as (client, option):
            # One commit: no delete without its tombstone, the post as last stored.
            batch = client.batch()
            batch.delete(self._posts(client).document(current.id), option=option)
            tombstones = client.collection(self.prefix + firestore_changes.DELETIONS)
            batch.set(tombstones.document(), firestore_changes.tombstone(CODEC.post(current)))
            await batch.commit(**self._options())

    async def changes(self) -> AsyncIterator[PostChange]:
        """Listeners on what is written from now on (``firestore_changes``)."""
        opened(self._client)
        return await self._listening.follow()

    async def list_posts(self, query: PageQuery) -> PostPage:
        from google.cloud.firestore import FieldFilter, Query

        async with self._calling() as client:
            page: AsyncQuery = self._posts(client).limit(query.first + 1)
            if query.tag is not None:
                page = page.where(filter=FieldFilter("tags", "array_contains", query.tag))
            if query.author_id is not None:
                page = page.where(filter=FieldFilter("authorId", "==", query.author_id))
            page = page.order_by("createdAt", direction=Query.DESCENDING).order_by(
                "id", direction=Query.DESCENDING
            )
            if query.after is not None:
                micros, post_id = parse_position(query.after)
                page = page.start_after({"createdAt": from_micros(micros), "id": post_id})
            snapshots = [s async for s in page.stream(**self._options())]
        return page_of([_record(s) for s in snapshots], query.first, position_of)

    async def get_profiles(self, user_ids: Sequence[str]) -> Mapping[str, ProfileRecord]:
        if not user_ids:
            return {}
        by_document = {profile_document_id(uid): uid for uid in user_ids}
        async with self._calling() as client:
            collection = self._profiles(client)
            references = [collection.document(name) for name in by_document]
            profiles = {}
            async for snapshot in client.get_all(references, **self._options()):
                if snapshot.exists:
                    user_id = by_document[snapshot.id]
                    profiles[user_id] = CODEC.profile_record(user_id, snapshot.to_dict() or {})
        return profiles

    async def put_profile(self, profile: ProfileRecord) -> ProfileRecord:
        async with self._calling() as client:
            reference = self._profiles(client).document(profile_document_id(profile.user_id))
            await reference.set(
                CODEC.profile(profile), **self._options()
            )  # one write: replaces it whole
        return profile

    # --- provisioning and checks -------------------------------------------------------

    async def provision(self) -> str:
        if os.environ.get("FIRESTORE_EMULATOR_HOST"):
            return "emulator: it needs no indexes (production's are in firestore.indexes.json)"
        from google.api_core import exceptions
        from google.cloud.firestore_admin_v1.services.firestore_admin import (
            FirestoreAdminAsyncClient,
        )
        from google.cloud.firestore_admin_v1.types import Index

        async with self._calling() as client:
            admin = FirestoreAdminAsyncClient(credentials=client._credentials)
            database = f"projects/{client.project}/databases/{client._database}"
            parent = f"{database}/collectionGroups/{self.prefix}posts"
            created = []
            for name, fields in INDEXES:
                index = Index(
                    query_scope=Index.QueryScope.COLLECTION,
                    fields=[
                        Index.IndexField(field_path=path, array_config="CONTAINS")
                        if order == "CONTAINS"
                        else Index.IndexField(field_path=path, order=order)
                        for path, order in fields
                    ],
                )
                try:
                    await admin.create_index(parent=parent, index=index)
                    created.append(name)
                except exceptions.AlreadyExists:
                    pass
            ttl = await firestore_changes.provision_ttl(admin, database, self.prefix)
        state = f"created {', '.join(created)} (building)" if created else "all there"
        return f"composite indexes on {self.prefix}posts: {state}; {ttl}"

    async def inspect(self) -> list[tuple[bool, str]]:
        """Run each page query shape once: a missing index fails with FAILED_PRECONDITION."""
        from google.api_core import exceptions

        checks: list[tuple[bool, str]] = []
        shapes = {
            "feed": PageQuery(first=1),
            "author": PageQuery(first=1, author_id="gql-api-doctor"),
            "tag": PageQuery(first=1, tag="gql-api-doctor"),
            "tagAuthor": PageQuery(first=1, tag="gql-api-doctor", author_id="gql-api-doctor"),
        }
        for name, fields in INDEXES:
            described = ", ".join(f"{path} {order.lower()}" for path, order in fields)
            try:
                await self.list_posts(shapes[name])
                checks.append((True, f"index {name} ({described}): the query runs"))
            except DatabaseUnavailable as error:
                missing = isinstance(error.__cause__, exceptions.FailedPrecondition)
                fix = "run `gql-api provision` or deploy firestore.indexes.json"
                reason = "missing" if missing else f"query failed: {error}"
                checks.append((False, f"index {name} ({described}): {reason}; fix: {fix}"))
        if not os.environ.get("FIRESTORE_EMULATOR_HOST"):  # the emulator has no TTL policies
            checks.append(await self._inspect_ttl())
        return checks

    async def _inspect_ttl(self) -> tuple[bool, str]:
        from google.cloud.firestore_admin_v1.services.firestore_admin import (
            FirestoreAdminAsyncClient,
        )

        async with self._calling() as client:
            admin = FirestoreAdminAsyncClient(credentials=client._credentials)
            database = f"projects/{client.project}/databases/{client._database}"
            return await firestore_changes.inspect_ttl(admin, database, self.prefix)

    # --- internals ---------------------------------------------------------------------

    def _posts(self, client: AsyncClient) -> AsyncCollectionReference:
        return client.collection(f"{self.prefix}posts")

    def _profiles(self, client: AsyncClient) -> AsyncCollectionReference:
        return client.collection(f"{self.prefix}profiles")

    def _options(self) -> dict[str, Any]:
        return {"retry": self._retry, "timeout": self.timeout}

    @asynccontextmanager
    async def _conditional(self, current: PostRecord) -> AsyncIterator[tuple[AsyncClient, Any]]:
        """A write that applies only to the document as read; else NoSuchPost / VersionConflict."""
        from google.api_core import exceptions
        from google.protobuf.timestamp_pb2 import Timestamp

        stored_post_id(current.id)
        current = await with_etag(current, self.get)
        assert current.etag is not None
        seconds, nanos = (int(part) for part in current.etag.split("."))
        async with self._calling() as client:
            option = client.write_option(last_update_time=Timestamp(seconds=seconds, nanos=nanos))
            try:
                yield client, option
            except (exceptions.FailedPrecondition, exceptions.NotFound):
                raise await lost_race(current.id, self.get) from None

    @asynccontextmanager
    async def _calling(self) -> AsyncIterator[AsyncClient]:
        client = opened(self._client)
        with translated(_outage):
            yield client


def _outage(error: Exception) -> str | None:
    from google.api_core import exceptions

    outages = (
        exceptions.RetryError,
        exceptions.ServiceUnavailable,
        exceptions.DeadlineExceeded,
        exceptions.Aborted,
        exceptions.FailedPrecondition,  # a missing index
        exceptions.PermissionDenied,
        exceptions.Unauthenticated,
        exceptions.ResourceExhausted,
    )
    return f"Firestore: {error}" if isinstance(error, outages) else None


def _moment(value: datetime) -> datetime:
    """Firestore's timestamps (nanosecond subclasses) as plain UTC datetimes."""
    return from_micros(to_micros(value))


def _record(snapshot: Any) -> PostRecord:
    return _with_etag(CODEC.post_record(snapshot.to_dict()), snapshot.update_time)


# Times as Firestore timestamps, absent values as nulls.
CODEC = DocumentCodec("createdAt", "updatedAt", write_time=lambda moment: moment, read_time=_moment)


def _with_etag(post: PostRecord, update_time: Any) -> PostRecord:
    stamp = update_time.timestamp_pb() if hasattr(update_time, "timestamp_pb") else update_time
    return dataclasses.replace(post, etag=f"{stamp.seconds}.{stamp.nanos:09d}")
