"""Each cloud SDK is imported only when its store is chosen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SDKS = {
    "aws": ("boto3", "botocore", "aioboto3", "aiobotocore"),
    "gcp": ("google", "grpc"),
    "azure": ("azure",),
}
PROBE = """
import asyncio, json, sys
from gql_api.app import create_app
from gql_api.settings import load_settings
store = create_app(load_settings()).state.store
async def cycle():
    await store.open()
    await store.close()
asyncio.run(cycle())
names = {m.split(".")[0] for m in sys.modules}
print(json.dumps(sorted(names | {m for m in sys.modules if m.startswith("gql_api.stores.")})))
"""


@pytest.mark.parametrize(
    ("store", "own_sdk", "own_module"),
    [
        ("sqlite", None, "sqlite"),
        ("dynamodb", "aws", "dynamodb"),
        ("firestore", "gcp", "firestore"),
    ],
)
def test_opening_the_store_loads_only_the_chosen_stores_sdk(
    store: str, own_sdk: str | None, own_module: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GQL_API_")}
    env.update(
        GQL_API_STORE=store,
        GQL_API_DEV_SECRET="x" * 40,
        GQL_API_FIRESTORE_PROJECT="p",
        FIRESTORE_EMULATOR_HOST="127.0.0.1:9",  # opening the client sends nothing
        GQL_API_DYNAMODB_ENDPOINT="http://127.0.0.1:9",
        GQL_API_SQLITE_PATH=str(tmp_path / "db.sqlite"),
    )
    loaded = set(
        json.loads(
            subprocess.run(
                [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
            ).stdout
        )
    )
    stores = {m.removeprefix("gql_api.stores.") for m in loaded if m.startswith("gql_api.stores.")}
    assert stores - {"base", "keyset"} == {own_module}
    for cloud, packages in SDKS.items():
        present = loaded & set(packages)
        if cloud == own_sdk:
            assert present, f"{store} should have loaded its SDK"
        else:
            assert not present, f"{store} loaded {present}"
