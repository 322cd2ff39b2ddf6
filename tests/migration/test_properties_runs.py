"""Properties of a migration run: one crashed anywhere (a page, a create, a checkpoint) and
resumed until done, each run on an event loop of its own as each ``gql-api migrate`` process
is, ends as the model says and lists each finding once; and a dry run counts what a run would.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import event, given, note
from hypothesis import strategies as st
from tenacity import wait_none

from gql_api.domain.records import PostRecord, ProfileRecord
from gql_api.ops.migration import checkpoint as checkpoints
from gql_api.ops.migration.calls import CallOptions, Calls
from gql_api.ops.migration.legacy import convert, record_key
from gql_api.ops.migration.runner import Migration, Outcome, StrictStop
from gql_api.ops.migration.sources import Kind, LegacyRow
from gql_api.ops.migration.verify import verify
from gql_api.stores.base import PageQuery
from gql_api.stores.sqlite import SqliteStore
from tests.migration.legacy_strategies import (
    USERS,
    Book,
    Interrupted,
    Target,
    Throttle,
    crashes,
    sources,
    throttles,
)
from tests.migration.test_runner import ListSource, Quiet, legacy
from tests.property_strategies import FEW

# --------------------------------------------------------------------------------------
# Properties 3 and 4: crash anywhere, resume until done
# --------------------------------------------------------------------------------------


@contextmanager
def no_backoff() -> Iterator[None]:
    """Retries without their pauses (the code's own policy otherwise)."""
    with mock.patch(
        "gql_api.ops.migration.calls.wait_exponential_jitter", return_value=wait_none()
    ):
        yield


def new_migration(
    folder: Path, source: ListSource, store: SqliteStore, page_size: int, **options: Any
) -> Migration:
    return Migration(
        source,
        store,
        Calls(CallOptions(page_size=page_size, attempts=6)),
        Quiet(),
        checkpoint_path=folder / "checkpoint.json",
        report_path=folder / "report.jsonl",
        target="sqlite target",
        **options,
    )


async def one_run(
    folder: Path,
    source: ListSource,
    page_size: int,
    book: Book,
    crash: tuple[str, int] | None,
    throttle: Throttle | None,
    **options: Any,
) -> Outcome:
    store = Target(folder / "target.db", book, crash, throttle)
    await store.open()
    try:
        migration = new_migration(folder, source, store, page_size, **options)
        real_page = migration._page
        pages = 0

        async def page(kind: Kind, rows: Any, done: Any) -> Any:
            nonlocal pages
            pages += 1
            store._crash("page_before", pages)
            findings = await real_page(kind, rows, done)
            store._crash("page_after", pages)
            return findings

        migration._page = page  # type: ignore[method-assign]
        real_save = checkpoints.save
        saves = 0

        def save(path: Path, state: checkpoints.Checkpoint) -> None:
            nonlocal saves
            saves += 1
            store._crash("save", saves)  # the report is flushed, the checkpoint not yet
            real_save(path, state)
            book.saved()

        with mock.patch.object(checkpoints, "save", save):
            return await migration.run()
    finally:
        await store.close()


def run_until_done(
    folder: Path,
    source: ListSource,
    page_size: int,
    plan: list[tuple[str, int]],
    throttle: Throttle | None,
    book: Book,
) -> tuple[Outcome, int]:
    """Runs, one crash point each, then one without: the last run's outcome, and how many
    runs the crashes really stopped."""
    stopped = 0
    for crash in [*plan, None]:
        try:
            with no_backoff():
                outcome = asyncio.run(one_run(folder, source, page_size, book, crash, throttle))
        except Interrupted:
            book.lost()
            stopped += 1
            continue
        if crash is None or not outcome.finished_before:
            last = outcome
        if crash is None:
            return last, stopped
    raise AssertionError("unreachable")


@dataclass
class Model:
    """What a migration must end with: per kind, the record kept for each id (the first
    row that converts, in source order), and what each row must be counted as."""

    kept: dict[Kind, dict[str, PostRecord | ProfileRecord]]
    repaired: dict[Kind, dict[str, bool]]  # the kept record came with a repair
    matching: dict[Kind, int]  # rows whose record is the kept one: written or already
    findings: Counter[tuple[str, str, str, str]]  # (kind, ref, rule, outcome) the report lists

    @classmethod
    def of(cls, rows: dict[Kind, list[dict[str, Any]]]) -> Model:
        model = cls({k: {} for k in Kind}, {k: {} for k in Kind}, dict.fromkeys(Kind, 0), Counter())
        for kind in Kind:
            for index, data in enumerate(rows[kind]):
                converted = convert(kind, LegacyRow(str(index), data))
                for finding in converted.findings:
                    outcome = "repaired" if finding.repaired else "left behind"
                    model.findings[(kind.value, str(index), finding.rule, outcome)] += 1
                record = converted.record
                if record is None:
                    continue
                key = record_key(record)
                kept = model.kept[kind].setdefault(key, record)
                if kept == record:
                    model.matching[kind] += 1
                    model.repaired[kind].setdefault(key, bool(converted.findings))
                else:
                    model.findings[(kind.value, str(index), "duplicate_id", "left behind")] += 1
        return model


async def target_content(
    folder: Path,
) -> tuple[dict[str, PostRecord], dict[str, ProfileRecord]]:
    store = SqliteStore(folder / "target.db", synchronous="normal")
    await store.open()
    try:
        posts = (await store.list_posts(PageQuery(first=1000))).posts
        profiles = await store.get_profiles([f"user-{i}" for i in range(USERS)])
        return {p.id: p for p in posts}, dict(profiles)
    finally:
        await store.close()


async def verified(folder: Path, source: ListSource) -> Any:
    store = SqliteStore(folder / "target.db", synchronous="normal")
    await store.open()
    try:
        return await verify(source, store, Calls(CallOptions(page_size=3)), Quiet())
    finally:
        await store.close()


def report_lines(folder: Path) -> Counter[tuple[str, str, str, str]]:
    path = folder / "report.jsonl"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    assert text == "" or text.endswith("\n"), "the report ends in half a line"
    lines = [json.loads(line) for line in text.splitlines()]
    return Counter((d["kind"], d["ref"], d["rule"], d["outcome"]) for d in lines)


def check_counts(outcome: Outcome, model: Model, rows: dict[Kind, list[Any]], book: Book) -> None:
    for kind in Kind:
        counts = outcome.counts[kind.value]
        persisted = [key for k, key in book.persisted if k is kind]
        note(f"{kind.value}: {counts}, persisted writes {persisted}")
        assert counts.read == len(rows[kind])
        assert counts.written + counts.already + counts.left_behind == counts.read
        assert counts.written + counts.already == model.matching[kind]
        assert counts.left_behind == len(rows[kind]) - model.matching[kind]
        # "written" is the writes a saved checkpoint counted: each was a create (or put)
        # that succeeded, in a page no crash made the next run do again (and was answered).
        answered = [key for key in persisted if key not in book.lost_answers]
        assert counts.written == len(answered)
        assert counts.repaired == sum(model.repaired[kind][key] for key in answered)


@FEW
@given(sources(), st.integers(1, 7), crashes, throttles)
def test_crashed_and_resumed_migrations_end_as_the_model_says(
    rows: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    page_size: int,
    plan: list[tuple[str, int]],
    throttle: Throttle | None,
) -> None:
    _crash_and_resume(rows, page_size, plan, throttle)


@FEW
@given(sources(), st.integers(1, 7), crashes)
def test_crashed_and_resumed_migrations_without_throttling_end_as_the_model_says(
    rows: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    page_size: int,
    plan: list[tuple[str, int]],
) -> None:
    _crash_and_resume(rows, page_size, plan, None)


def _crash_and_resume(
    rows: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    page_size: int,
    plan: list[tuple[str, int]],
    throttle: Throttle | None,
) -> None:
    posts, profiles = rows
    source = ListSource(posts, profiles)
    by_kind = {Kind.POSTS: posts, Kind.PROFILES: profiles}
    model = Model.of(by_kind)
    book = Book()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        outcome, stopped = run_until_done(folder, source, page_size, plan, throttle, book)
        note(f"runs stopped by a crash: {stopped}")
        event(f"runs stopped by a crash: {stopped}")
        event(f"duplicate ids: {len(posts) - len({p.get('postId') for p in posts}) > 0}")
        stored_posts, stored_profiles = asyncio.run(target_content(folder))
        assert stored_posts == model.kept[Kind.POSTS]
        assert stored_profiles == model.kept[Kind.PROFILES]
        assert all(n == 1 for n in book.creates.values()), book.creates  # never twice
        state = checkpoints.load(folder / "checkpoint.json", source.location, "sqlite target")
        assert state.done and state.position is None
        assert {k: vars_of(v) for k, v in state.counts.items()} == {
            k: vars_of(v) for k, v in outcome.counts.items()
        }
        check_counts(outcome, model, by_kind, book)
        # Property 4: each finding listed once, whatever the crashes.
        assert report_lines(folder) == model.findings
        assert state.report_bytes == (folder / "report.jsonl").stat().st_size
        result = asyncio.run(verified(folder, source))
        assert result.ok, result.mismatches
        tally = result.tallies["posts"]
        assert tally.matching == len(model.kept[Kind.POSTS])


def vars_of(counts: Any) -> tuple[int, ...]:
    return (counts.read, counts.written, counts.already, counts.left_behind, counts.repaired)


# Minimal reproductions of the runner's defects, found by the properties above.


def test_a_retried_create_of_a_post_already_there_is_counted_already() -> None:
    outcome, _ = _retry_after_lost_page()
    assert (outcome.counts["posts"].written, outcome.counts["posts"].already) == (0, 1)


def _retry_after_lost_page() -> tuple[Outcome, Book]:
    """One post; the first run writes it and crashes before its checkpoint; the second
    run's first create is throttled without writing, and its retry finds the post there.
    (The first run's first try is throttled too: the crash is after its second.)"""
    source = ListSource([legacy(1)], [])
    book = Book()
    with tempfile.TemporaryDirectory() as name:
        outcome, stopped = run_until_done(
            Path(name), source, 1, [("create_after", 2)], Throttle(calls=frozenset({1})), book
        )
    assert stopped == 1 and book.persisted == [] and len(book.creates) == 1
    return outcome, book


def test_an_identical_row_again_is_counted_already_even_when_its_create_is_retried() -> None:
    source = ListSource([legacy(1), legacy(1)], [])
    with tempfile.TemporaryDirectory() as name:
        outcome, _ = run_until_done(Path(name), source, 2, [], Throttle(every=2), Book())
    assert (outcome.counts["posts"].written, outcome.counts["posts"].already) == (1, 1)


# --------------------------------------------------------------------------------------
# A dry run counts what a run would
# --------------------------------------------------------------------------------------


async def counted(folder: Path, source: ListSource, page_size: int, *, dry_run: bool) -> Outcome:
    store = SqliteStore(folder / "target.db", synchronous="normal")
    await store.open()
    try:
        migration = new_migration(folder, source, store, page_size, dry_run=dry_run)
        return await migration.run()
    finally:
        await store.close()


@FEW
@given(sources(), st.integers(1, 7))
def test_a_dry_run_counts_what_a_run_then_does(
    rows: tuple[list[dict[str, Any]], list[dict[str, Any]]], page_size: int
) -> None:
    source = ListSource(*rows)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        dry = asyncio.run(counted(folder, source, page_size, dry_run=True))
        dry_report = report_lines(folder)
        assert asyncio.run(target_content(folder)) == ({}, {})
        real = asyncio.run(counted(folder, source, page_size, dry_run=False))
        assert {k: vars_of(v) for k, v in dry.counts.items()} == {
            k: vars_of(v) for k, v in real.counts.items()
        }
        assert dry_report == report_lines(folder)


def test_minimal_dry_run_of_an_identical_row_twice() -> None:
    source = ListSource([legacy(1), legacy(1)], [])
    with tempfile.TemporaryDirectory() as name:
        dry = asyncio.run(counted(Path(name), source, 10, dry_run=True))
    assert vars_of(dry.counts["posts"]) == (2, 1, 1, 0, 0)  # what a run counts


# --------------------------------------------------------------------------------------
# Property 4, targeted: the report's length in the checkpoint
# --------------------------------------------------------------------------------------


def test_the_report_length_in_the_checkpoint_is_the_reports_own_after_a_resume() -> None:
    """A strict run stops with its finding in the report but not in the checkpoint; the
    row fixed, the resumed run cuts the report back and redoes that page, which has no
    findings now. The checkpoint must say the length the report has."""
    posts = [legacy(0), legacy(1, content=" "), legacy(2)]
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        with pytest.raises(StrictStop):
            asyncio.run(one_run(folder, ListSource(posts, []), 2, Book(), None, None, strict=True))
        posts[1] = legacy(1)
        asyncio.run(one_run(folder, ListSource(posts, []), 2, Book(), None, None))
        state = checkpoints.load(folder / "checkpoint.json", "a list", "sqlite target")
        assert state.report_bytes == (folder / "report.jsonl").stat().st_size == 0


def test_a_finding_is_listed_once_after_a_strict_stop_a_fix_and_a_crash() -> None:
    """As above, and the page after (with a finding) crashes between the report's flush
    and its checkpoint: the next run cuts the report to the stale, too long length,
    keeps that page's line, and lists it again."""
    posts = [legacy(0), legacy(1, content=" "), legacy(2), legacy(3, content=" ")]
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        with pytest.raises(StrictStop):
            asyncio.run(one_run(folder, ListSource(posts, []), 2, Book(), None, None, strict=True))
        posts[1] = legacy(1)
        source = ListSource(posts, [])
        with pytest.raises(Interrupted):  # the posts' second page: its report flushed, not saved
            asyncio.run(one_run(folder, source, 2, Book(), ("save", 2), None))
        asyncio.run(one_run(folder, source, 2, Book(), None, None))
        assert report_lines(folder) == Counter({("posts", "3", "bad_content", "left behind"): 1})
