"""What durable SQLite writes cost: createPost through the store with synchronous FULL
(the default: an acknowledged write survives a power loss) against NORMAL (WAL mode may
lose the last acknowledged writes), side by side in one run.

Each round creates ``--posts`` posts (two tags each) one after another, then as many 16
at a time, on a fresh database file for each mode; the modes alternate and each figure
is the median of the rounds. The file lives under ``--dir`` (the working directory by
default: put it on the disk the server would use, not a tmpfs).
Usage: python bench/sqlite_durability.py [--posts 500] [--rounds 3] [--dir .]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gql_api.domain.records import PostRecord  # noqa: E402
from gql_api.stores.sqlite import SqliteStore, SqliteSynchronous  # noqa: E402

MODES: tuple[SqliteSynchronous, ...] = ("full", "normal")
CONCURRENCY = 16


def new_post(n: int) -> PostRecord:
    return PostRecord(
        id=uuid.uuid4().hex,
        author_id=f"user{n % 50}",
        content=f"post number {n} " * 8,
        is_markdown=False,
        tags=("bench", f"t{n % 7}"),
        image_keys=(),
        created_at=datetime.now(UTC),
        updated_at=None,
        version=1,
    )


async def creates_per_second(
    folder: Path, mode: SqliteSynchronous, posts: int
) -> tuple[float, float]:
    store = SqliteStore(folder / f"{mode}-{uuid.uuid4().hex}.db", synchronous=mode)
    await store.open()
    try:
        started = time.perf_counter()
        for n in range(posts):
            await store.create(new_post(n))
        one_by_one = posts / (time.perf_counter() - started)
        counter = iter(range(posts))

        async def writer() -> None:
            for n in counter:
                await store.create(new_post(n))

        started = time.perf_counter()
        await asyncio.gather(*(writer() for _ in range(CONCURRENCY)))
        concurrent = posts / (time.perf_counter() - started)
    finally:
        await store.close()
    return one_by_one, concurrent


async def run(posts: int, rounds: int, directory: Path) -> None:
    figures: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        for _ in range(rounds):
            for mode in MODES:
                figures[mode].append(await creates_per_second(Path(scratch), mode, posts))
    medians = {
        mode: (
            statistics.median(f[0] for f in figures[mode]),
            statistics.median(f[1] for f in figures[mode]),
        )
        for mode in MODES
    }
    print(f"{posts} creates per round, {rounds} rounds, medians (creates/s):")
    print("| synchronous | one at a time | 16 at a time |")
    print("| --- | --- | --- |")
    for mode in MODES:
        print(f"| {mode.upper()} | {medians[mode][0]:,.0f} | {medians[mode][1]:,.0f} |")
    full, normal = medians["full"], medians["normal"]
    print(
        f"FULL / NORMAL: {full[0] / normal[0]:.2f}x one at a time, "
        f"{full[1] / normal[1]:.2f}x 16 at a time"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path.cwd())
    arguments = parser.parse_args()
    asyncio.run(run(arguments.posts, arguments.rounds, arguments.dir))


if __name__ == "__main__":
    main()
