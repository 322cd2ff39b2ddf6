"""`gql-api package azure`: a reproducible zip for Azure Functions' zip deploy that runs,
unpacked as the host lays it out, on the Python it targets."""

from __future__ import annotations

import asyncio
import json
import uuid
import zipfile
from pathlib import Path

import pytest

from tests.conftest import COSMOS_KEY
from tests.helpers import cli_env, run_cli
from tests.image_storages import azurite_connection, azurite_url, make_bucket
from tests.test_package_lambda import compiled_from_source, run_unpacked

__all__ = ["azurite_url"]  # the fixture, used by name

SECRET = "package-test-secret-0123456789abcdef"
SITE = ".python_packages/lib/site-packages"
# What the Python worker does: the app's root and its shipped packages on the path, then
# function_app loaded and its functions indexed; then one invocation each.
INVOKE = """
import asyncio, json, sys
from types import SimpleNamespace
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/.python_packages/lib/site-packages"]
import azure.functions as func
import function_app

(function,) = function_app.app.get_functions()
handler = function.get_user_function()

async def main():
    answers = []
    for method, path, headers, body in json.loads(sys.argv[2]):
        request = func.HttpRequest(method, "https://gql-api.azurewebsites.net" + path,
                                   headers=headers, body=json.dumps(body).encode() if body else b"")
        context = SimpleNamespace(invocation_id="pkg-inv", function_name="http_app_func")
        response = await handler(request, context)
        answers.append([response.status_code, json.loads(response.get_body())])
    print(json.dumps(answers))

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    first = tmp_path_factory.mktemp("first") / "gql-api-azure.zip"
    second = tmp_path_factory.mktemp("second") / "gql-api-azure.zip"
    said = []
    # The second build from an environment that would scatter or rename bytecode.
    scattering = {"PYTHONPYCACHEPREFIX": str(first.parent / "elsewhere"), "PYTHONOPTIMIZE": "1"}
    for path, extra in ((first, {}), (second, scattering)):
        result = run_cli(["package", "azure", "-o", str(path)], cli_env(**extra), 900)
        assert result.returncode == 0, result.stderr
        said.append(result.stdout)
    return first, second, said[0]


def test_the_same_sources_give_the_same_bytes(built: tuple[Path, Path, str]) -> None:
    first, second, said = built
    assert first.read_bytes() == second.read_bytes()
    assert "MiB zipped" in said and "bytecode compiled by Python 3.12." in said


def test_the_zip_is_laid_out_for_the_functions_host(built: tuple[Path, Path, str]) -> None:
    with zipfile.ZipFile(built[0]) as archive:
        names = archive.namelist()
        infos = archive.infolist()
        host = json.loads(archive.read("host.json"))
        header = archive.read(f"{SITE}/gql_api/app.pyc")[:8]
    assert names == sorted(names)
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    # The host looks for function_app.py at the root (kept as source) and host.json there.
    assert {"function_app.py", "host.json"} <= set(names)
    assert host["extensions"]["http"]["routePrefix"] == ""
    assert {n for n in names if "/" not in n} == {"function_app.py", "host.json"}
    roots = {n.split("/")[3] for n in names if n.startswith(f"{SITE}/")}
    assert {"gql_api", "azure", "strawberry", "pydantic_core", "aiohttp"} <= roots
    assert not {r.split("-")[0] for r in roots} & {
        "boto3", "botocore", "aioboto3", "mangum", "google", "uvicorn", "uvloop", "httptools",
    }  # fmt: skip
    assert not [n for n in names if n.startswith(f"{SITE}/bin/") or "direct_url.json" in n]
    # Sourceless unchecked-hash bytecode (PEP 552 flags 0b01), GraphiQL's assets left out.
    assert int.from_bytes(header[4:8], "little") == 0b01
    assert not [n for n in names if n.startswith(f"{SITE}/gql_api/") and n.endswith(".py")]
    assert not [n for n in names if "/static/graphiql/" in n]
    assert any("cpython-312-x86_64-linux-gnu" in n for n in names if "pydantic_core" in n)


def test_the_unpacked_zip_serves_the_function_with_python_312(
    built: tuple[Path, Path, str],
    tmp_path: Path,
    cosmos_url: str,
    azurite_url: str,
    request: pytest.FixtureRequest,
) -> None:
    folder = tmp_path / "wwwroot"
    with zipfile.ZipFile(built[0]) as archive:
        archive.extractall(folder)
    settings = {
        "GQL_API_STORE": "cosmos",
        "GQL_API_COSMOS_URL": cosmos_url,
        "GQL_API_COSMOS_KEY": COSMOS_KEY,
        "GQL_API_COSMOS_VERIFY_TLS": "false",
        "GQL_API_COSMOS_DATABASE": f"package{uuid.uuid4().hex[:8]}",
        "GQL_API_IMAGES_BUCKET": asyncio.run(make_bucket("azure", request)),
        "GQL_API_AZURE_STORAGE_CONNECTION_STRING": azurite_connection(azurite_url),
        "GQL_API_DEV_SECRET": SECRET,
    }
    assert run_cli(["provision"], cli_env(**settings)).returncode == 0
    token = run_cli(["token", "--user", "ada"], cli_env(**settings)).stdout.strip()
    signed_in = {"content-type": "application/json", "authorization": f"Bearer {token}"}
    plain = {"content-type": "application/json"}
    upload = "mutation { createUploadUrls(count: 1) { key } }"
    create = 'mutation { createPost(input: {content: "zipped"}) { content author { userId } } }'
    calls = [
        ["POST", "/graphql", signed_in, {"query": create}],
        ["POST", "/graphql", plain, {"query": "{ posts { nodes { content } } }"}],
        ["POST", "/graphql", signed_in, {"query": upload}],
        ["GET", "/healthz", {}, None],
    ]
    result = run_unpacked(folder, INVOKE, json.dumps(calls), settings)
    created, listed, uploads, health = json.loads(result.stdout.strip().splitlines()[-1])
    assert created == [
        200,
        {"data": {"createPost": {"content": "zipped", "author": {"userId": "ada"}}}},
    ]
    assert listed == [200, {"data": {"posts": {"nodes": [{"content": "zipped"}]}}}]
    assert uploads[0] == 200 and len(uploads[1]["data"]["createUploadUrls"]) == 1
    assert health == [200, {"status": "ok", "store": "cosmos"}]
    said = result.stderr
    assert f"code object from '{folder}/{SITE}/gql_api/app.pyc'" in said
    assert compiled_from_source(said, folder) == []  # every module from the zip's bytecode
