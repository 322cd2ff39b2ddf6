"""``gql-api migrate``: its options, the source they name, and what it prints.

Exit status: 0 done (rows left behind are listed, not failures); 1 ``--strict`` stopped
at a row, ``--verify`` found a difference, or the source or target stayed unavailable;
2 a bad option or setting; 130 interrupted (Ctrl-C or SIGTERM), its place kept.
"""

from __future__ import annotations

import asyncio
import hashlib
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from gql_api.ops.migration.sources import Kind, LegacySource
    from gql_api.settings import Settings

# The options that belong to one source only.
SOURCE_OPTIONS = {
    "dynamodb": {"table", "endpoint", "region"},
    "firestore": {"project", "posts", "profiles", "database"},
    "cosmos": {"url", "key", "database", "posts", "profiles", "no_verify_tls"},
}
DEFAULT_RATE = 200.0


def _fail(message: str, status: int = 2) -> NoReturn:
    click.echo(f"gql-api migrate: {message}", err=True)
    sys.exit(status)


@click.command()
@click.option("--from", "source_name", required=True, type=click.Choice(list(SOURCE_OPTIONS)))
@click.option("--table", envvar="GQL_API_MIGRATE_TABLE", help="dynamodb: the legacy table.")
@click.option("--endpoint", help="dynamodb: an endpoint URL (a local server).")
@click.option("--region", help="dynamodb: the table's region (else AWS's chain).")
@click.option("--project", help="firestore: the legacy project (else from credentials).")
@click.option("--database", help="firestore: database id [(default)]; cosmos: the database.")
@click.option(
    "--posts", default="posts", show_default=True, help="The posts collection or container."
)
@click.option(
    "--profiles",
    default="profiles",
    show_default=True,
    help="The profiles collection or container.",
)
@click.option("--url", help="cosmos: the account endpoint.")
@click.option(
    "--key", envvar="GQL_API_MIGRATE_COSMOS_KEY", help="cosmos: the account key (else Entra ID)."
)
@click.option("--no-verify-tls", is_flag=True, help="cosmos: a local server's self-signed TLS.")
@click.option("--dry-run", is_flag=True, help="Read and check everything; write nothing.")
@click.option(
    "--verify", is_flag=True, help="Then compare counts and every record, field by field."
)
@click.option("--strict", is_flag=True, help="Stop at the first row that breaks a rule.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=DEFAULT_RATE,
    show_default=True,
    help="Items a second, read and written (0: no limit).",
)
@click.option("--page-size", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option(
    "--checkpoint", type=click.Path(dir_okay=False, path_type=Path), help="Where the place is kept."
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The rows' findings (JSON lines).",
)
def migrate(source_name: str, **options: Any) -> None:
    """Bring the earlier service's posts and profiles into the configured store."""
    from gql_api.settings import SettingsError, load_settings

    given = {name for name in set().union(*SOURCE_OPTIONS.values()) if _set(options, name)}
    foreign = sorted(given - SOURCE_OPTIONS[source_name])
    if foreign:
        flags = ", ".join("--" + name.replace("_", "-") for name in foreign)
        _fail(f"{flags}: not an option of --from {source_name}")
    if options["dry_run"] and options["verify"]:
        _fail("--dry-run writes nothing, so there is nothing to --verify: give one of them")
    try:
        settings = load_settings()
    except SettingsError as error:
        _fail(str(error))
    source = _source(source_name, options, settings)
    reason = source.overlaps(settings)
    if reason is not None:
        _fail(f"the target is the source: {reason}")
    target = target_location(settings)
    digest = hashlib.sha256(f"{source.location}\n{target}".encode()).hexdigest()[:12]
    checkpoint = options["checkpoint"] or Path(".gql-api") / f"migrate-{source_name}-{digest}.json"
    suffix = ".dry-run.jsonl" if options["dry_run"] else ".rows.jsonl"
    report = options["report"] or checkpoint.with_name(checkpoint.stem + suffix)
    status = _run(source, settings, options, checkpoint, report, target)
    sys.exit(status)


def _set(options: dict[str, Any], name: str) -> bool:
    """Whether the option was given on the command line (not a default, nor a variable
    of another source's, such as GQL_API_MIGRATE_COSMOS_KEY left set)."""
    source = click.get_current_context().get_parameter_source(name)
    return bool(options[name]) and source is click.core.ParameterSource.COMMANDLINE


def _source(name: str, options: dict[str, Any], settings: Settings) -> LegacySource:
    if name == "dynamodb":
        from gql_api.ops.migration.dynamodb_source import DynamoDBSource

        if not options["table"]:
            _fail("--from dynamodb needs --table (the earlier service's POSTS_TABLE_NAME)")
        return DynamoDBSource(
            options["table"], endpoint_url=options["endpoint"], region=options["region"]
        )
    if name == "firestore":
        from gql_api.ops.migration.firestore_source import FirestoreSource

        return FirestoreSource(
            options["project"],
            database=options["database"] or "(default)",
            posts_collection=options["posts"],
            profiles_collection=options["profiles"],
        )
    from gql_api.ops.migration.cosmos_source import CosmosSource

    if not options["url"] or not options["database"]:
        _fail("--from cosmos needs --url and --database (the earlier service's account)")
    return CosmosSource(
        options["url"],
        key=options["key"],
        database=options["database"],
        posts_container=options["posts"],
        profiles_container=options["profiles"],
        verify_tls=not options["no_verify_tls"],
    )


def target_location(settings: Settings) -> str:
    """The configured store in one line: a checkpoint belongs to one source and target."""
    if settings.store == "sqlite":
        where = str(settings.sqlite_path.resolve())
    elif settings.store == "dynamodb":
        where = f"{settings.dynamodb_table} at {settings.dynamodb_endpoint or 'AWS'}"
    elif settings.store == "firestore":
        database = settings.firestore_database or "(default)"
        where = f"{settings.firestore_project}/{database}/{settings.firestore_prefix}"
    elif settings.store == "cosmos":
        where = f"{settings.cosmos_url} {settings.cosmos_database}"
    else:
        where = "in this process"
    return f"{settings.store} {where}"


def _run(
    source: LegacySource,
    settings: Settings,
    options: dict[str, Any],
    checkpoint: Path,
    report: Path,
    target: str,
) -> int:
    from gql_api.ops.migration.calls import CallOptions, Calls
    from gql_api.ops.migration.checkpoint import CheckpointError
    from gql_api.ops.migration.runner import Migration, StrictStop
    from gql_api.ops.migration.sources import SourceUnavailable
    from gql_api.ops.migration.summary import print_outcome, print_verification
    from gql_api.ops.migration.verify import verify
    from gql_api.stores import create_store
    from gql_api.stores.base import DatabaseUnavailable

    store = create_store(settings)
    calls = Calls(
        CallOptions(
            rate=options["rate"],
            timeout=max(settings.store_timeout * 2, 10.0),
            page_size=options["page_size"],
        ),
        notice=lambda line: click.echo(f"gql-api migrate: {line}", err=True),
    )
    progress = BarProgress()

    async def run() -> int:
        await source.open()
        try:
            await store.open()
            try:
                unready = [line for ok, line in await store.inspect() if not ok]
                if unready:
                    _fail(
                        "the target store is not ready: "
                        + "; ".join(unready)
                        + " (run gql-api provision)"
                    )
                migration = Migration(
                    source,
                    store,
                    calls,
                    progress,
                    checkpoint_path=checkpoint,
                    report_path=report,
                    target=target,
                    strict=options["strict"],
                    dry_run=options["dry_run"],
                )
                print_outcome(await migration.run(), report, options["dry_run"], calls.retries)
                if options["verify"]:
                    verification = await verify(source, store, calls, progress)
                    print_verification(verification)
                    return 0 if verification.ok else 1
                return 0
            finally:
                await store.close()
        finally:
            await source.close()

    async def guarded() -> int:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await run()

    try:
        return asyncio.run(guarded())
    except (KeyboardInterrupt, asyncio.CancelledError):
        progress.finish()
        click.echo(
            f"gql-api migrate: interrupted; the place is kept in {checkpoint}: run the same "
            "command again to go on",
            err=True,
        )
        return 130
    except StrictStop as stop:
        progress.finish()
        _fail(f"--strict: stopped at {stop}; nothing after it was written (see {report})", 1)
    except CheckpointError as error:
        _fail(str(error))
    except OSError as error:
        if error.filename is None:  # not a file's: a connection's, say
            raise
        _fail(f"cannot write {error.filename}: {error.strerror or error}")
    except ImportError as error:  # each cloud's SDK is an extra of the package
        _fail(
            f"the Python package {error.name or error} is missing: install gql-api with the "
            "extra of each cloud it reads or writes: pip install 'gql-api[aws]' (DynamoDB), "
            "'gql-api[gcp]' (Firestore), 'gql-api[azure]' (Cosmos DB)"
        )
    except (SourceUnavailable, DatabaseUnavailable, TimeoutError) as error:
        progress.finish()
        _fail(
            f"stopped: {str(error) or 'a call timed out'} (tried {calls.options.attempts} "
            "times); "
            f"the place is kept in {checkpoint}: run again to go on",
            1,
        )


class BarProgress:
    """A progress bar on stderr: rows, rows a second and the time left."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._started = 0.0
        self._rows = 0

    def start(self, kind: Kind, total: int, done: int) -> None:
        self._started, self._rows = time.monotonic(), 0
        self._bar = click.progressbar(
            length=max(total, done, 1),
            label=f"{kind.value:>8}",
            show_eta=True,
            show_pos=True,
            file=sys.stderr,
            item_show_func=lambda rate: rate,
        )
        self._bar.__enter__()
        self._bar.update(done)

    def advance(self, rows: int) -> None:
        self._rows += rows
        rate = self._rows / max(time.monotonic() - self._started, 1e-6)
        if self._bar is not None:
            self._bar.update(rows, f"{rate:,.0f} rows/s")

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None
