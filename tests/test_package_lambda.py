"""`gql-api package lambda`: a reproducible zip that runs on the Lambda Python it targets."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import cli_env, run_cli
from tests.lambda_events import event
from tests.servers import reset_moto

# pyenv's own interpreter, not its shim (a shim answers 127 where 3.12 is not selected).
PYTHON_312 = [
    *sorted(str(p) for p in (Path.home() / ".pyenv" / "versions").glob("3.12*/bin/python3.12")),
    "/usr/bin/python3.12",
    shutil.which("python3.12"),
]
SECRET = "package-test-secret-0123456789abcdef"
ROOT = Path(__file__).resolve().parent.parent
INVOKE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from gql_api.lambda_handler import handler

class Context:
    aws_request_id = "pkg-1"
    function_name = "gql-api"

print(json.dumps(handler(json.loads(sys.argv[2]), Context())))
"""


def python_312() -> str:
    for candidate in PYTHON_312:
        if candidate and Path(candidate).exists():
            return candidate
    raise RuntimeError("Python 3.12 is needed to run the Lambda package (pyenv has it here)")


def run_unpacked(
    folder: Path, script: str, argument: str, settings: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """``script`` on Python 3.12 from an unpacked function package, as its platform runs
    it: isolated, no bytecode written (the code is read-only there), and ``-v`` saying
    where each module's code comes from (see ``compiled_from_source``)."""
    result = subprocess.run(
        [python_312(), "-I", "-B", "-v", "-c", script, str(folder), argument],
        env={"PATH": "/usr/bin:/bin", **settings},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def compiled_from_source(said: str, folder: Path) -> list[str]:
    """The modules under ``folder`` that ``-v`` says were compiled from source (said
    unquoted: "code object from <path>.py"; one from bytecode is quoted)."""
    return [line for line in said.splitlines() if line.startswith(f"# code object from {folder}/")]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    first = tmp_path_factory.mktemp("first") / "gql-api-lambda.zip"
    second = tmp_path_factory.mktemp("second") / "gql-api-lambda.zip"
    # Leftovers of this machine that must never reach the function: an old build tree
    # and an untracked file beside the package's assets.
    stale = ROOT / "build" / "lib" / "gql_api" / "stale_module.py"
    stray = ROOT / "gql_api" / "http" / "static" / "graphiql" / "stray-untracked.js"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text("raise SystemExit('stale')\n")
    stray.write_text("// not tracked by git\n")
    outputs = []
    manifest = tmp_path_factory.mktemp("manifest") / "manifest.json"
    manifest.write_text(json.dumps(TRUSTED_MANIFEST))
    try:
        # The second build from an environment that would scatter or rename bytecode.
        scattering = {"PYTHONPYCACHEPREFIX": str(first.parent / "elsewhere"), "PYTHONOPTIMIZE": "1"}
        for path, extra in ((first, {}), (second, scattering)):
            command = ["package", "lambda", "--python", "3.12", "-o", str(path)]
            command += ["--trusted-documents", str(manifest)]
            result = run_cli(command, cli_env(**extra), 900)
            assert result.returncode == 0, result.stderr
            assert (
                "not packed, git does not track it: gql_api/http/static/graphiql/stray"
                in result.stderr
            )
            outputs.append(result.stdout)
    finally:
        stale.unlink()
        stray.unlink()
    return first, second, outputs[0]


TRUSTED_MANIFEST = {"f00d": "{ limits { maxTags } }"}  # GraphQL Code Generator's format


def test_the_zip_carries_the_trusted_documents_at_its_root(built: tuple[Path, Path, str]) -> None:
    with zipfile.ZipFile(built[0]) as archive:
        assert json.loads(archive.read("trusted-documents.json")) == TRUSTED_MANIFEST


def test_the_same_sources_give_the_same_bytes(built: tuple[Path, Path, str]) -> None:
    first, second, said = built
    assert first.read_bytes() == second.read_bytes()
    assert "MiB zipped" in said and "MiB unzipped" in said
    assert "bytecode compiled by Python 3.12." in said


def test_the_zip_holds_the_aws_stack_for_linux_and_nothing_of_this_machine(
    built: tuple[Path, Path, str],
) -> None:
    with zipfile.ZipFile(built[0]) as archive:
        names = archive.namelist()
        infos = archive.infolist()
    assert names == sorted(names)
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    roots = {name.split("/")[0] for name in names}
    assert {"gql_api", "aioboto3", "mangum", "strawberry", "pydantic_core"} <= roots
    assert not roots & {"google", "azure", "bin"}
    # gql-api serve's server stack stays out: the function runs the app through Mangum.
    assert not {root.split("-")[0] for root in roots} & {"uvicorn", "uvloop", "httptools"}
    assert not [n for n in names if n.endswith("direct_url.json")]
    # Bytecode for Python 3.12, unchecked-hash (PEP 552 flags 0b01), each in its
    # module's own place, with no source beside it.
    compiled = {n for n in names if n.endswith(".pyc")}
    assert compiled and not [n for n in compiled if "__pycache__/" in n]
    assert "gql_api/app.pyc" in compiled and "gql_api/app.py" not in names
    assert not [n for n in names if n.startswith("gql_api/") and n.endswith(".py")]
    with zipfile.ZipFile(built[0]) as archive:
        header = archive.read("gql_api/app.pyc")[:8]
    assert int.from_bytes(header[4:8], "little") == 0b01
    assert "gql_api/stale_module.py" not in names
    # Build tools are not runtime: neither the package nor the zip carries them.
    build_tools = ("tools/", "gql_api/packaging", "gql_api/ops/packaging")
    assert not any(n.startswith(build_tools) for n in names)
    assert "gql_api/http/static/graphiql/stray-untracked.js" not in names
    # GraphiQL is off on Lambda by default: its assets stay out (--graphiql ships them).
    assert not [n for n in names if n.startswith("gql_api/http/static/graphiql/")]
    assert any(
        n.startswith("pydantic_core/") and "cpython-312-x86_64-linux-gnu" in n for n in names
    )


@pytest.fixture
def unpacked(built: tuple[Path, Path, str], tmp_path: Path) -> Path:
    """The zip unpacked, as Lambda lays the function out."""
    folder = tmp_path / "function"
    with zipfile.ZipFile(built[0]) as archive:
        archive.extractall(folder)
    return folder


def test_the_unpacked_zip_serves_an_event_with_python_312(
    unpacked: Path, tmp_path: Path, moto_url: str
) -> None:
    reset_moto(moto_url)
    settings = {
        "GQL_API_STORE": "dynamodb",
        "GQL_API_DYNAMODB_ENDPOINT": moto_url,
        "GQL_API_DYNAMODB_TABLE": "gql-api-package",
        "GQL_API_DEV_SECRET": SECRET,
        "GQL_API_SQLITE_PATH": str(tmp_path / "unused.db"),
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
    }
    assert run_cli(["provision"], cli_env(**settings)).returncode == 0
    sample = event(
        "http_v2", body=json.dumps({"query": "{ posts { nodes { id } } limits { maxTags } }"})
    )
    result = run_unpacked(unpacked, INVOKE, json.dumps(sample), settings)
    response = json.loads(result.stdout.strip().splitlines()[-1])
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {
        "data": {"posts": {"nodes": []}, "limits": {"maxTags": 10}}
    }
    assert response["headers"]["x-request-id"] == "pkg-1"
    # The modules were loaded from the zip's bytecode, none compiled from source.
    said = result.stderr
    assert f"code object from '{unpacked}/gql_api/app.pyc'" in said
    assert f"code object from '{unpacked}/aiobotocore/client.pyc'" in said
    assert compiled_from_source(said, unpacked) == []


INVOKE_ALL = """
import json, sys
sys.path.insert(0, sys.argv[1])
from gql_api.lambda_handler import handler

class Context:
    aws_request_id = "pkg-all"
    function_name = "gql-api"

print(json.dumps([handler(e, Context()) for e in json.load(open(sys.argv[2]))]))
"""


def invoke_all(
    unpacked: Path, settings: dict[str, str], bodies: list[dict[str, object]], token: str
) -> list[Any]:
    """Each GraphQL request in one warm function process, from its zip: their data."""
    events = [
        event("http_v2", body=json.dumps(body), headers={"authorization": f"Bearer {token}"})
        for body in bodies
    ]
    events_file = unpacked.parent / "events.json"
    events_file.write_text(json.dumps(events))
    result = run_unpacked(unpacked, INVOKE_ALL, str(events_file), settings)
    answers = [json.loads(r["body"]) for r in json.loads(result.stdout.strip().splitlines()[-1])]
    for answer in answers:
        assert "errors" not in answer, answer
    return [answer["data"] for answer in answers]


def test_the_slim_zip_answers_every_operation_on_dynamodb_and_s3(
    unpacked: Path, moto_url: str
) -> None:
    import boto3  # type: ignore[import-untyped]
    import httpx

    from gql_api.auth.dev import mint_dev_token
    from gql_api.settings import Settings

    # Only the services the function calls are modelled in the zip.
    assert sorted(p.name for p in (unpacked / "botocore" / "data").iterdir() if p.is_dir()) == [
        "dynamodb",
        "s3",
        "sts",
    ]
    reset_moto(moto_url)
    keys = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
    boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1", **keys).create_bucket(
        Bucket="gql-api-package-images"
    )
    settings = {
        "GQL_API_STORE": "dynamodb",
        "GQL_API_DYNAMODB_ENDPOINT": moto_url,
        "GQL_API_DYNAMODB_TABLE": "gql-api-package-all",
        "GQL_API_IMAGES_BUCKET": "gql-api-package-images",
        "AWS_ENDPOINT_URL_S3": moto_url,
        "AWS_DEFAULT_REGION": "us-east-1",
        "GQL_API_DEV_SECRET": SECRET,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
    }
    assert run_cli(["provision"], cli_env(**settings)).returncode == 0
    token = mint_dev_token(Settings(dev_secret=SECRET), SECRET, user_id="ada", nickname="Ada")
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    (uploads,) = invoke_all(
        unpacked,
        settings,
        [
            {
                "query": "mutation($s: [Int!]) { createUploadUrls(count: 1, "
                'contentTypes: ["image/png"], sizes: $s) '
                "{ key url method headers { name value } } }",
                "variables": {"s": [len(png)]},
            }
        ],
        token,
    )
    upload = uploads["createUploadUrls"][0]
    headers = {h["name"]: h["value"] for h in upload["headers"] if h["name"] != "Content-Length"}
    sent = httpx.request(upload["method"], upload["url"], content=png, headers=headers)
    assert sent.status_code == 200, sent.text
    (created,) = invoke_all(
        unpacked,
        settings,
        [
            {
                "query": "mutation($k: [String!]) { createPost(input: {content: "
                '"hello", tags: ["A"], imageKeys: $k}) { id version imageKeys } }',
                "variables": {"k": [upload["key"]]},
            }
        ],
        token,
    )
    post = created["createPost"]
    assert (post["version"], post["imageKeys"]) == (1, [upload["key"]])
    by_id = {"id": post["id"]}
    read, updated, profile, viewer = invoke_all(
        unpacked,
        settings,
        [
            {"query": '{ posts(tag: "a") { nodes { id content imageUrls author { nickname } } } }'},
            {
                "query": 'mutation($id: ID!) { updatePost(id: $id, input: {content: "edited"}) '
                "{ version content } }",
                "variables": by_id,
            },
            {"query": 'mutation { updateProfile(nickname: "Lovelace") { nickname } }'},
            {
                "query": '{ viewer { userId profile { nickname } } profile(userId: "ada") '
                "{ nickname } limits { maxTags } }"
            },
        ],
        token,
    )
    (node,) = read["posts"]["nodes"]
    assert (node["id"], node["content"], node["author"]) == (
        post["id"],
        "hello",
        {"nickname": "Ada"},
    )
    # A presigned GET of the attached image, which S3 (moto) serves.
    (image_url,) = node["imageUrls"]
    assert httpx.get(image_url).content == png
    assert updated == {"updatePost": {"version": 2, "content": "edited"}}
    assert profile == {"updateProfile": {"nickname": "Lovelace"}}
    assert viewer == {
        "viewer": {"userId": "ada", "profile": {"nickname": "Lovelace"}},
        "profile": {"nickname": "Lovelace"},
        "limits": {"maxTags": 10},
    }
    deleted, after = invoke_all(
        unpacked,
        settings,
        [
            {"query": "mutation($id: ID!) { deletePost(id: $id) { id } }", "variables": by_id},
            {
                "query": "query($id: ID!) { post(id: $id) { id } posts { nodes { id } } }",
                "variables": by_id,
            },
        ],
        token,
    )
    assert deleted == {"deletePost": {"id": post["id"]}}
    assert after == {"post": None, "posts": {"nodes": []}}
