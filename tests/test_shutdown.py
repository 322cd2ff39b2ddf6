"""Graceful shutdown: on SIGTERM, requests in flight finish and the store is closed."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from gql_api.auth.dev import mint_dev_token
from gql_api.settings import Settings
from tests.helpers import DEV_SECRET, cli_env, free_port


def test_sigterm_lets_the_request_in_flight_finish_and_closes_the_store(tmp_path: Path) -> None:
    database = tmp_path / "gql-api.db"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = cli_env(
        GQL_API_DEV_SECRET=DEV_SECRET,
        GQL_API_SQLITE_PATH=str(database),
        GQL_API_STORE_TIMEOUT="20",
    )
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "gql_api", "serve", "--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=1).close()  # noqa: S310
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        # Another process holds the write lock: the next write waits for it.
        blocker = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
        blocker.execute("BEGIN IMMEDIATE")
        token = mint_dev_token(Settings(dev_secret=DEV_SECRET), DEV_SECRET, user_id="ada")
        outcome: dict[str, object] = {}

        def write() -> None:
            request = urllib.request.Request(  # noqa: S310 - loopback
                f"{url}/graphql",
                data=json.dumps(
                    {"query": 'mutation { createPost(input: {content: "in flight"}) { id } }'}
                ).encode(),
                headers={"content-type": "application/json", "authorization": f"Bearer {token}"},
            )
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                outcome["body"] = json.loads(response.read())

        writer = threading.Thread(target=write)
        writer.start()
        time.sleep(1.0)  # the write is now waiting inside the server
        server.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        blocker.execute("ROLLBACK")  # the lock goes: the write can finish
        blocker.close()
        writer.join(timeout=30)
        # uvicorn drains, then re-raises the signal it caught: the exit is "killed by SIGTERM".
        assert server.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    body = outcome["body"]
    assert isinstance(body, dict) and body["data"]["createPost"]["id"], body
    stored = sqlite3.connect(database).execute("SELECT content FROM posts").fetchall()
    assert stored == [("in flight",)]
    assert "store sqlite closed" in log.read_text()
