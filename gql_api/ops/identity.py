"""``gql-api doctor``'s identity lines: who this process is to each cloud it calls (the
store's, and the images bucket's), as that cloud's own SDK resolves its credentials.

A deployment's failures of access read better once the identity is known: "AccessDenied"
means little until it names the role that was denied. Against a local server (an
endpoint override, an emulator) no cloud identity is in play, and none is asked for:
asking would send the SDK to the instance metadata addresses of a machine that has none.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from typing import Any

from gql_api.images.base import Check
from gql_api.settings import Settings

_STORE_CLOUDS = {"dynamodb": "aws", "firestore": "gcp", "cosmos": "azure"}
_IMAGE_CLOUDS = {"s3": "aws", "gcs": "gcp", "azure": "azure"}
_LOCAL = ("http://127.0.0.1", "http://localhost", "https://127.0.0.1", "https://localhost")


def clouds(settings: Settings) -> list[str]:
    """The clouds this configuration calls, in a stable order."""
    used = {_STORE_CLOUDS.get(settings.store)}
    if settings.images_bucket is not None and settings.images_cloud is not None:
        used.add(_IMAGE_CLOUDS[settings.images_cloud])
    return sorted(cloud for cloud in used if cloud is not None)


async def identity_checks(settings: Settings) -> list[Check]:
    checks = []
    for cloud in clouds(settings):
        check = {"aws": _aws, "gcp": _gcp, "azure": _azure}[cloud]
        try:
            async with asyncio.timeout(settings.store_timeout * 3):
                checks.append(await check(settings))
        except Exception as error:  # noqa: BLE001 - reported as a failed check
            said = str(error) or type(error).__name__
            checks.append(
                (False, f"identity {cloud}: cannot tell who this is: {said}; {_FIX[cloud]}")
            )
    return checks


_FIX = {
    "aws": "fix: give the function its role (or set the AWS credentials)",
    "gcp": "fix: run as a service account (Cloud Run's --service-account), or set "
    "GOOGLE_APPLICATION_CREDENTIALS",
    "azure": "fix: give the app a managed identity (AZURE_CLIENT_ID for a user-assigned "
    "one), or sign in with `az login`",
}


async def _aws(settings: Settings) -> Check:
    if _is_local(settings.dynamodb_endpoint) and not os.environ.get("AWS_ENDPOINT_URL_STS"):
        return True, "identity aws: not asked (GQL_API_DYNAMODB_ENDPOINT is a local server)"
    import aioboto3

    async with aioboto3.Session().client("sts") as sts:
        who = await sts.get_caller_identity()
    return True, f"identity aws: {who['Arn']} (account {who['Account']})"


async def _gcp(settings: Settings) -> Check:
    if os.environ.get("FIRESTORE_EMULATOR_HOST") and not os.environ.get(
        "GOOGLE_APPLICATION_CREDENTIALS"
    ):
        return True, "identity gcp: not asked (FIRESTORE_EMULATOR_HOST: the emulator)"
    import google.auth

    credentials, project = await asyncio.to_thread(google.auth.default)
    email = getattr(credentials, "service_account_email", None)
    if email == "default":  # Cloud Run's metadata server names it once asked for a token
        from google.auth.transport.requests import Request

        await asyncio.to_thread(credentials.refresh, Request())
        email = getattr(credentials, "service_account_email", None)
    who = f"service account {email}" if email else f"{type(credentials).__name__} credentials"
    return True, f"identity gcp: {who} (project {project or 'not set'})"


async def _azure(settings: Settings) -> Check:
    keyed_store = settings.store != "cosmos" or settings.cosmos_key is not None
    keyed_images = (
        settings.images_bucket is None
        or settings.images_cloud != "azure"
        or settings.azure_storage_connection_string is not None
    )
    if keyed_store and keyed_images:
        return True, "identity azure: account keys (no Entra ID identity is used)"
    if _is_local(settings.cosmos_url) or _is_local(settings.azure_storage_account_url):
        return True, "identity azure: not asked (a local server)"
    from azure.identity.aio import DefaultAzureCredential

    async with DefaultAzureCredential() as credential:
        token = await credential.get_token("https://storage.azure.com/.default")
    claims = _claims(token.token)
    who = claims.get("xms_mirid") or claims.get("upn") or claims.get("appid") or "unknown"
    return True, f"identity azure: {who} (object {claims.get('oid')}, tenant {claims.get('tid')})"


def _claims(token: str) -> dict[str, Any]:
    """A JWT's payload, read without verifying it: only to name who holds it."""
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def _is_local(url: str | None) -> bool:
    return url is not None and url.startswith(_LOCAL)
