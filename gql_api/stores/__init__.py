"""Store selection. Each store's module (and SDK) is imported only when it is chosen."""

from __future__ import annotations

from gql_api.settings import Settings
from gql_api.stores.base import PostStore


def create_store(settings: Settings) -> PostStore:
    if settings.store == "memory":
        from gql_api.stores.memory import MemoryStore

        return MemoryStore()
    from gql_api.stores.sqlite import SqliteStore

    return SqliteStore(settings.sqlite_path)
