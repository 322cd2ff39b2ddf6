"""Store selection. Each store's module (and SDK) is imported only when it is chosen."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from gql_api.settings import Settings
from gql_api.stores.base import PostStore


@runtime_checkable
class Preparable(Protocol):
    """A store that can load its SDK ahead of the first request, opening nothing."""

    def prepare(self) -> None: ...


def create_store(settings: Settings) -> PostStore:
    if settings.store == "memory":
        from gql_api.stores.memory import MemoryStore

        return MemoryStore()
    if settings.store == "dynamodb":
        from gql_api.stores.dynamodb import DynamoDBStore

        return DynamoDBStore(
            settings.dynamodb_table,
            endpoint_url=settings.dynamodb_endpoint,
            timeout=settings.store_timeout,
            feed_shards=settings.dynamodb_feed_shards,
        )
    if settings.store == "firestore":
        from gql_api.stores.firestore import FirestoreStore

        return FirestoreStore(
            settings.firestore_project,
            database=settings.firestore_database,
            prefix=settings.firestore_prefix,
            timeout=settings.store_timeout,
        )
    if settings.store == "cosmos":
        from gql_api.stores.cosmos import CosmosStore

        assert settings.cosmos_url is not None  # validated with the settings
        key = settings.cosmos_key
        return CosmosStore(
            settings.cosmos_url,
            key=None if key is None else key.get_secret_value(),
            database=settings.cosmos_database,
            verify_tls=settings.cosmos_verify_tls,
            timeout=settings.store_timeout,
        )
    from gql_api.stores.sqlite import SqliteStore

    return SqliteStore(
        settings.sqlite_path,
        timeout=settings.store_timeout,
        synchronous=settings.sqlite_synchronous,
    )
