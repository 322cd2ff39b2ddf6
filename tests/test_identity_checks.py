"""`gql-api doctor`'s identity lines: who the process is to each cloud it calls, asked of
that cloud's own SDK (moto's STS, a service-account key), never of a local server."""

from __future__ import annotations

from pathlib import Path

import pytest

from gql_api.ops.identity import clouds, identity_checks
from gql_api.settings import Settings
from tests.image_storages import GCS_ACCOUNT, gcs_key, gcs_key_file

__all__ = ["gcs_key", "gcs_key_file"]  # fixtures, used by name


def test_the_clouds_are_the_stores_and_the_buckets() -> None:
    assert clouds(Settings(store="sqlite")) == []
    assert clouds(Settings(store="dynamodb")) == ["aws"]
    assert clouds(Settings(store="dynamodb", images_bucket="b", images_provider="gcs")) == [
        "aws",
        "gcp",
    ]
    assert clouds(Settings(store="cosmos", cosmos_url="https://a.documents.azure.com/")) == [
        "azure"
    ]


async def test_aws_names_the_callers_arn(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_url)
    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    ((ok, line),) = await identity_checks(Settings(store="dynamodb"))
    assert ok, line
    assert line.startswith("identity aws: arn:aws:") and "(account 123456789012)" in line


async def test_a_cloud_that_does_not_answer_is_a_failed_line_with_its_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9")  # nothing listens
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    ((ok, line),) = await identity_checks(Settings(store="dynamodb", store_timeout=2))
    assert not ok
    assert line.startswith("identity aws: cannot tell who this is: ")
    assert line.endswith("fix: give the function its role (or set the AWS credentials)")


async def test_gcp_names_the_service_account(
    gcs_key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FIRESTORE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(gcs_key_file))
    ((ok, line),) = await identity_checks(Settings(store="firestore"))
    assert ok, line
    assert line.startswith(f"identity gcp: service account {GCS_ACCOUNT} (project ")


async def test_keys_and_local_servers_ask_no_cloud(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:9")
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_STS", raising=False)
    keyed = Settings(store="cosmos", cosmos_url="https://a.documents.azure.com/", cosmos_key="k")
    local_cosmos = Settings(store="cosmos", cosmos_url="http://127.0.0.1:8081")
    local_dynamodb = Settings(store="dynamodb", dynamodb_endpoint="http://127.0.0.1:9")
    lines = [
        line
        for settings in (keyed, local_cosmos, local_dynamodb, Settings(store="firestore"))
        for ok, line in await identity_checks(settings)
        if ok
    ]
    assert lines == [
        "identity azure: account keys (no Entra ID identity is used)",
        "identity azure: not asked (a local server)",
        "identity aws: not asked (GQL_API_DYNAMODB_ENDPOINT is a local server)",
        "identity gcp: not asked (FIRESTORE_EMULATOR_HOST: the emulator)",
    ]
