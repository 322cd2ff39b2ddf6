"""The change-feed contract: on every store, a follower sees the writes another process
makes on the same database (another store object, with its own connections), in order,
within 2 s, and nothing written before it began to follow."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from gql_api.domain.records import ChangeKind, PostChange
from gql_api.stores.base import ChangeFeed, PostStore
from tests.helpers import record
from tests.test_store_contract import changes_of

DELAY = 2.0  # what the contract allows between a write and its change coming out


def twin(store: PostStore) -> PostStore:
    """Another store on the same database, as another process would open it (the memory
    store has no other process: itself)."""
    name = store.name
    if name == "sqlite":
        from gql_api.stores.sqlite import SqliteStore

        assert isinstance(store, SqliteStore)
        return SqliteStore(store.path)
    if name == "dynamodb":
        from gql_api.stores.dynamodb import DynamoDBStore

        assert isinstance(store, DynamoDBStore)
        return DynamoDBStore(store.table, endpoint_url=store.endpoint_url)
    if name == "firestore":
        from gql_api.stores.firestore import FirestoreStore

        assert isinstance(store, FirestoreStore)
        return FirestoreStore(store.project, database=store.database, prefix=store.prefix)
    if name == "cosmos":
        from gql_api.stores.cosmos import CosmosStore

        assert isinstance(store, CosmosStore)
        return CosmosStore(
            store.url,
            key=store.key,
            database=store.database_name,
            verify_tls=store.verify_tls,
        )
    return store


@contextlib.asynccontextmanager
async def writer_beside(store: PostStore) -> AsyncIterator[PostStore]:
    other = twin(store)
    if other is store:
        yield store
        return
    await other.open()
    try:
        yield other
    finally:
        await other.close()


def feed_of(store: PostStore) -> ChangeFeed:
    assert hasattr(store, "changes"), f"{store.name} has no change feed"
    return store  # type: ignore[return-value]


async def next_change(changes: AsyncIterator[PostChange]) -> PostChange:
    async with asyncio.timeout(DELAY):
        return await anext(changes)


async def test_a_follower_sees_another_process_create_edit_and_delete(store: PostStore) -> None:
    before = await store.create(record(content="written before following"))
    changes = await feed_of(store).changes()
    try:
        async with writer_beside(store) as other:
            created = await other.create(record(tags=("news", "tech"), author_id="bob"))
            seen = await next_change(changes)
            assert seen.kind is ChangeKind.CREATED
            assert seen.post == created  # not the post written before following
            updated = await other.update(created, changes_of(created, tags=("news",)))
            seen = await next_change(changes)
            assert (seen.kind, seen.post) == (ChangeKind.UPDATED, updated)
            await other.delete(updated)
            seen = await next_change(changes)
            assert seen.kind is ChangeKind.DELETED
            # What filters are matched against: the post as it was last stored.
            assert (seen.post.id, seen.post.version) == (updated.id, 2)
            assert (seen.post.author_id, seen.post.tags) == ("bob", ("news",))
            assert before.id not in {seen.post.id}
    finally:
        await changes.aclose()  # type: ignore[attr-defined]


async def test_changes_of_many_posts_come_in_each_posts_version_order(store: PostStore) -> None:
    changes = await feed_of(store).changes()
    try:
        async with writer_beside(store) as other:
            posts = [await other.create(record()) for _ in range(5)]
            for post in posts:
                await other.update(post, changes_of(post, content="edited"))
            versions: dict[str, list[int]] = {}
            async with asyncio.timeout(DELAY * 3):
                while sum(map(len, versions.values())) < 10:
                    change = await anext(changes)
                    versions.setdefault(change.post.id, []).append(change.post.version)
            # At least once: a repeat of a version is allowed, going back is not.
            assert set(versions) == {p.id for p in posts}
            for seen in versions.values():
                assert seen == sorted(seen) and set(seen) == {1, 2}
    finally:
        await changes.aclose()  # type: ignore[attr-defined]


async def test_two_followers_each_see_every_change(store: PostStore) -> None:
    first, second = await feed_of(store).changes(), await feed_of(store).changes()
    try:
        created = await store.create(record())
        assert (await next_change(first)).post == created
        assert (await next_change(second)).post == created
    finally:
        await first.aclose()  # type: ignore[attr-defined]
        await second.aclose()  # type: ignore[attr-defined]


@pytest.mark.parametrize("store", ["memory", "sqlite"], indirect=True)
async def test_a_closed_follower_holds_nothing(store: PostStore) -> None:
    changes = await feed_of(store).changes()
    await changes.aclose()  # type: ignore[attr-defined]
    await store.create(record())  # no follower to deliver to: nothing is kept for it
    assert getattr(store, "_followers", set()) == set()
