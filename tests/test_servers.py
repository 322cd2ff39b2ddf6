"""The local servers the suite starts: each one's output is kept in a file, and a test
failing while it runs shows the end of it (conftest's report hook)."""

from __future__ import annotations

import sys
import urllib.request

from tests.helpers import free_port
from tests.servers import LIVE_LOGS, running, server_log_sections


def test_a_running_server_s_log_is_kept_and_offered_to_a_failing_report() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    command = [sys.executable, "-u", "-m", "http.server", "--bind", "127.0.0.1", str(port)]
    with running(command, url):
        with urllib.request.urlopen(url, timeout=5):
            pass
        (path,) = [p for p, (what, _) in LIVE_LOGS.items() if "http.server" in what]
        sections = dict(server_log_sections())
        (title,) = [t for t in sections if str(path) in t]
        assert '"GET / HTTP/1.1" 200' in sections[title]  # what the server said, so far
    assert path not in LIVE_LOGS  # stopped: no longer shown
    assert "GET / HTTP/1.1" in path.read_text()  # and kept
