"""A server's process exempts its start-up heap from garbage collection once started
(``gc.freeze``): the collector's full passes then walk only what requests made."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gql_api.app import create_app
from gql_api.settings import Settings
from gql_api.stores.memory import MemoryStore
from tests.helpers import DEV_SECRET

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the suite collects as usual


@pytest.mark.parametrize("freeze", [True, False])
async def test_a_started_app_freezes_its_heap_only_when_asked(
    freeze: bool, tmp_path: Path, unfrozen: None
) -> None:
    settings = Settings(sqlite_path=tmp_path / "db.sqlite", dev_secret=DEV_SECRET)
    app = create_app(settings, store=MemoryStore(), freeze_heap=freeze)
    assert gc.get_freeze_count() == 0
    async with app.router.lifespan_context(app):
        frozen = gc.get_freeze_count()
    assert (frozen > 10_000) if freeze else (frozen == 0), frozen


def test_the_lambda_handler_freezes_its_heap_on_its_first_request() -> None:
    script = """
import gc, json
from gql_api import lambda_handler
from tests.lambda_events import event
before = gc.get_freeze_count()
body = json.dumps({"query": "{ limits { maxTags } }"})
answer = lambda_handler.handler(event("http_v2", body=body), None)
print(json.dumps([before, gc.get_freeze_count(), answer["statusCode"]]))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GQL_API_", "AWS_"))}
    env.update(GQL_API_STORE="memory", GQL_API_DEV_SECRET=DEV_SECRET, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    before, after, status = json.loads(done.stdout.strip().splitlines()[-1])
    assert (before, status) == (0, 200)
    assert after > 10_000
