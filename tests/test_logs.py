"""The request log: one JSON line per request, with what an operator needs and no secret."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest

from gql_api.app import create_app
from gql_api.auth.dev import mint_dev_token
from gql_api.logs import JsonFormatter
from gql_api.settings import Settings
from gql_api.stores.memory import MemoryStore
from tests.helpers import DEV_SECRET

WRITE = """mutation Write {
  createPost(input: {content: "secret words"}) { id }
  updateProfile(nickname: "Ada") { nickname }
}"""


async def test_each_request_logs_one_line_without_token_or_content(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(sqlite_path=tmp_path / "db.sqlite", dev_secret=DEV_SECRET)
    token = mint_dev_token(settings, DEV_SECRET, user_id="ada")
    app = create_app(settings, store=MemoryStore())
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        with caplog.at_level(logging.INFO, logger="gql_api.access"):
            await client.post(
                "/graphql",
                json={"query": WRITE},
                headers={"authorization": f"Bearer {token}", "x-request-id": "req-7"},
            )
            await client.post(
                "/graphql",
                json={"query": "query Feed { posts { nodes { id author { nickname } } } }"},
            )
            await client.post("/graphql", json={"query": "{ nope }"})
            await client.post(
                "/graphql", content=b"{", headers={"content-type": "application/json"}
            )
    records = [r for r in caplog.records if r.name == "gql_api.access"]
    assert len(records) == 4
    write, feed, invalid, broken = records
    assert (write.client_request_id, write.operation, write.status, write.outcome) == (  # type: ignore[attr-defined]
        "req-7",
        "Write",
        200,
        "OK",
    )
    assert len(write.request_id) == 32 and feed.client_request_id is None  # type: ignore[attr-defined]
    assert write.store_calls == 2  # type: ignore[attr-defined]  # one write each
    assert (feed.operation, feed.store_calls) == ("Feed", 2)  # type: ignore[attr-defined]
    assert invalid.outcome == "GRAPHQL_VALIDATION_FAILED"  # type: ignore[attr-defined]
    assert invalid.store_calls == 0  # type: ignore[attr-defined]
    assert (broken.status, broken.outcome) == (400, "BAD_REQUEST")  # type: ignore[attr-defined]
    formatted = [json.loads(JsonFormatter().format(record)) for record in records]
    assert formatted[0]["client_request_id"] == "req-7"
    assert formatted[0]["request_id"] == write.request_id  # type: ignore[attr-defined]
    assert formatted[0]["duration_ms"] >= 0
    assert formatted[0]["level"] == "INFO"
    text = "\n".join(json.dumps(line) for line in formatted) + caplog.text
    assert token not in text and token.split(".")[1] not in text
    assert "secret words" not in text


def test_a_line_orjson_refuses_is_still_one_json_line() -> None:
    """An int over 64 bits or a lone surrogate in ``extra``: json writes what orjson can't."""
    fields = {"big": 2**70, "odd": "\ud800", "thing": object(), "word": "café"}
    record = logging.makeLogRecord({"msg": "seen %s", "args": ("é",), **fields})
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert (parsed["message"], parsed["big"], parsed["odd"], parsed["word"]) == (
        "seen é",
        2**70,
        "\ud800",
        "café",
    )
    assert parsed["thing"].startswith("<object object")
