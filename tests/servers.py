"""Local database servers for the store tests: started once per test session, on 127.0.0.1."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import IO

from tests.helpers import free_port

START_TIMEOUT = 60.0
# Every server's output is kept here, a file per start; while it runs, a failing test's
# report ends with the tail of each (conftest's pytest_runtest_makereport).
LOG_DIR = Path(__file__).resolve().parent.parent / "test-artifacts" / "server-logs"
# The log of each server running now: what it is, and when it started (monotonic).
LIVE_LOGS: dict[Path, tuple[str, float]] = {}
LOG_TAIL = 4000  # characters of each log a failing test's report shows
_starts = itertools.count(1)


def server_log_sections(started_after: float = 0.0) -> list[tuple[str, str]]:
    """(title, the log's end) for each server running now (and started after
    ``started_after``), for a failing test's report."""
    sections = []
    for path, (what, started) in list(LIVE_LOGS.items()):
        if started < started_after:
            continue
        text = path.read_bytes().decode(errors="replace") if path.exists() else ""
        sections.append((f"server log: {what} ({path})", text[-LOG_TAIL:] or "(empty)"))
    return sections


def _log_file(command: list[str]) -> Path:
    # The program, or the script an interpreter runs: python, node and java name nothing.
    named = [Path(part).name for part in command[:3] if not part.startswith("-")]
    program = next((n for n in named if n not in {"python", "python3", "node", "java"}), "server")
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    return LOG_DIR / f"{os.getpid()}-{next(_starts):03d}-{program}.log"


@contextmanager
def running(
    command: list[str],
    ready_url: str,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server, wait until ``ready_url`` answers, stop it afterwards.

    Its output goes to a file, never a pipe: a chatty server blocks once a pipe is full.
    The file is ``log_path`` when given, else one of its own under ``LOG_DIR``; either
    is kept, and shown at the end of the report of a test failing while it runs.
    """
    path = log_path or _log_file(command)
    with path.open("w+b") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        LIVE_LOGS[path] = (" ".join(Path(part).name for part in command[:4]), time.monotonic())
        try:
            _wait_until_ready(process, ready_url, log)
            yield process
        finally:
            LIVE_LOGS.pop(path, None)
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_ready(process: subprocess.Popen[bytes], ready_url: str, log: IO[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with urllib.request.urlopen(ready_url, timeout=2):  # noqa: S310 - loopback
                return
        except urllib.error.HTTPError:
            return  # it answers (with an error status): it is up
        except OSError:
            if process.poll() is not None:
                log.seek(0)
                said = log.read().decode(errors="replace")[-2000:]
                raise RuntimeError(f"{process.args!r} exited at start: {said}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"{process.args!r} did not answer {ready_url}") from None
            time.sleep(0.1)


FIRESTORE_JAR = Path(
    "/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar"
)
COSMOS_SERVER = Path(__file__).with_name("cosmos_server")


def store_server(store: str, port: int) -> tuple[list[str], str, str]:
    """How to run the local server of ``store`` (dynamodb, firestore or cosmos) on
    ``port``: its command, its address (moto's and Cosmos's URL, the Firestore
    emulator's host:port) and the URL that answers once it is ready."""
    if store == "dynamodb":
        # moto's server (DynamoDB and S3), one request at a time (see moto_serial).
        script = Path(__file__).with_name("moto_serial.py")
        address = f"http://127.0.0.1:{port}"
        return (
            [sys.executable, str(script), "127.0.0.1", str(port)],
            address,
            f"{address}/moto-api/",
        )
    if store == "firestore":
        # Google's Firestore emulator (from the machine image: no package source has it).
        if not FIRESTORE_JAR.exists():
            raise RuntimeError(
                f"the Firestore emulator is missing: {FIRESTORE_JAR} does not exist. Install "
                "Debian's google-cloud-cli-firestore-emulator package; the Firestore "
                "store's tests cannot run without it"
            )
        command = [
            "java",
            "-cp",
            str(FIRESTORE_JAR),
            "com.google.cloud.datastore.emulator.firestore.CloudFirestore",
            "start",
            "--host=127.0.0.1",
            f"--port={port}",
        ]
        return command, f"127.0.0.1:{port}", f"http://127.0.0.1:{port}/"
    if store == "cosmos":
        # @vercel/cosmosdb-server over HTTP, started by our start.js (see its comments).
        if not (COSMOS_SERVER / "node_modules" / "@vercel" / "cosmosdb-server").exists():
            raise RuntimeError(
                "the local Cosmos DB server is not installed: run `make test` (it runs "
                "`npm ci --prefix tests/cosmos_server`)"
            )
        address = f"http://127.0.0.1:{port}"
        return (
            ["node", str(COSMOS_SERVER / "start.js"), "127.0.0.1", str(port)],
            address,
            f"{address}/",
        )
    raise ValueError(f"no server for store {store!r}")


@contextmanager
def _store_server(store: str) -> Iterator[str]:
    command, address, ready = store_server(store, free_port())
    with running(command, ready):
        yield address


def moto_server() -> AbstractContextManager[str]:
    """moto's server (DynamoDB and S3 over HTTP): its URL."""
    return _store_server("dynamodb")


def firestore_emulator() -> AbstractContextManager[str]:
    """Google's Firestore emulator: its host:port."""
    return _store_server("firestore")


def cosmos_server() -> AbstractContextManager[str]:
    """The local Cosmos DB server: its URL."""
    return _store_server("cosmos")


@contextmanager
def gql_api_server(
    env: dict[str, str], log_path: Path | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`gql-api serve` on a free port with ``env``: its URL and its process (its output,
    JSON log lines, in ``log_path`` when given)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "gql_api", "serve", "--port", str(port)]
    with running(command, f"{url}/healthz", env=env, log_path=log_path) as process:
        yield url, process


def reset_moto(url: str) -> None:
    """Forget every table and item of the moto server at ``url``."""
    reset = urllib.request.Request(f"{url}/moto-api/reset", method="POST")  # noqa: S310
    with urllib.request.urlopen(reset, timeout=10):  # noqa: S310 - the local moto server
        pass


AZURITE = Path(__file__).with_name("azurite")


@contextmanager
def azurite_server() -> Iterator[str]:
    """Azurite's Blob service (Microsoft's storage emulator), in memory: its blob endpoint."""
    binary = AZURITE / "node_modules" / ".bin" / "azurite-blob"
    if not binary.exists():
        raise RuntimeError(
            "Azurite is not installed: run `make test` (it runs `npm ci --prefix tests/azurite`)"
        )
    port = free_port()
    command = [
        str(binary),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--inMemoryPersistence",
        "--skipApiVersionCheck",  # the SDK may speak a newer service version than it knows
        "--disableTelemetry",
        "--silent",
    ]
    url = f"http://127.0.0.1:{port}/devstoreaccount1"
    with running(command, f"{url}?comp=list"):
        yield url


@contextmanager
def gcs_emulator() -> Iterator[str]:
    """gcp-storage-emulator, in memory: its base URL (for ``STORAGE_EMULATOR_HOST``)."""
    port = free_port()
    binary = Path(sys.executable).with_name("gcp-storage-emulator")
    command = [str(binary), "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"]
    with running(command, f"http://127.0.0.1:{port}/storage/v1/b"):
        yield f"http://127.0.0.1:{port}"


class RestartableServer:
    """A local database server on one fixed port that a test stops and starts again.

    For outage tests: a function-scoped server of the test's own, never the session's
    shared one. ``stop`` ends the process (its port then refuses connections); ``start``
    runs the same command on the same port. ``pause``/``resume`` (SIGSTOP/SIGCONT) make
    it hang instead: connections are accepted by the kernel and never answered.
    """

    def __init__(
        self, command: list[str], ready_url: str, env: dict[str, str] | None = None
    ) -> None:
        self.command = command
        self.ready_url = ready_url
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self._stack: ExitStack | None = None

    def start(self) -> None:
        assert self._stack is None, "already running"
        stack = ExitStack()
        self.process = stack.enter_context(running(self.command, self.ready_url, self.env))
        self._stack = stack

    def stop(self) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            if self.process is not None and self.process.poll() is None:
                self.process.send_signal(signal.SIGCONT)  # a paused process cannot exit
            stack.close()
        self.process = None

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


@contextmanager
def restartable_server(store: str) -> Iterator[tuple[RestartableServer, str]]:
    """A dedicated server for ``store`` (dynamodb, firestore or cosmos), started: the
    server and its address (moto's and Cosmos's URL, the Firestore emulator's host:port)."""
    command, address, ready = store_server(store, free_port())
    server = RestartableServer(command, ready)
    server.start()
    try:
        yield server, address
    finally:
        server.stop()
