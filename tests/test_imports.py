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
    ("store", "own_sdk", "own_modules"),
    [
        ("sqlite", None, {"sqlite", "sqlite_schema", "sqlite_changes"}),
        ("dynamodb", "aws", {"dynamodb", "dynamodb_table"}),
        ("firestore", "gcp", {"firestore", "firestore_changes"}),
    ],
)
def test_opening_the_store_loads_only_the_chosen_stores_sdk(
    store: str, own_sdk: str | None, own_modules: set[str], tmp_path: Path
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
    # Besides what every store shares (the interface, positions, the document mapping).
    assert stores - {"base", "keyset", "documents"} == own_modules
    for cloud, packages in SDKS.items():
        present = loaded & set(packages)
        if cloud == own_sdk:
            assert present, f"{store} should have loaded its SDK"
        else:
            assert not present, f"{store} loaded {present}"


IMAGES_PROBE = """
import asyncio, json, sys
from gql_api.images import open_image_storage
from gql_api.settings import load_settings
storage = open_image_storage(load_settings())
async def cycle():
    if storage is not None:
        await storage.open()  # builds the client; sends nothing
        await storage.close()
asyncio.run(cycle())
names = {m.split(".")[0] for m in sys.modules}
print(json.dumps(sorted(names | {m for m in sys.modules if m.startswith("gql_api.images.")})))
"""


@pytest.mark.parametrize(
    ("store", "bucket", "own_sdk", "own_module"),
    [
        ("dynamodb", "images", "aws", "s3"),
        ("firestore", "images", "gcp", "gcs"),
        ("cosmos", "images", "azure", "azure_blob"),
        ("dynamodb", None, None, None),
    ],
)
def test_image_storage_loads_only_its_providers_sdk(
    store: str, bucket: str | None, own_sdk: str | None, own_module: str | None, tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    account = {
        "type": "service_account",
        "project_id": "p",
        "private_key_id": "k",
        "private_key": key.decode(),
        "client_email": "images@p.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    (tmp_path / "sa.json").write_text(json.dumps(account))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GQL_API_")}
    env.update(
        GQL_API_STORE=store,
        GQL_API_COSMOS_URL="http://127.0.0.1:9",
        AWS_ENDPOINT_URL_S3="http://127.0.0.1:9",
        STORAGE_EMULATOR_HOST="http://127.0.0.1:9",
        GOOGLE_APPLICATION_CREDENTIALS=str(tmp_path / "sa.json"),
        AZURE_STORAGE_CONNECTION_STRING=(
            "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=a2V5;"
            "BlobEndpoint=http://127.0.0.1:9/a;"
        ),
    )
    if bucket is not None:
        env["GQL_API_IMAGES_BUCKET"] = bucket
    loaded = set(
        json.loads(
            subprocess.run(
                [sys.executable, "-c", IMAGES_PROBE],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
    )
    providers = {
        m.removeprefix("gql_api.images.") for m in loaded if m.startswith("gql_api.images.")
    }
    assert providers - {"base", "keys"} == ({own_module} if own_module else set())
    for cloud, packages in SDKS.items():
        present = loaded & set(packages)
        if cloud == own_sdk:
            assert present, f"{own_module} should have loaded its SDK"
        else:
            assert not present, f"{own_module} loaded {present}"
