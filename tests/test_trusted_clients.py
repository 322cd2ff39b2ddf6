"""Trusted documents with the clients users have: the README's operations made into a
manifest by Apollo's own generator (`generate-persisted-query-manifest`), `gql-api serve`
started with it, and Apollo Client (its persisted queries link, ids from the manifest)
running them by id, queries by GET; an operation the manifest lacks is refused with
UNTRUSTED_DOCUMENT, sent by an unknown hash or as text."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from gql_api.auth.dev import mint_dev_token
from gql_api.settings import Settings
from tests import servers
from tests.helpers import DEV_SECRET, NO_RATE_LIMITS, cli_env

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CLIENT = Path(__file__).with_name("apollo_client")
GENERATOR = CLIENT / "node_modules" / ".bin" / "generate-persisted-query-manifest"
QUERY_SCRIPT = CLIENT / "query.mjs"
BLOCK = re.compile(r"^```graphql[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
OPERATION = re.compile(r"(query|mutation|subscription)\s+([_A-Za-z][_0-9A-Za-z]*)|\{")
# Not in the manifest: what someone might send who was not built with it.
UNTRUSTED = "query Mine { posts(first: 1) { edges { node { id content } } } }"


def readme_operations() -> dict[str, tuple[str, str]]:
    """The README's ```graphql blocks that are operations: name -> (type, text)."""
    operations: dict[str, tuple[str, str]] = {}
    for block in BLOCK.findall(README.read_text(encoding="utf-8")):
        code = "\n".join(
            line for line in block.splitlines() if not line.lstrip().startswith("#")
        ).strip()
        start = OPERATION.match(code)
        if start is None:
            continue  # a schema excerpt, a fragment: no operation
        if start.group(1) is None:
            raise AssertionError(f"an anonymous operation in README.md: Apollo needs names: {code}")
        operations[start.group(2)] = (start.group(1), block)
    return operations


def require_client() -> None:
    if not GENERATOR.exists() or not (CLIENT / "node_modules" / "@apollo" / "client").exists():
        raise RuntimeError(
            "Apollo's client and manifest generator are not installed: run `make test` (it "
            "runs `npm ci --prefix tests/apollo_client`)"
        )


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    """The manifest `generate-persisted-query-manifest` makes of the README's operations."""
    require_client()
    documents = tmp_path / "documents"
    documents.mkdir()
    for name, (_, text) in readme_operations().items():
        (documents / f"{name}.graphql").write_text(text, encoding="utf-8")
    config = tmp_path / "persisted-query-manifest.config.json"
    config.write_text(
        json.dumps({"documents": ["documents/**/*.graphql"], "output": "manifest.json"})
    )
    # Its paths are relative to the working directory, not to the config file.
    made = subprocess.run(
        [str(GENERATOR), "--config", str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    return tmp_path / "manifest.json"


@pytest.fixture
def server(tmp_path: Path, manifest: Path) -> Iterator[tuple[str, Path]]:
    log = tmp_path / "gql-api.log"
    env = cli_env(
        GQL_API_DEV_SECRET=DEV_SECRET,
        GQL_API_SQLITE_PATH=str(tmp_path / "gql-api.db"),
        GQL_API_TRUSTED_DOCUMENTS=str(manifest),
        **NO_RATE_LIMITS,
    )
    with servers.gql_api_server(env, log_path=log) as (url, _):
        yield url, log


def apollo_client(
    url: str, manifest: Path, token: str, operations: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each operation's result from query.mjs (Apollo Client), with its requests."""
    spec = {"url": f"{url}/graphql", "manifest": str(manifest), "token": token}
    ran = subprocess.run(
        ["node", str(QUERY_SCRIPT), json.dumps({**spec, "operations": operations})],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    results: list[dict[str, Any]] = json.loads(ran.stdout)["results"]
    return results


def access_log(log: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("logger") == "gql_api.access"]


def test_the_generator_makes_a_manifest_of_the_readme_operations(manifest: Path) -> None:
    found = readme_operations()
    assert {"Feed", "Write"} <= found.keys(), found  # the README's quick start
    made = json.loads(manifest.read_text())
    assert made["format"] == "apollo-persisted-query-manifest"
    assert made["version"] == 1
    assert {op["name"]: op["type"] for op in made["operations"]} == {
        name: kind for name, (kind, _) in found.items()
    }


def test_apollo_client_runs_the_manifest_by_id_and_nothing_else(
    server: tuple[str, Path], manifest: Path, tmp_path: Path
) -> None:
    url, log = server
    settings = Settings(dev_secret=DEV_SECRET, sqlite_path=tmp_path / "x.db")
    token = mint_dev_token(settings, DEV_SECRET, user_id="alice", nickname="Alice")
    readme = readme_operations()
    ids = {op["name"]: op["id"] for op in json.loads(manifest.read_text())["operations"]}
    trusted = [
        {"name": name, "type": readme[name][0], "query": readme[name][1], "link": "manifest"}
        for name in ("Write", "Feed")
    ]
    untrusted = [
        {"name": "Mine", "type": "query", "query": UNTRUSTED, "link": link}
        for link in ("runtime", "text")
    ]
    write, feed, by_hash, by_text = apollo_client(url, manifest, token, trusted + untrusted)

    assert write["errors"] is None, write
    post = write["data"]["createPost"]
    assert post["tags"] == ["intro", "hello"]
    assert post["author"]["nickname"] == "Alice"
    assert feed["errors"] is None, feed
    nodes = [edge["node"] for edge in feed["data"]["posts"]["edges"]]
    assert [node["id"] for node in nodes] == [post["id"]]
    assert nodes[0]["content"] == "Hello, feed!"

    # Each went by id alone, once (no retry with the text): the query by GET, with no
    # query text in its URL; the mutation by POST, with none in its body.
    [get] = feed["requests"]
    assert get["method"] == "GET"
    params = parse_qs(urlsplit(get["url"]).query)
    assert "query" not in params, get
    assert json.loads(params["extensions"][0])["persistedQuery"]["sha256Hash"] == ids["Feed"]
    [post_request] = write["requests"]
    assert post_request["method"] == "POST"
    body = json.loads(post_request["body"])
    assert "query" not in body, body
    assert body["extensions"]["persistedQuery"]["sha256Hash"] == ids["Write"]

    # Not in the manifest: refused by its hash (by GET, not retried with the text) and as
    # text.
    for refused in (by_hash, by_text):
        assert refused["data"] is None, refused
        codes = [error["extensions"]["code"] for error in refused["errors"]]
        assert codes == ["UNTRUSTED_DOCUMENT"], refused
        assert [request["method"] for request in refused["requests"]] == ["GET"], refused
    assert "query" not in parse_qs(urlsplit(by_hash["requests"][0]["url"]).query)

    # The server's access log: the two by id ran, the other two were refused.
    graphql = [line for line in access_log(log) if line["message"].split()[1] == "/graphql"]
    outcomes = [(line["method"], line["operation"], line["outcome"]) for line in graphql]
    assert outcomes == [
        ("POST", "Write", "OK"),
        ("GET", "Feed", "OK"),
        ("GET", None, "UNTRUSTED_DOCUMENT"),
        ("GET", None, "UNTRUSTED_DOCUMENT"),
    ]
