"""Every cache is bounded by the bytes it holds, and charges each entry what it really holds."""

from __future__ import annotations

import gc
import hashlib
import tracemalloc
from datetime import UTC, datetime, timedelta

import pytest

from gql_api.caches import ByteBoundedCache, deep_size
from gql_api.execution import executor
from gql_api.execution.executor import Executor, RequestError
from gql_api.http import persisted
from gql_api.http.persisted import PersistedQueries
from gql_api.images.base import ReadUrlCache
from gql_api.schema.root import schema

WIDE = (
    "query Wide { "
    + " ".join(
        f'a{n}: posts(first: 1, tag: "t{n}") {{ nodes {{ id content tags author {{ userId }} }} }}'
        for n in range(25)
    )
    + " }"
)


def test_the_least_recently_used_go_first_past_the_budget() -> None:
    cache: ByteBoundedCache[str, int] = ByteBoundedCache(max_bytes=100)
    assert cache.put("a", 1, 40) and cache.put("b", 2, 40)
    assert cache.get("a") == 1  # now "b" is the least recently used
    assert cache.put("c", 3, 40)
    assert ("a" in cache, "b" in cache, "c" in cache) == (True, False, True)
    assert cache.bytes == 80
    cache.put("a", 4, 10)  # replacing an entry charges it once
    assert (cache.bytes, cache.get("a")) == (50, 4)


def test_an_entry_larger_than_the_budget_is_not_kept() -> None:
    cache: ByteBoundedCache[str, str] = ByteBoundedCache(max_bytes=100)
    cache.put("small", "x", 10)
    assert not cache.put("huge", "y", 101)
    assert ("huge" in cache, cache.get("small"), cache.bytes) == (False, "x", 10)


def test_the_entry_count_bounds_too() -> None:
    cache: ByteBoundedCache[int, int] = ByteBoundedCache(max_bytes=10**9, max_entries=3)
    for n in range(10):
        cache.put(n, n, 1)
    assert (len(cache), cache.bytes, cache.get(9), cache.get(6)) == (3, 3, 9, None)


@pytest.mark.parametrize(("query", "copies"), [("{ limits { maxTags } }", 200), (WIDE, 30)])
def test_a_cached_document_is_charged_what_it_holds(query: str, copies: int) -> None:
    """The charge is within a quarter of the memory tracemalloc sees freed when the cache
    lets its documents go."""
    checker = Executor(schema)
    gc.collect()  # no garbage of earlier tests freed inside the measure
    tracemalloc.start()
    try:
        for n in range(copies):
            checker.prepare(query + " " * n, None)
        charged = checker.documents.bytes
        gc.collect()
        with_documents = tracemalloc.get_traced_memory()[0]
        checker.documents = ByteBoundedCache(executor.CACHE_BYTES, executor.CACHE_ENTRIES)
        gc.collect()
        held = with_documents - tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert 0.75 * held <= charged <= 1.25 * held, (charged, held)


def test_whitespace_variants_cannot_grow_the_document_cache_past_its_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(executor, "CACHE_BYTES", 2 * 1024 * 1024)
    checker = Executor(schema)
    padded = WIDE + " " * (executor.CACHEABLE_QUERY_LENGTH - len(WIDE) - 200)
    for n in range(150):
        checker.prepare(padded + " " * n, "Wide")
        assert checker.documents.bytes <= 2 * 1024 * 1024
    assert 0 < len(checker.documents) < 150
    assert checker.documents.bytes == sum(size for _, size in checker.documents._entries.values())


def test_a_cached_document_still_locates_its_errors() -> None:
    checker = Executor(schema)
    query = "{\n  posts(first: 1) {\n    nodes { nope }\n  }\n}"
    for _ in range(2):  # parsed, then from the cache
        with pytest.raises(RequestError) as refused:
            checker.prepare(query, None)
        assert refused.value.errors[0]["locations"] == [{"line": 3, "column": 13}]
    valid = checker.prepare("{\n  post(id: 1) { id }\n}", None)
    assert checker.prepare("{\n  post(id: 1) { id }\n}", None) is not None
    field = valid.document.definitions[0].selection_set.selections[0]  # type: ignore[attr-defined]
    assert field.loc is not None and (field.loc.start, field.loc.start_token) == (4, None)
    assert field.loc.source.get_location(field.loc.start).line == 2


def test_persisted_queries_are_bounded_by_bytes() -> None:
    apq = PersistedQueries(max_bytes=1024 * 1024)
    text = "{ limits { maxTags } }" + " " * (persisted.MAX_QUERY_LENGTH - 240)
    for n in range(200):
        query = text + " " * n
        digest = hashlib.sha256(query.encode()).hexdigest()
        extensions = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
        assert apq.resolve(query, extensions) == query
        assert apq.queries.bytes <= 1024 * 1024
    assert 50 < len(apq.queries) < 70  # about 1 MiB / 16 KiB
    assert apq.queries.bytes >= len(apq.queries) * persisted.MAX_QUERY_LENGTH * 0.9


def test_deep_size_counts_shared_objects_once() -> None:
    shared = "x" * 10_000
    assert deep_size([shared, shared]) < deep_size([shared, "y" * 10_000])


def test_signed_read_urls_are_bounded_by_bytes() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    urls = ReadUrlCache(timedelta(hours=1), lambda: now, max_bytes=64 * 1024)
    for n in range(500):
        urls.put(f"alice/{n:022d}.png", "https://storage.example/" + "s" * 900, now)
        assert urls.entries.bytes <= 64 * 1024
    assert 50 < len(urls.entries) < 70  # about 64 KiB / 1 KiB
    assert urls.get("alice/0000000000000000000499.png") is not None
    assert urls.get("alice/0000000000000000000000.png") is None
