"""Cloud Run: the image's command, with the image's environment, the service's and the one
Cloud Run adds, run as a process against the Firestore and Cloud Storage emulators; and
the service's settings as the app reads them where deployed."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from gql_api.settings import load_settings
from tests.conftest import FIRESTORE_PROJECT
from tests.helpers import free_port
from tests.image_storages import gcs_key, gcs_key_file, gcs_url, make_bucket
from tests.servers import running

__all__ = ["gcs_key", "gcs_key_file", "gcs_url"]  # fixtures, used by name

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "gcp"
VENV_BIN = Path(sys.executable).parent
# What the service's placeholders stand for in these tests.
PLACEHOLDERS = {"PROJECT_ID": FIRESTORE_PROJECT, "REGION": "europe-west1"}
# The variables Cloud Run sets in every container (besides PORT, which the image sets).
CLOUD_RUN = {
    "K_SERVICE": "gql-api",
    "K_REVISION": "gql-api-00001-abc",
    "K_CONFIGURATION": "gql-api",
}


def final_stage() -> tuple[dict[str, str], list[str]]:
    """The Dockerfile's last stage: its ENV and its CMD."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    stage = text.rsplit("\nFROM ", 1)[1]
    env: dict[str, str] = {}
    command: list[str] = []
    for line in stage.splitlines():
        if line.startswith("ENV "):
            for part in shlex.split(line[4:]):
                name, _, value = part.partition("=")
                env[name] = value
        elif line.startswith("CMD "):
            command = json.loads(line[4:])
    return env, command


def service() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "service.yaml").read_text())
    return loaded


def service_env(**values: str) -> dict[str, str]:
    (container,) = service()["spec"]["template"]["spec"]["containers"]
    env = {}
    for item in container["env"]:
        value = str(item["value"])
        for placeholder, replacement in {**PLACEHOLDERS, **values}.items():
            value = value.replace(placeholder, replacement)
        env[item["name"]] = value
    return env


def test_the_service_settings_load_as_deployed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("GQL_API_")]:
        monkeypatch.delenv(name)
    for name, value in {**CLOUD_RUN, **service_env(IMAGES_BUCKET="gql-api-images")}.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.deployed_on is not None and "Cloud Run" in settings.deployed_on
    assert (settings.store, settings.images_cloud, settings.auth) == (
        "firestore",
        "gcs",
        "firebase",
    )
    assert settings.trusted_proxies == 1 and settings.introspection_enabled is False
    template = service()["spec"]["template"]
    spec = template["spec"]
    assert spec["serviceAccountName"] == "gql-api@PROJECT_ID.iam.gserviceaccount.com"
    assert spec["containerConcurrency"] == 80 and spec["timeoutSeconds"] == 30
    scale = template["metadata"]["annotations"]
    assert (
        scale["autoscaling.knative.dev/minScale"],
        scale["autoscaling.knative.dev/maxScale"],
    ) == (
        "1",
        "100",
    )
    (container,) = spec["containers"]
    image_env, _ = final_stage()
    port = int(image_env["PORT"])
    assert container["ports"][0]["containerPort"] == port
    assert container["startupProbe"]["tcpSocket"]["port"] == port
    assert "livenessProbe" not in container  # /healthz asks the store: no restart loops


def test_the_image_runs_as_a_user_without_build_tools() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    stages = text.split("\nFROM ")
    assert len(stages) == 3  # ARG, the build stage, the final stage
    final = stages[-1]
    assert re.search(r"^USER 10001:10001$", final, re.MULTILINE)
    assert "pip install" not in final and "apt-get" not in final  # built in the first stage
    assert "COPY --from=build /opt/gql-api /opt/gql-api" in final
    assert "--only-binary=:all:" in stages[1] and "uninstall --yes pip" in stages[1]
    assert "--invalidation-mode unchecked-hash" in stages[1]
    env, command = final_stage()
    assert command == ["gql-api", "serve"]
    assert env["GQL_API_HOST"] == "0.0.0.0"  # noqa: S104 - the container's every address


def test_sigterm_mid_request_lets_it_finish_and_the_process_loads_google_only(
    firestore_host: str,
    gcs_url: str,
    gcs_key_file: Path,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    bucket = asyncio.run(make_bucket("gcs", request))
    image_env, command = final_stage()
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GQL_API_", "AWS_", "K_"))},
        **image_env,
        # The image's PATH puts its virtualenv first: here, this one.
        "PATH": image_env["PATH"].replace("/opt/gql-api/bin", str(VENV_BIN)),
        **service_env(IMAGES_BUCKET=bucket),
        **CLOUD_RUN,
        "PORT": str(port),  # Cloud Run's, as it may set another than the image's
        "GQL_API_HOST": "127.0.0.1",  # the one change: servers under test bind loopback
        "FIRESTORE_EMULATOR_HOST": firestore_host,
        "GQL_API_FIRESTORE_PREFIX": f"run{uuid.uuid4().hex[:8]}_",  # the emulator is shared
        "STORAGE_EMULATOR_HOST": gcs_url,
        "GOOGLE_APPLICATION_CREDENTIALS": str(gcs_key_file),
        "PYTHONPROFILEIMPORTTIME": "1",  # every module it imports, said on stderr
    }
    log = tmp_path / "server.log"
    with running(command, f"http://127.0.0.1:{port}/healthz", env=env, log_path=log) as server:
        body = json.dumps({"query": "{ posts { nodes { id } } limits { maxTags } }"}).encode()
        head = (
            f"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=20) as client:
            client.sendall(head + body[:10])  # the request has begun: its body is coming
            time.sleep(0.5)
            server.send_signal(signal.SIGTERM)
            time.sleep(1.0)
            with pytest.raises(ConnectionRefusedError):  # none accepted after SIGTERM
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
            client.sendall(body[10:])
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                chunk = client.recv(65536)
                if not chunk:
                    break
                answer += chunk
        started = time.monotonic()
        # uvicorn drains, then re-raises the signal it caught: "killed by SIGTERM".
        assert server.wait(timeout=10) in (0, -signal.SIGTERM)
        assert time.monotonic() - started < 10  # within Cloud Run's grace before SIGKILL
    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 200 OK", answer[:500]
    assert json.loads(rest.split(b"\r\n\r\n", 1)[1]) == {
        "data": {"posts": {"nodes": []}, "limits": {"maxTags": 10}}
    }
    said = log.read_text()
    assert "store firestore closed" in said
    imported = {
        line.split("|")[-1].strip()
        for line in said.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "google.cloud.firestore_v1" in imported and "uvicorn" in imported
    roots = {name.split(".")[0] for name in imported}
    assert not roots & {"azure", "boto3", "botocore", "aioboto3", "aiobotocore", "mangum"}


def test_the_readme_grants_what_the_storage_uses_and_fills_every_placeholder() -> None:
    readme = (DEPLOY.parent.parent / "README.md").read_text()
    section = readme.split("## Deploying to Cloud Run\n", 1)[1].split("\n## ", 1)[0]
    commands = section.split("```sh\n", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    (permissions,) = re.findall(r"--permissions=(\S+)", commands)
    granted = set(permissions.split(","))
    # What the GCS storage calls: signed uploads and reads, the move out of pending, the
    # probe; and the same names its error message gives an operator.
    assert granted == {
        "storage.objects.create",
        "storage.objects.get",
        "storage.objects.delete",
        "storage.buckets.get",
    }
    from gql_api.images.gcs import GcsImageStorage

    assert "storage.objects.create/get/delete and storage.buckets.get" in GcsImageStorage.fix
    assert "--role=roles/datastore.user" in commands
    assert re.search(
        r"service-accounts add-iam-policy-binding \$SA --member=serviceAccount:\$SA\s+"
        r"--role=roles/iam.serviceAccountTokenCreator",
        commands,
    )
    lines = (DEPLOY / "service.yaml").read_text().splitlines()
    values = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    placeholders = set(re.findall(r"\b[A-Z][A-Z_]{3,}\b", values))
    placeholders -= {"REGION", "PROJECT_ID", "IMAGES_BUCKET"}
    assert {p for p in placeholders if not p.startswith("GQL_API_")} == set()
    for name in ("PROJECT_ID", "REGION", "IMAGES_BUCKET"):
        assert f"s/{name}/" in commands
