"""``gql-api package lambda`` and ``gql-api package azure``: the function zip, built for
its platform, reproducibly.

The same sources and pins give the same bytes: dependencies come from
``constraints.txt`` as wheels for the platform only (never built here), files that
name the build machine are left out, and the zip lists its entries sorted with one
fixed timestamp and fixed permissions.

The zip carries bytecode. Both platforms run the code from a read-only directory, so
without ``.pyc`` files every cold start compiles every module it imports from source
(2.6x slower on Lambda, ``bench/coldstart.py --deployed``). They are compiled by an
interpreter of the function's Python version, as unchecked-hash ``.pyc`` files (PEP
552: no timestamp in them, and no source check at import, the package being
immutable), with the platform's code directory as their source path and a fixed hash
seed, so they too are the same bytes on every build made with the same interpreter
(the command prints which).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

# Lambda's limits: the unzipped code (250 MB, a hard limit) and a zip uploaded directly
# rather than through S3 (50 MB; `sam deploy` uploads through S3).
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024
MAX_DIRECT_UPLOAD_BYTES = 50 * 1024 * 1024
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
PLATFORMS = {
    "x86_64": ["manylinux2014_x86_64", "manylinux_2_28_x86_64", "manylinux_2_34_x86_64"],
    "arm64": ["manylinux2014_aarch64", "manylinux_2_28_aarch64", "manylinux_2_34_aarch64"],
}
# Where Lambda unpacks the function: the source path recorded in the bytecode.
LAMBDA_TASK_ROOT = "/var/task"
# Where Azure Functions mounts the package, and where its Python worker looks for the
# dependencies shipped inside it (a zip deployed without a remote build).
AZURE_APP_ROOT = "/home/site/wwwroot"
AZURE_SITE_PACKAGES = ".python_packages/lib/site-packages"
# What the Functions host loads from the package's root, beside the dependencies.
AZURE_ROOT_FILES = ("deploy/azure/function_app.py", "deploy/azure/host.json")
# `gql-api serve`'s server stack: dependencies of the package that the function never
# imports (Lambda runs the app through Mangum), so the zip leaves them out.
SERVE_ONLY = ("uvicorn", "uvloop", "httptools")
# The AWS services the function calls (DynamoDB, S3 for images; STS for credentials that
# assume a role): botocore's and boto3's models of the other 400 stay out of the zip.
AWS_SERVICES = ("dynamodb", "s3", "sts")
# GraphiQL's page and assets, in the package: in the zip only when asked for.
GRAPHIQL_ASSETS = Path("gql_api/http/static/graphiql")
# A trusted documents manifest goes at the package's root under this name: the platforms
# start the function there, so GQL_API_TRUSTED_DOCUMENTS=trusted-documents.json finds it.
TRUSTED_DOCUMENTS = "trusted-documents.json"
# Written by pip for this machine or this checkout: not part of the function.
_LEFT_OUT_NAMES = {"direct_url.json", "INSTALLER", "REQUESTED"}


class PackagingError(Exception):
    """The package cannot be built as asked (the message says why)."""


@dataclass(frozen=True)
class Package:
    path: Path
    zipped_bytes: int
    unzipped_bytes: int
    files: int
    sha256: str
    untracked: tuple[str, ...] = ()  # files of the package git does not track: not packed
    # The Python that compiled the bytecode (None: sources only). The bytes of a .pyc
    # depend on it: the same zip needs the same interpreter build, not only X.Y.
    compiled_with: str | None = None


def project_root() -> Path:
    root = Path(__file__).resolve().parent.parent  # tools/ is at the repository's root
    if not (root / "pyproject.toml").exists():
        raise PackagingError("run `gql-api package` from a source checkout of gql-api")
    return root


@dataclass(frozen=True)
class _Layout:
    """How a platform takes the package: what it installs and where things go."""

    extra: str  # gql-api's extra for the platform's SDKs
    platforms: list[str]  # pip's platform tags for its wheels
    code_root: str  # where the platform puts the package: the bytecode's source path
    site: str = ""  # the dependencies' folder inside the package ("": its root)
    root_files: tuple[str, ...] = ()  # files of the checkout at the package's root
    max_unzipped: int | None = None  # the platform's limit on the unpacked package


def build_lambda_zip(
    output: Path,
    *,
    python: str = "3.12",
    arch: str = "x86_64",
    bytecode: bool = True,
    graphiql: bool = False,
    trusted_documents: Path | None = None,
) -> Package:
    if arch not in PLATFORMS:
        raise PackagingError(f"--arch must be one of {', '.join(PLATFORMS)}")
    layout = _Layout(
        extra="aws",
        platforms=PLATFORMS[arch],
        code_root=LAMBDA_TASK_ROOT,
        max_unzipped=MAX_UNZIPPED_BYTES,
    )
    return _build_zip(
        output,
        layout,
        python=python,
        bytecode=bytecode,
        graphiql=graphiql,
        trusted_documents=trusted_documents,
    )


def build_azure_zip(
    output: Path,
    *,
    python: str = "3.12",
    bytecode: bool = True,
    graphiql: bool = False,
    trusted_documents: Path | None = None,
) -> Package:
    """The zip for Azure Functions' zip deploy (Linux x86_64, no remote build):
    ``function_app.py`` and ``host.json`` at its root, the dependencies where the
    Python worker looks for them."""
    layout = _Layout(
        extra="azure",
        platforms=PLATFORMS["x86_64"],  # Flex Consumption runs Linux on x86_64
        code_root=AZURE_APP_ROOT,
        site=AZURE_SITE_PACKAGES,
        root_files=AZURE_ROOT_FILES,
    )
    return _build_zip(
        output,
        layout,
        python=python,
        bytecode=bytecode,
        graphiql=graphiql,
        trusted_documents=trusted_documents,
    )


def _build_zip(
    output: Path,
    layout: _Layout,
    *,
    python: str,
    bytecode: bool,
    graphiql: bool,
    trusted_documents: Path | None = None,
) -> Package:
    root = project_root()
    compiler = find_python(python) if bytecode else None
    if bytecode and compiler is None:
        raise PackagingError(
            f"no Python {python} here to compile the bytecode with: install it (for "
            f"example `pyenv install {python}`), or pass --no-bytecode to ship sources "
            "only (every cold start then compiles them)"
        )
    with tempfile.TemporaryDirectory(prefix="gql-api-package-") as scratch:
        wheels = Path(scratch) / "wheels"
        target = Path(scratch) / "target"
        site = target / layout.site
        source = Path(scratch) / "source"
        _export(root, source)  # never a stale build/ or a stray file of the checkout
        build_pins = {"PIP_CONSTRAINT": str(root / "build-constraints.txt")}
        _pip("wheel", "--no-deps", "--wheel-dir", str(wheels), str(source), env=build_pins)
        (wheel,) = wheels.glob("gql_api-*.whl")
        constraints = root / "constraints.txt"
        _pip(
            "install",
            "--target",
            str(site),
            "--implementation",
            "cp",
            "--python-version",
            python,
            *[flag for platform in layout.platforms for flag in ("--platform", platform)],
            "--only-binary=:all:",
            "--no-compile",
            *(["--constraint", str(constraints)] if constraints.exists() else []),
            f"{wheel}[{layout.extra}]",
        )
        _drop_unused(site)
        if not graphiql:  # off on the function platforms by default: 4 MB of assets
            shutil.rmtree(site / GRAPHIQL_ASSETS, ignore_errors=True)
        for name in layout.root_files:
            shutil.copy2(source / name, target / Path(name).name)
        if trusted_documents is not None:
            (target / TRUSTED_DOCUMENTS).write_bytes(trusted_documents.read_bytes())
        _strip_shared_objects(target)
        compiled_with = None
        if compiler is not None:
            compiled_with = compile_bytecode(compiler, target, layout.code_root)
            _sourceless(target, keep={target / Path(name).name for name in layout.root_files})
        files = sorted(
            (
                path
                for path in target.rglob("*")
                if path.is_file()
                and not _left_out(path.relative_to(target).as_posix(), layout.site)
            ),
            key=lambda path: path.relative_to(target).as_posix(),
        )
        unzipped = sum(path.stat().st_size for path in files)
        if layout.max_unzipped is not None and unzipped > layout.max_unzipped:
            raise PackagingError(
                f"the function would be {unzipped / 2**20:.1f} MiB unzipped, over its "
                f"platform's {layout.max_unzipped / 2**20:.0f} MiB"
            )
        output.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
            for path in files:
                entry = zipfile.ZipInfo(path.relative_to(target).as_posix(), FIXED_TIME)
                entry.compress_type = zipfile.ZIP_DEFLATED
                entry.external_attr = (
                    0o100644 if not path.stat().st_mode & 0o111 else 0o100755
                ) << 16
                archive.writestr(entry, _content(path))
    digest = hashlib.sha256(output.read_bytes()).hexdigest()
    left_out = _git_files(root, "--others", "--exclude-standard", "gql_api")
    return Package(
        output,
        output.stat().st_size,
        unzipped,
        len(files),
        digest,
        tuple(left_out),
        compiled_with,
    )


def _content(path: Path) -> bytes:
    """A file's bytes; a dist-info RECORD without the lines of files left out."""
    data = path.read_bytes()
    if path.name != "RECORD" or not path.parent.name.endswith(".dist-info"):
        return data
    kept = [
        line
        for line in data.decode().splitlines(keepends=True)
        if not _left_out(line.split(",", 1)[0])
    ]
    return "".join(kept).encode()


def _drop_unused(target: Path) -> None:
    """What the function never loads: serve's server stack, other AWS services' models."""
    for name in SERVE_ONLY:
        for path in [target / name, *target.glob(f"{name}-*.dist-info")]:
            if path.is_dir():
                shutil.rmtree(path)
    # Each service's models are a folder of their own; the files beside them (endpoints,
    # partitions, retry rules, defaults) serve every service and stay.
    for data in (target / "botocore" / "data", target / "boto3" / "data"):
        for service in data.iterdir() if data.is_dir() else ():
            if service.is_dir() and service.name not in AWS_SERVICES:
                shutil.rmtree(service)


def _left_out(relative: str, site: str = "") -> bool:
    """Whether a file of the package (its path from the package's root) is pip's record
    of this machine or a script of the dependencies' ``bin/``."""
    parts = Path(relative).parts
    if site and relative.startswith(f"{site}/"):
        parts = Path(relative[len(site) + 1 :]).parts
    return bool(parts) and (parts[-1] in _LEFT_OUT_NAMES or parts[0] in ("bin", ".."))


def _export(root: Path, destination: Path) -> None:
    """Copy the files git tracks (as they are in the work tree) into ``destination``."""
    for name in _git_files(root):
        if (root / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, destination / name)


def _git_files(root: Path, *options: str) -> list[str]:
    command = ["git", "-C", str(root), "ls-files", "-z", *options]
    listed = subprocess.run(command, capture_output=True, check=False)  # noqa: S603
    if listed.returncode != 0:
        raise PackagingError("gql-api package needs a git checkout (it packs the tracked files)")
    return [name for name in listed.stdout.decode().split("\0") if name]


def find_python(version: str) -> str | None:
    """An interpreter of this version: on PATH, the system's, or pyenv's own (not its shim)."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [
        shutil.which(f"python{version}"),
        f"/usr/bin/python{version}",
        *sorted(str(path) for path in pyenv.glob(f"{version}.*/bin/python{version}")),
    ]
    for candidate in candidates:
        if candidate is None or not Path(candidate).exists():
            continue
        probe = subprocess.run(  # noqa: S603 - an interpreter found above
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    return None


def compile_bytecode(python: str, target: Path, code_root: str = LAMBDA_TASK_ROOT) -> str:
    """Compile every module under ``target`` (which the platform puts at ``code_root``);
    return the compiler's version."""
    command = [
        python,
        "-m",
        "compileall",
        "-q",
        "-o",
        "0",  # the only level Lambda's interpreter loads (no PYTHONOPTIMIZE there)
        "--invalidation-mode",
        "unchecked-hash",
        "-s",
        str(target),
        "-p",
        code_root,
        str(target),
    ]
    # A clean environment: PYTHONPYCACHEPREFIX would put the .pyc files outside the
    # package, PYTHONOPTIMIZE would name them for another level, SOURCE_DATE_EPOCH
    # would force checked hashes.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONHASHSEED": "0"}
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env)  # noqa: S603
    if result.returncode != 0:
        raise PackagingError(f"compiling the bytecode failed:\n{result.stdout[-3000:]}")
    if next(target.rglob("*.pyc"), None) is None:
        raise PackagingError(f"compiling the bytecode left no .pyc files in {target}")
    version = subprocess.run(  # noqa: S603
        [python, "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return version.stdout.strip()


def _strip_shared_objects(target: Path) -> None:
    """Extension modules without their symbol tables (``strip --strip-unneeded`` keeps
    what loading them needs): a fifth of the function's bytes, read at every cold start."""
    strip = shutil.which("strip")
    if strip is None:
        raise PackagingError("binutils' strip is needed (apt-get install binutils)")
    libraries = sorted(str(path) for path in target.rglob("*.so*") if path.is_file())
    if libraries:
        result = subprocess.run(  # noqa: S603 - our own files
            [strip, "--strip-unneeded", *libraries], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise PackagingError(f"strip failed:\n{result.stderr[-3000:]}")


def _sourceless(target: Path, keep: set[Path] | None = None) -> None:
    """Each compiled module as its bytecode alone, in the module's own place, where
    Python imports a ``.pyc`` that has no source beside it (PEP 3147): the sources were
    as large as their bytecode, and the platform reads neither more than once.
    Tracebacks then show file and line, not the line's text. ``keep``: sources the
    platform looks for by name (Azure's ``function_app.py``), kept with their cache."""
    for cached in sorted(target.rglob("__pycache__/*.pyc")):
        module = cached.name.split(".cpython-", 1)[0]
        source = cached.parent.parent / f"{module}.py"
        if source.is_file() and source not in (keep or set()):
            cached.replace(cached.parent.parent / f"{module}.pyc")
            source.unlink()
    for folder in sorted(target.rglob("__pycache__"), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _pip(*args: str, env: dict[str, str] | None = None) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", *args]
    result = subprocess.run(  # noqa: S603
        command, capture_output=True, text=True, check=False, env={**os.environ, **(env or {})}
    )
    if result.returncode != 0:
        said = "\n".join(line for line in result.stderr.splitlines() if "WARNING" not in line)
        raise PackagingError(f"pip {args[0]} failed:\n{said[-3000:]}")
