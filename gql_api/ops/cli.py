"""The ``gql-api`` command line."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from gql_api.ops.migration.command import migrate
from gql_api.settings import Settings, SettingsError, load_settings


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as error:
        _fail(str(error))


def _fail(message: str) -> NoReturn:
    click.echo(f"gql-api: {message}", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gql-api", message="gql-api %(version)s")
def main() -> None:
    """An async GraphQL API for posts, on the embedded SQLite store or a cloud database."""


@main.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar="GQL_API_HOST",
    show_envvar=True,
    help="Address to bind.",
)
@click.option(
    "--port",
    default=8000,
    show_default=True,
    envvar="PORT",  # what Cloud Run and other container platforms give the container
    show_envvar=True,
    type=click.IntRange(0, 65535),
    help="Port to bind.",
)
def serve(host: str, port: int) -> None:
    """Serve /graphql (GraphiQL in a browser) and /healthz."""
    import uvicorn

    from gql_api.app import create_app
    from gql_api.http.server import uvicorn_options
    from gql_api.logs import configure_logging

    try:
        settings = _settings().served_on(host)
    except SettingsError as error:
        _fail(str(error))
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings, freeze_heap=True),
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        proxy_headers=False,
        access_log=False,  # gql_api.access logs each request, as JSON
        log_config=None,  # keep the JSON logging set up above
        server_header=False,
        # Requests in flight get 8 s after SIGTERM, then the store closes: within Cloud
        # Run's 10 s before SIGKILL (and Kubernetes' default 30 s).
        timeout_graceful_shutdown=8,
        **uvicorn_options(settings),
    )


@main.command()
@click.option("--user", "user_id", required=True, help="The user id (the token's subject).")
@click.option("--admin", is_flag=True, help="Make the user a member of the admin group.")
@click.option(
    "--nickname", default=None, help="A nickname claim, shown until a profile stores one."
)
@click.option(
    "--expires-in",
    default=12 * 3600,
    show_default=True,
    type=click.IntRange(60, 30 * 24 * 3600),
    help="Lifetime in seconds.",
)
def token(user_id: str, admin: bool, nickname: str | None, expires_in: int) -> None:
    """Print a dev token that `gql-api serve` accepts in dev auth mode."""
    from gql_api.auth.dev import DevSecretError, dev_secret, mint_dev_token
    from gql_api.domain.validation import LIMITS, check_user_id, clean_nickname
    from gql_api.errors import BadUserInput

    settings = _settings()
    try:
        check_user_id(user_id, "--user")
    except BadUserInput as error:
        _fail(error.message)
    if nickname is not None and clean_nickname(nickname) != nickname.strip():
        _fail(
            f"--nickname must be 1 to {LIMITS.max_nickname_length} characters "
            "with no control characters"
        )
    try:
        secret = dev_secret(settings)
    except DevSecretError as error:
        _fail(str(error))
    click.echo(
        mint_dev_token(
            settings,
            secret,
            user_id=user_id,
            admin=admin,
            nickname=None if nickname is None else nickname.strip(),
            ttl_seconds=expires_in,
        )
    )


@main.command()
def schema() -> None:
    """Print the GraphQL schema (SDL)."""
    from gql_api.schema.root import sdl

    click.echo(sdl(), nl=False)


main.add_command(migrate)


@main.command()
def provision() -> None:
    """Create what the configured store needs (idempotent)."""
    from gql_api.stores import create_store

    settings = _settings()
    store = create_store(settings)

    async def run() -> str:
        await store.open()  # the embedded stores create and migrate their schema here
        try:
            return await store.provision()
        finally:
            await store.close()

    try:
        done = asyncio.run(run())
    except Exception as error:  # noqa: BLE001 - reported, not raised
        click.echo(f"provision {store.name}: FAILED: {error}", err=True)
        sys.exit(1)
    click.echo(f"provision {store.name}: {done}")


@main.command()
def doctor() -> None:
    """Check the settings and the configured store, one line per check."""
    from gql_api.ops.doctor import run_checks

    settings = _settings()
    click.echo("ok    settings: valid")
    failures = 0
    for ok, line in asyncio.run(run_checks(settings)):
        click.echo(f"{'ok' if ok else 'FAIL':<5} {line}")
        failures += not ok
    sys.exit(1 if failures else 0)


@main.group()
def package() -> None:
    """Build deployment packages."""


def _build_tools() -> Any:
    """The repository's tools/packaging.py: build tools live beside the package, not in
    it (no wheel or zip carries them), so this runs from a checkout only."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "tools" / "packaging.py").exists():
        _fail("gql-api package needs a source checkout of gql-api (its tools/ folder)")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    import tools.packaging

    return tools.packaging


F = TypeVar("F", bound=Callable[..., Any])


def _zip_options(platform: str, output: str, pythons: tuple[str, ...]) -> Callable[[F], F]:
    """The options every function zip takes: its Python, where it goes, its bytecode and
    GraphiQL's assets."""
    options = [
        click.option(
            "--python",
            "python",
            default="3.12",
            show_default=True,
            type=click.Choice(pythons),
            help=f"The Python of {platform}.",
        ),
        click.option(
            "-o",
            "--output",
            default=output,
            show_default=True,
            type=click.Path(dir_okay=False, path_type=Path),
            help="Where to write the zip.",
        ),
        click.option(
            "--bytecode/--no-bytecode",
            default=True,
            show_default=True,
            help=f"Ship .pyc files compiled by that Python ({platform} runs the package "
            "read-only: without them every cold start compiles the sources).",
        ),
        click.option(
            "--graphiql/--no-graphiql",
            default=False,
            show_default=True,
            help=f"Ship GraphiQL's page and assets (off on {platform} unless "
            "GQL_API_GRAPHIQL=true).",
        ),
        click.option(
            "--trusted-documents",
            "trusted_documents",
            default=None,
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Ship this manifest of trusted documents (checked first) as "
            "trusted-documents.json: set GQL_API_TRUSTED_DOCUMENTS=trusted-documents.json.",
        ),
    ]

    def decorated(command: F) -> F:
        for option in reversed(options):
            command = option(command)
        return command

    return decorated


@package.command("lambda")
@_zip_options("AWS Lambda", "dist/gql-api-lambda.zip", ("3.11", "3.12", "3.13"))
@click.option(
    "--arch",
    default="x86_64",
    show_default=True,
    type=click.Choice(["x86_64", "arm64"]),
    help="Lambda's architecture.",
)
def package_lambda(
    python: str,
    arch: str,
    output: Path,
    bytecode: bool,
    graphiql: bool,
    trusted_documents: Path | None,
) -> None:
    """The function zip: gql-api with the aws extra, for the Lambda platform, reproducible."""
    packaging = _build_tools()
    _check_manifest(trusted_documents)
    built = _built(
        lambda: packaging.build_lambda_zip(
            output,
            python=python,
            arch=arch,
            bytecode=bytecode,
            graphiql=graphiql,
            trusted_documents=trusted_documents,
        ),
        packaging,
    )
    if built.zipped_bytes > packaging.MAX_DIRECT_UPLOAD_BYTES:
        click.echo(
            "note: over 50 MiB zipped, so it must be deployed through S3 (as `sam deploy` does)",
            err=True,
        )


@package.command("azure")
@_zip_options("Azure Functions", "dist/gql-api-azure.zip", ("3.11", "3.12"))
def package_azure(
    python: str, output: Path, bytecode: bool, graphiql: bool, trusted_documents: Path | None
) -> None:
    """The zip for Azure Functions' zip deploy: gql-api with the azure extra, for Linux,
    function_app.py and host.json at its root, reproducible."""
    packaging = _build_tools()
    _check_manifest(trusted_documents)
    _built(
        lambda: packaging.build_azure_zip(
            output,
            python=python,
            bytecode=bytecode,
            graphiql=graphiql,
            trusted_documents=trusted_documents,
        ),
        packaging,
    )


def _check_manifest(path: Path | None) -> None:
    """A manifest the function could not read is refused before anything is built."""
    if path is None:
        return
    from gql_api.http.trusted import ManifestError, TrustedDocuments

    try:
        TrustedDocuments.load(path, allow_introspection=False)
    except ManifestError as error:
        _fail(f"--trusted-documents: {error}")


def _built(build: Callable[[], Any], packaging: Any) -> Any:
    """Build a package, say what was built (or why not, and exit 1)."""
    try:
        built = build()
    except packaging.PackagingError as error:
        click.echo(f"gql-api: {error}", err=True)
        sys.exit(1)
    click.echo(
        f"{built.path}: {built.zipped_bytes / 2**20:.1f} MiB zipped, "
        f"{built.unzipped_bytes / 2**20:.1f} MiB unzipped, {built.files} files, "
        f"sha256 {built.sha256}"
    )
    if built.compiled_with is not None:
        click.echo(f"bytecode compiled by Python {built.compiled_with}")
    for name in built.untracked:
        click.echo(f"warning: not packed, git does not track it: {name}", err=True)
    return built
