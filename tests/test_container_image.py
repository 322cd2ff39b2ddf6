"""The Cloud Run image, built by podman from deploy/gcp/Dockerfile on a base image made
from Debian's packages (mmdebstrap: no registry is reachable here), then run from its
own filesystem as its own user with its own command and environment.

This machine's OCI runtimes cannot set a container's resource limits (setrlimit is
refused to them), so the build runs its steps with podman's chroot isolation and the
test runs the image's command in a chroot of the image's filesystem: the same files,
user, command and environment, in this machine's network namespace (on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_port
from tests.servers import running
from tests.test_cloud_run import CLOUD_RUN, service_env

ROOT = Path(__file__).resolve().parent.parent
BASE = "localhost/gql-api-test-base:bookworm"
IMAGE = "localhost/gql-api:test"
# Debian's Python and venv: what the official python image gives the Dockerfile.
BASE_PACKAGES = "python3,python3-venv,python-is-python3,ca-certificates"


def podman(*args: str, timeout: float = 900) -> str:
    if shutil.which("podman") is None or shutil.which("mmdebstrap") is None:
        raise RuntimeError("podman and mmdebstrap are needed: run `make test` (it installs them)")
    done = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"podman {' '.join(args)}:\n{done.stderr[-3000:]}"
    return done.stdout.strip()


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The image built from the checkout, and its configuration."""
    exists = subprocess.run(["podman", "image", "exists", BASE], check=False)
    if exists.returncode != 0:  # made once per machine: a minimal Debian with Python
        tar = tmp_path_factory.mktemp("base") / "base.tar"
        made = subprocess.run(
            ["mmdebstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", "bookworm", tar],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert made.returncode == 0, made.stderr[-3000:]
        podman("import", str(tar), BASE)
    certificates = "/etc/ssl/certs"  # this machine's, through which the registries answer
    podman(
        "build",
        "--isolation", "chroot",
        "--no-cache",  # each run builds the checkout anew
        "--build-arg", f"BASE={BASE}",
        "--volume", f"{certificates}:{certificates}:ro",
        "--build-arg", f"PIP_CERT={certificates}/ca-certificates.crt",
        "--file", str(ROOT / "deploy" / "gcp" / "Dockerfile"),
        "--tag", IMAGE,
        str(ROOT),
    )  # fmt: skip
    (inspected,) = json.loads(podman("image", "inspect", IMAGE))
    config: dict[str, Any] = inspected["Config"]
    return config


@pytest.fixture
def rootfs(image: dict[str, Any]) -> Iterator[Path]:
    path = Path(podman("image", "mount", IMAGE))
    try:
        yield path
    finally:
        podman("image", "unmount", IMAGE)


def test_the_image_runs_gql_api_as_its_own_user_with_nothing_to_build_with(
    image: dict[str, Any], rootfs: Path
) -> None:
    assert image["User"] == "10001:10001"
    assert image["Cmd"] == ["gql-api", "serve"]
    env = dict(item.split("=", 1) for item in image["Env"])
    assert (env["GQL_API_HOST"], env["PORT"]) == ("0.0.0.0", "8080")  # noqa: S104
    assert env["PATH"].startswith("/opt/gql-api/bin:")
    assert not [name for name in env if name.startswith("PIP_")]  # the build's, not the image's
    for tool in ("gcc", "cc", "make", "git"):
        assert not (rootfs / "usr" / "bin" / tool).exists(), tool
    site = next((rootfs / "opt" / "gql-api" / "lib").glob("python3.*/site-packages"))
    assert not list(site.glob("pip")) and not list(site.glob("setuptools"))
    assert (site / "uvloop").is_dir() and (site / "google" / "cloud" / "firestore").is_dir()
    assert not (site / "azure").exists() and not (site / "boto3").exists()
    compiled = next((site / "gql_api" / "__pycache__").glob("app.cpython-3*.pyc"))
    assert int.from_bytes(compiled.read_bytes()[4:8], "little") == 0b01  # unchecked hash


def test_the_image_serves_on_firestore_and_stops_on_sigterm(
    image: dict[str, Any], rootfs: Path, firestore_host: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **dict(item.split("=", 1) for item in image["Env"]),
        **{k: v for k, v in service_env().items() if k != "GQL_API_IMAGES_BUCKET"},
        **CLOUD_RUN,
        "PORT": str(port),
        "GQL_API_HOST": "127.0.0.1",  # the one change: servers under test bind loopback
        "FIRESTORE_EMULATOR_HOST": firestore_host,
        "GQL_API_FIRESTORE_PREFIX": f"image{uuid.uuid4().hex[:8]}_",  # the emulator is shared
    }
    log = tmp_path / "server.log"
    chroot = ["/usr/sbin/chroot", f"--userspec={image['User']}", str(rootfs), *image["Cmd"]]
    url = f"http://127.0.0.1:{port}"
    with running(chroot, f"{url}/healthz", env=env, log_path=log) as server:
        status = Path(f"/proc/{server.pid}/status").read_text()
        uid = next(line for line in status.splitlines() if line.startswith("Uid:"))
        assert uid.split()[1:] == ["10001"] * 4
        request = urllib.request.Request(  # noqa: S310 - loopback
            f"{url}/graphql",
            data=json.dumps({"query": "{ posts { nodes { id } } }"}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            assert json.loads(response.read()) == {"data": {"posts": {"nodes": []}}}
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=10) in (0, -signal.SIGTERM)
    said = log.read_text()
    assert "store firestore closed" in said
    assert os.path.basename(image["Cmd"][0]) == "gql-api"
