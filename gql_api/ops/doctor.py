"""Checks behind ``gql-api doctor``: each answers (ok, one line saying what was seen)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from gql_api.auth.dev import dev_secret
from gql_api.domain.records import PostRecord
from gql_api.images.base import Check
from gql_api.ops.identity import identity_checks
from gql_api.settings import Settings
from gql_api.stores import create_store
from gql_api.stores.base import PageQuery, PostStore


async def run_checks(settings: Settings) -> list[Check]:
    checks: list[Check] = [
        *await identity_checks(settings),
        *await _auth(settings),
        *await image_checks(settings),
    ]
    store = create_store(settings)
    try:
        async with asyncio.timeout(settings.store_timeout * 3):
            await store.open()
    except Exception as error:  # noqa: BLE001 - reported as a failed check
        return [*checks, (False, f"store {store.name}: cannot open: {_said(error)}")]
    try:
        async with asyncio.timeout(settings.store_timeout * 3):
            checks += await store.inspect()
        checks.append(await _probe(store, settings))
    except Exception as error:  # noqa: BLE001 - reported as a failed check
        checks.append((False, f"store {store.name}: {_said(error)}"))
    finally:
        await store.close()
    return checks


async def image_checks(settings: Settings) -> list[Check]:
    """The images bucket answers and upload and read URLs can be signed."""
    from gql_api.images import open_image_storage

    storage = open_image_storage(settings)
    if storage is None:
        return [(True, "images: no bucket set (GQL_API_IMAGES_BUCKET): no uploads, no imageUrls")]
    try:
        async with asyncio.timeout(settings.store_timeout * 3):
            return await storage.check()
    except Exception as error:  # noqa: BLE001 - reported as a failed check
        return [(False, f"images {storage.name}: {_said(error)}")]
    finally:
        await storage.close()


async def _auth(settings: Settings) -> list[Check]:
    if settings.auth == "dev":
        return [await _dev_secret(settings)]
    checks = [await _key_set(settings)]
    if settings.auth == "entra" or settings.oidc_discovery_url is not None:
        checks.append(await _issuer(settings))
    return checks


async def _dev_secret(settings: Settings) -> Check:
    source = "GQL_API_DEV_SECRET" if settings.dev_secret else str(settings.data_dir / "dev-secret")
    try:
        await asyncio.to_thread(dev_secret, settings)
    except Exception as error:  # noqa: BLE001 - reported as a failed check
        return False, f"auth: dev secret from {source}: {error}"
    return True, f"auth: dev tokens signed with the secret from {source}"


async def _probe(store: PostStore, settings: Settings) -> Check:
    """Write, read, page and delete a probe post: proves read and write access.

    The probe is dated at the epoch, so it sorts after every real post and no reader
    paging the feed meets it in the moment it exists.
    """
    probe = PostRecord(
        id=f"doctor-{uuid.uuid4().hex}",
        author_id="gql-api-doctor",
        content="probe",
        is_markdown=False,
        tags=(),
        image_keys=(),
        created_at=datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        updated_at=None,
        version=1,
    )
    try:
        async with asyncio.timeout(settings.store_timeout * 3):
            await store.ping()
            await store.create(probe)
            read = await store.get(probe.id)
            if read != probe:
                return False, f"store {store.name}: the probe post read back differently"
            await store.list_posts(PageQuery(first=1, author_id=probe.author_id))
            await store.delete(probe)
    except Exception as error:  # noqa: BLE001 - reported as a failed check
        return False, f"store {store.name}: probe failed: {error!r}; fix: check the permissions"
    return True, f"store {store.name}: read, conditional write, page and delete work"


async def _key_set(settings: Settings) -> Check:
    """The provider's signing keys can be fetched (what every sign-in needs)."""
    from gql_api.auth.jwks import KeySet, jwt_config

    config = jwt_config(settings)
    keys = KeySet(config.jwks_url)
    try:
        await keys.refresh()
    finally:
        await keys.close()
    if not keys.known:
        return False, (
            f"auth {settings.auth}: no signing keys from {config.jwks_url}; fix: check the "
            "URL (or the preset's ids) and that this host can reach it"
        )
    return True, (
        f"auth {settings.auth}: {len(keys.known)} signing keys from {config.jwks_url}; "
        f"issuer {config.issuer}, audience {config.audience}"
    )


async def _issuer(settings: Settings) -> Check:
    """The provider's discovery document names the issuer configured (the tenant, the cloud)."""
    from gql_api.auth.entra import discovery_url, issuer_fix
    from gql_api.auth.jwks import fetch_discovery, jwt_config

    config = jwt_config(settings)
    url = settings.oidc_discovery_url
    if settings.auth == "entra":
        url = discovery_url(settings)
    where = f"auth {settings.auth}: the discovery document {url}"
    try:
        document = await fetch_discovery(url or "")
    except Exception as error:  # noqa: BLE001 - reported as a failed check
        return False, (
            f"{where} cannot be read: {_said(error)}; fix: check the tenant (or provider) id "
            "and that this host can reach it"
        )
    found = document["issuer"]
    if found != config.issuer:
        fix = f"set GQL_API_JWT_ISSUER={found}, or correct the provider's ids"
        if settings.auth == "entra":
            fix = issuer_fix(found, document)
        return False, f"{where} names issuer {found}, not {config.issuer}; fix: {fix}"
    return True, f"{where} names issuer {found}, as configured"


def _said(error: BaseException) -> str:
    return str(error) or type(error).__name__
