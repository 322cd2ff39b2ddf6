"""`gql-api migrate` on each local server: a 10,000-post migration, timed step by step.

For each legacy source (dynamodb on moto's server, firestore on Google's emulator, cosmos
on @vercel/cosmosdb-server) the server is started, 10,000 legacy posts and the profiles
(tests/legacy_seed.py) are seeded with the cloud's SDK, and then, for each target (the
gql-api store on the same server, and the embedded SQLite store), `python -m gql_api
migrate --rate 0` runs as a subprocess, as an operator runs it:

- dry run:  `--dry-run` (reads everything, asks the target for each record, writes nothing);
- migrate:  the migration into the empty target (provisioned first);
- verify:   `--verify` on the finished migration's checkpoint ("done": nothing read
            again), then every record compared, field by field;
- rerun:    the checkpoint deleted: everything read again and found there, nothing written.

Each step's seconds are the subprocess's wall clock (its start and imports included),
its peak RSS from `/usr/bin/time -v`. The summary it prints is checked: written ==
the valid rows, verify says "verified". The baseline, in the same run: a bare read of
every legacy row through the same source class in this process (`page()` after `page()`, no
conversion, no writes; the faster of two reads). Servers run on core 0, this script,
the migrations and the bare reads on core 1 (when there are 2 cores).

Usage: .venv/bin/python bench/migration.py [--posts 10000]
       [--sources dynamodb,firestore,cosmos] [--targets same,sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gql_api.ops.migration.legacy import convert, record_key  # noqa: E402
from gql_api.ops.migration.sources import Kind, LegacyRow, LegacySource  # noqa: E402
from tests import legacy_seed, servers  # noqa: E402
from tests.conftest import COSMOS_KEY  # noqa: E402
from tests.helpers import cli_env  # noqa: E402

PAGE = 100  # the command's default --page-size, for the bare read too
TIME = Path("/usr/bin/time")
LEGACY_PROJECT, TARGET_PROJECT = "demo-bench-legacy", "demo-bench-target"
LEGACY_DATABASE, TARGET_DATABASE = "benchlegacy", "bench-target"
LEGACY_TABLE, TARGET_TABLE = "legacy-bench", "gql-api-bench"
STARTS: dict[str, Callable[[], AbstractContextManager[str]]] = {
    "dynamodb": servers.moto_server,
    "firestore": servers.firestore_emulator,
    "cosmos": servers.cosmos_server,
}
COUNTS = re.compile(
    r"(\w+): (\d+) read, (\d+) (?:written|would write) \((\d+) repaired\), "
    r"(\d+) already there, (\d+) left behind"
)
VERIFY = re.compile(r"verify (\w+): (\d+) in the source, (\d+) read, (\d+) matching")
RETRIES = re.compile(r"calls tried again after throttling or a timeout: (\d+)")
VERIFIED = "verified: every migrated record matches"


@dataclass
class Legacy:
    name: str
    args: list[str]  # the source's options of `gql-api migrate`
    env: dict[str, str]  # what the command needs to reach the source
    source: LegacySource  # the same reader, for the bare read in this process
    same: dict[str, str]  # the gql-api store on the same server
    provision: bool


@dataclass
class Step:
    label: str
    rows: int
    seconds: float
    rss_mib: float | None = None
    retries: int = 0
    baseline: float | None = None  # the bare read's seconds, for the ratio
    notes: list[str] = field(default_factory=list)


def cores() -> tuple[set[int], set[int]]:
    """(the servers' cores, the client's): apart when there are two or more."""
    mine = sorted(os.sched_getaffinity(0))
    return ({mine[0]}, set(mine[1:])) if len(mine) > 1 else (set(mine), set(mine))


async def seed(name: str, address: str, posts: list[Any], profiles: list[Any]) -> Legacy:
    if name == "dynamodb":
        from gql_api.ops.migration.dynamodb_source import DynamoDBSource

        await legacy_seed.seed_dynamodb(address, LEGACY_TABLE, posts, profiles)
        region = legacy_seed.REGION
        return Legacy(
            name,
            ["--table", LEGACY_TABLE, "--endpoint", address, "--region", region],
            {"AWS_DEFAULT_REGION": region},
            DynamoDBSource(LEGACY_TABLE, endpoint_url=address, region=region),
            {
                "GQL_API_STORE": "dynamodb",
                "GQL_API_DYNAMODB_TABLE": TARGET_TABLE,
                "GQL_API_DYNAMODB_ENDPOINT": address,
            },
            provision=True,
        )
    if name == "firestore":
        from gql_api.ops.migration.firestore_source import FirestoreSource

        os.environ["FIRESTORE_EMULATOR_HOST"] = address  # this process's clients
        await legacy_seed.seed_firestore(LEGACY_PROJECT, posts, profiles)
        return Legacy(
            name,
            ["--project", LEGACY_PROJECT],
            {"FIRESTORE_EMULATOR_HOST": address},
            FirestoreSource(LEGACY_PROJECT),
            {"GQL_API_STORE": "firestore", "GQL_API_FIRESTORE_PROJECT": TARGET_PROJECT},
            provision=False,  # the emulator needs no indexes
        )
    from gql_api.ops.migration.cosmos_source import CosmosSource

    await legacy_seed.seed_cosmos(address, COSMOS_KEY, LEGACY_DATABASE, posts, profiles)
    return Legacy(
        name,
        ["--url", address, "--database", LEGACY_DATABASE, "--no-verify-tls"],
        {"GQL_API_MIGRATE_COSMOS_KEY": COSMOS_KEY},
        CosmosSource(address, key=COSMOS_KEY, database=LEGACY_DATABASE, verify_tls=False),
        {
            "GQL_API_STORE": "cosmos",
            "GQL_API_COSMOS_URL": address,
            "GQL_API_COSMOS_KEY": COSMOS_KEY,
            "GQL_API_COSMOS_VERIFY_TLS": "false",
            "GQL_API_COSMOS_DATABASE": TARGET_DATABASE,
        },
        provision=True,
    )


async def bare_read(source: LegacySource) -> tuple[int, float]:
    """Every row of both kinds, page by page, and nothing else: (rows, seconds)."""
    await source.open()
    try:
        rows, started = 0, time.perf_counter()
        for kind in Kind:
            position: str | None = None
            while True:
                page = await source.page(kind, position, PAGE)
                rows += len(page.rows)
                if (position := page.position) is None:
                    break
        return rows, time.perf_counter() - started
    finally:
        await source.close()


def valid(kind: Kind, rows: list[dict[str, Any]]) -> int:
    """The records that should come over: each row that converts, the first of an id."""
    keys = set()
    for row in rows:
        record = convert(kind, LegacyRow("", row)).record
        if record is not None:
            keys.add(record_key(record))
    return len(keys)


def gql_api(args: list[str], env: dict[str, str], work: Path) -> tuple[str, float, float | None]:
    """`gql-api ARGS` as a subprocess: (stdout, seconds, peak RSS in MiB)."""
    command = [sys.executable, "-m", "gql_api", *args]
    measured = work / "time.txt"
    if TIME.exists():
        command = [str(TIME), "-v", "-o", str(measured), *command]
    started = time.perf_counter()
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=7200, check=False
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(
            f"gql-api {' '.join(args)}: status {done.returncode}\n{done.stdout}\n"
            f"{done.stderr[-3000:]}"
        )
    if TIME.exists():
        kib = re.search(r"Maximum resident set size \(kbytes\): (\d+)", measured.read_text())
        rss = int(kib[1]) / 1024 if kib else None
    else:  # the largest of all children so far, not this one's alone
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return done.stdout, seconds, rss


def counts(output: str) -> dict[str, tuple[int, ...]]:
    """kind -> (read, written, repaired, already, left behind), from the summary."""
    return {m[1]: tuple(int(x) for x in m.groups()[1:]) for m in COUNTS.finditer(output)}


def migrations(
    legacy: Legacy,
    target: str,
    store: dict[str, str],
    want: dict[str, int],
    baseline: float,
    work: Path,
) -> list[Step]:
    env = cli_env(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", **legacy.env, **store)
    if legacy.provision and target == "same":
        gql_api(["provision"], env, work)
    base = ["migrate", "--from", legacy.name, *legacy.args, "--rate", "0", "--checkpoint"]
    place = work / f"{legacy.name}-{target}"
    steps: list[Step] = []

    def step(label: str, checkpoint: Path, *extra: str) -> tuple[str, Step]:
        out, seconds, rss = gql_api([*base, str(checkpoint), *extra], env, work)
        found = counts(out)
        rows = sum(c[0] for c in found.values())
        retried = RETRIES.search(out)
        done = Step(f"{legacy.name} → {target}: {label}", rows, seconds, rss, baseline=baseline)
        done.retries = int(retried[1]) if retried else 0
        done.notes.append(out)  # the summary: dropped below when every check passes
        steps.append(done)
        return out, done

    out, dry = step("dry run", place.with_suffix(".dry.json"), "--dry-run")
    _expect(dry, counts(out), want, written=True)
    migrated = place.with_suffix(".json")
    out, _ = step("migrate", migrated)
    _expect(steps[-1], counts(out), want, written=True)
    out, verify = step("verify", migrated, "--verify")
    verify.rows = sum(int(m[3]) for m in VERIFY.finditer(out))
    if VERIFIED not in out or "already migrated" not in out:
        verify.notes.append("NOT VERIFIED: " + out.strip().replace("\n", " | "))
    migrated.unlink()
    out, rerun = step("rerun", place.with_suffix(".rerun.json"))
    _expect(rerun, counts(out), want, written=False)
    for done in steps:
        if len(done.notes) == 1:
            done.notes.clear()
    return steps


def _expect(
    step: Step, found: dict[str, tuple[int, ...]], want: dict[str, int], written: bool
) -> None:
    """Written and already there (a write retried by the SDK, whose first answer was
    lost, counts as already there) == the valid rows of each kind; a rerun writes none."""
    for kind, n in want.items():
        got = found.get(kind)
        if got is None:
            step.notes.append(f"no summary line for {kind}")
        elif written and got[1] + got[3] != n:
            step.notes.append(f"{kind}: {got[1]} written and {got[3]} already, want {n}")
        elif not written and (got[1], got[3]) != (0, n):
            step.notes.append(f"{kind}: {got[1]} written, {got[3]} already, want 0 and {n}")


def bench(
    name: str,
    posts: int,
    targets: list[str],
    work: Path,
    server_cores: set[int],
    client_cores: set[int],
) -> list[Step]:
    legacy_posts = legacy_seed.legacy_posts(posts)
    profiles = legacy_seed.legacy_profiles()
    want = {"profiles": valid(Kind.PROFILES, profiles), "posts": valid(Kind.POSTS, legacy_posts)}
    with ExitStack() as stack:
        os.sched_setaffinity(0, server_cores)  # the server inherits this
        try:
            address = stack.enter_context(STARTS[name]())
        finally:
            os.sched_setaffinity(0, client_cores)
        started = time.perf_counter()
        legacy = asyncio.run(seed(name, address, legacy_posts, profiles))
        print(
            f"{name}: seeded {posts:,} posts in {time.perf_counter() - started:.1f} s", flush=True
        )
        reads = [asyncio.run(bare_read(legacy.source)) for _ in range(2)]
        rows, baseline = min(reads, key=lambda r: r[1])
        steps = [Step(f"{name}: bare read (page() after page(), in process)", rows, baseline)]
        for target in targets:
            store = legacy.same
            if target == "sqlite":
                path = work / f"{name}-sqlite" / "gql-api.db"
                store = {"GQL_API_STORE": "sqlite", "GQL_API_SQLITE_PATH": str(path)}
            steps += migrations(legacy, target, store, want, baseline, work)
            print(f"{name} → {target}: done", flush=True)
        os.environ.pop("FIRESTORE_EMULATOR_HOST", None)
        return steps


def table(steps: list[Step]) -> None:
    print(
        "\n| source → target: step | rows | seconds | rows/s | ÷ bare read "
        "| peak RSS MiB | retries |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for s in steps:
        ratio = f"{s.seconds / s.baseline:.1f}x" if s.baseline else ""
        rss = f"{s.rss_mib:.1f}" if s.rss_mib is not None else ""
        print(
            f"| {s.label} | {s.rows:,} | {s.seconds:.2f} | {s.rows / s.seconds:,.0f} "
            f"| {ratio} | {rss} | {s.retries} |"
        )
    for s in steps:
        for note in s.notes[1:]:
            print(f"CHECK FAILED: {s.label}: {note}")
        if s.notes:
            print(f"  its summary:\n{s.notes[0].rstrip()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument("--sources", default="dynamodb,firestore,cosmos")
    parser.add_argument("--targets", default="same,sqlite")
    options = parser.parse_args()
    sources = [s for s in options.sources.split(",") if s]
    targets = [t for t in options.targets.split(",") if t]
    if not set(sources) <= set(STARTS) or not set(targets) <= {"same", "sqlite"}:
        parser.error("--sources: dynamodb, firestore, cosmos; --targets: same, sqlite")
    os.environ.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
    server_cores, client_cores = cores()
    print(
        f"pinning: servers on cores {sorted(server_cores)}, this script, the migrate "
        f"processes and the bare reads on {sorted(client_cores)}"
    )
    print(
        f"{options.posts:,} posts; peak RSS from "
        f"{'/usr/bin/time -v' if TIME.exists() else 'getrusage(RUSAGE_CHILDREN)'}"
    )
    steps: list[Step] = []
    with tempfile.TemporaryDirectory(prefix="gql-api-migration-bench-") as tmp:
        for name in sources:
            steps += bench(name, options.posts, targets, Path(tmp), server_cores, client_cores)
    table(steps)
    if any(s.notes for s in steps):
        sys.exit(1)


if __name__ == "__main__":
    main()
