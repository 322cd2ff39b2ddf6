"""Azure Blob Storage: blob-scoped SAS URLs, with azure-storage-blob.

Two ways to sign, both local HMACs (no request per URL):

- an account key (``AZURE_STORAGE_CONNECTION_STRING``): a service SAS per blob;
- an Entra ID identity (``GQL_API_AZURE_STORAGE_ACCOUNT_URL`` and
  ``DefaultAzureCredential``): a user-delegation SAS, signed with a user-delegation
  key fetched once and kept until it nears its end (at most about two requests a day, not per URL).
  The identity needs "Storage Blob Delegator" on the account and "Storage Blob Data
  Contributor" on the container.

An upload SAS allows create only (``sp=c``) on its one blob (the key's name under
``uploads/``): Azure refuses (403) a Put Blob through it once the blob exists, and
setting properties or metadata or taking a lease, so the URL writes the upload once
while it is there. Create also allows Snapshot Blob, so deletes include snapshots. A
read SAS allows read on its one blob only. Neither kind of SAS can bind the request's
Content-Type (a user-delegation SAS could, with a service version Azure
does not generally offer yet) nor its size (a size stated with ``sizes`` is checked
against the limit, not bound): the service checks both on the pending blob before
attaching it, by a copy inside the account from the ETag it inspected onto a
name holding nothing; the copy stamps that ETag on the key (its only metadata), so a
refused copy still succeeds when the key holds the copy of that very version (the
stamp is the proof: a client sets Content-MD5 with its Put Blob). Each read SAS also
fixes the Content-Type the blob is served with to the one its key's extension stands
for. Hence no public base URL here: unsigned
reads would serve a blob with the type it was uploaded with (settings refuse the
combination). The Azure-only header ``x-ms-blob-type: BlockBlob`` is part of each upload.

A user-delegation key ends at most 7 days after Azure's clock, and each SAS it signs
must end before it does; so the URLs it signs last at most ``MAX_DELEGATED_URL_TTL``
(settings refuse longer ones on that path).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from gql_api.images.base import (
    DEFAULT_MAX_IMAGE_BYTES,
    Clock,
    CloudImageStorage,
    ImageObject,
    ImageStorageError,
    NotAttachable,
    UploadUrl,
    check_ttl,
    pending_name,
    plan_uploads,
    public_url,
    utc_now,
)
from gql_api.images.keys import content_type_of

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.storage.blob import UserDelegationKey
    from azure.storage.blob.aio import BlobClient, BlobServiceClient

# A user-delegation key is asked for this long (or twice the longest URL lifetime) and
# renewed once less than the longest URL lifetime plus this margin is left.
DELEGATION_KEY_LIFETIME = timedelta(days=1)
DELEGATION_KEY_MARGIN = timedelta(minutes=5)
CLOCK_SKEW = timedelta(minutes=5)  # a delegation key starts this early
# Azure refuses a key ending more than 7 days after its own clock; ours may run ahead
# by up to CLOCK_SKEW.
MAX_DELEGATION_KEY_LIFETIME = timedelta(days=7) - CLOCK_SKEW
# The longest URL a user-delegation key signs: a key of the longest lifetime covers it
# plus the margin, and then still serves about a day before it is renewed.
MAX_DELEGATED_URL_TTL = timedelta(days=6)
# The read SAS a copy reads its source with lasts this long (the copy takes a moment).
COPY_SOURCE_TTL = timedelta(minutes=5)
COPY_POLL_SECONDS = 0.1  # between checks of a copy Azure answers as still pending
# The metadata a copy stamps on the key: the ETag of the upload version it copied.
SOURCE_ETAG = "source_etag"


def delegation_key_lifetime(longest: timedelta) -> timedelta:
    """How long a new user-delegation key is asked for, to sign URLs of at most
    ``longest`` (at most ``MAX_DELEGATED_URL_TTL``)."""
    if longest > MAX_DELEGATED_URL_TTL:
        raise ImageStorageError(
            f"a URL signed with a user-delegation key lasts at most {MAX_DELEGATED_URL_TTL}, "
            f"not {longest}"
        )
    return min(max(DELEGATION_KEY_LIFETIME, 2 * longest), MAX_DELEGATION_KEY_LIFETIME)


def delegation_key_expiring(expiry: datetime | None, now: datetime, longest: timedelta) -> bool:
    """Whether a key ending at ``expiry`` (None: no key yet) must be renewed before it
    signs a URL of ``longest`` lifetime: the URL must end a margin before the key."""
    return expiry is None or expiry - now < longest + DELEGATION_KEY_MARGIN


class AzureBlobImageStorage(CloudImageStorage["BlobServiceClient"]):
    name = "azure"
    kind = "container"
    failure = "does not answer or cannot sign"
    fix = (
        "create it, check the connection string or grant the identity Storage Blob "
        "Delegator and Storage Blob Data Contributor"
    )

    def __init__(
        self,
        container: str,
        *,
        connection_string: str | None = None,
        account_url: str | None = None,
        credential: AsyncTokenCredential | None = None,
        read_ttl: timedelta = timedelta(hours=1),
        timeout: float = 5.0,
        max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
        clock: Clock = utc_now,
    ) -> None:
        if (connection_string is None) == (account_url is None):
            raise ImageStorageError(
                "Azure Blob needs exactly one of a connection string (account key) "
                "or an account URL (Entra ID identity)"
            )
        # Never a public base URL: only a read SAS fixes the type a blob is served with.
        super().__init__(
            container,
            public_base_url=None,
            read_ttl=read_ttl,
            timeout=timeout,
            max_bytes=max_bytes,
            clock=clock,
        )
        if account_url is not None:
            delegation_key_lifetime(read_ttl)  # refuses a read TTL no key can cover
        self._connection_string = connection_string
        self._account_url = account_url
        self._credential = credential
        self._own_credential = False
        self._account_name = ""
        self._account_key: str | None = None
        self._container_url = ""
        self._protocol = "https"
        self._delegation_key: UserDelegationKey | None = None
        self._delegation_key_expiry: datetime | None = None

    async def _connect(self) -> BlobServiceClient:
        from azure.storage.blob.aio import BlobServiceClient

        options: dict[str, Any] = {"connection_timeout": self.timeout, "read_timeout": self.timeout}
        if self._connection_string is not None:
            client = BlobServiceClient.from_connection_string(self._connection_string, **options)
            key = getattr(client.credential, "account_key", None)
            if not key:
                raise ImageStorageError("the Azure Storage connection string has no AccountKey")
            self._account_key = key
        else:
            assert self._account_url is not None
            if self._credential is None:
                from azure.identity.aio import DefaultAzureCredential

                self._credential = DefaultAzureCredential()
                self._own_credential = True
            client = BlobServiceClient(self._account_url, credential=self._credential, **options)
        if not client.account_name:
            raise ImageStorageError(f"no storage account name in {client.url!r}")
        self._account_name = client.account_name
        self._container_url = f"{client.url.rstrip('/')}/{self.bucket}"
        # https only, except for a local emulator served over plain http
        self._protocol = "https,http" if client.url.startswith("http://") else "https"
        return client

    async def _signing_key(self, longest: timedelta) -> dict[str, Any]:
        """``account_key=`` or ``user_delegation_key=`` for ``generate_blob_sas``."""
        client = await self._opened()
        if self._account_key is not None:
            return {"account_key": self._account_key}
        async with self._lock:
            now = self._clock()
            expiry = self._delegation_key_expiry
            if delegation_key_expiring(expiry, now, longest):
                lifetime = delegation_key_lifetime(longest)
                self._delegation_key = await client.get_user_delegation_key(
                    now - CLOCK_SKEW, now + lifetime
                )
                self._delegation_key_expiry = now + lifetime
            return {"user_delegation_key": self._delegation_key}

    def _url(self, key: str, sas: str) -> str:
        return f"{public_url(self._container_url, key)}?{sas}"

    async def upload_urls(
        self,
        user_id: str,
        content_types: Sequence[str],
        ttl: timedelta,
        sizes: Sequence[int] | None = None,
    ) -> list[UploadUrl]:
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        check_ttl(ttl)
        # Sizes are checked, not bound: a SAS cannot bind one (attaching checks the size).
        uploads = plan_uploads(user_id, content_types, sizes, self.max_bytes)
        signing = await self._signing_key(ttl)
        expires_at = self._clock() + ttl
        # Create without write: only a blob that does not exist yet can be written.
        permission = BlobSasPermissions(create=True)
        urls = []
        for key, content_type, _ in uploads:
            name = pending_name(key)
            sas = generate_blob_sas(
                self._account_name,
                self.bucket,
                name,
                permission=permission,
                expiry=expires_at,
                protocol=self._protocol,
                **signing,
            )
            headers = (("x-ms-blob-type", "BlockBlob"), ("Content-Type", content_type))
            urls.append(UploadUrl(key, self._url(name, sas), "PUT", headers, expires_at))
        return urls

    async def _signed_read_urls(self, client: BlobServiceClient, keys: Sequence[str]) -> list[str]:
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        signing = await self._signing_key(self.read_ttl)
        expiry = self._clock() + self.read_ttl
        permission = BlobSasPermissions(read=True)
        return [
            self._url(
                key,
                generate_blob_sas(
                    self._account_name,
                    self.bucket,
                    key,
                    permission=permission,
                    expiry=expiry,
                    protocol=self._protocol,
                    content_type=content_type_of(key),
                    **signing,
                ),
            )
            for key in keys
        ]

    async def inspect(self, key: str) -> ImageObject | None:
        from azure.core.exceptions import ResourceNotFoundError

        container = (await self._opened()).get_container_client(self.bucket)
        try:
            found = await container.get_blob_client(pending_name(key)).get_blob_properties()
        except ResourceNotFoundError:
            return None
        return ImageObject(found.size, found.content_settings.content_type, found.etag)

    async def attach(self, key: str, token: str) -> bool:
        from azure.core import MatchConditions
        from azure.core.exceptions import (
            ResourceExistsError,
            ResourceModifiedError,
            ResourceNotFoundError,
        )
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        client = await self._opened()
        name = pending_name(key)
        # The copy reads its source through a read SAS: any signing key authorizes it.
        sas = generate_blob_sas(
            self._account_name,
            self.bucket,
            name,
            permission=BlobSasPermissions(read=True),
            expiry=self._clock() + COPY_SOURCE_TTL,
            protocol=self._protocol,
            **await self._signing_key(COPY_SOURCE_TTL),
        )
        target = client.get_container_client(self.bucket).get_blob_client(key)
        try:
            copy = await target.start_copy_from_url(
                self._url(name, sas),
                metadata={SOURCE_ETAG: token},  # the version copied, for a later attach
                source_etag=token,
                source_match_condition=MatchConditions.IfNotModified,
                match_condition=MatchConditions.IfMissing,
            )
            status, copied = copy.get("copy_status"), True
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError) as error:
            status, copied = await self._copied_status(target, token), False
            if status is None:
                raise NotAttachable(key) from error
        while status == "pending":  # a copy inside one account is quick; the caller bounds it
            await asyncio.sleep(COPY_POLL_SECONDS)
            status = (await target.get_blob_properties()).copy.status
        if status != "success":
            raise ImageStorageError(f"Azure Blob's copy of {name!r} ended {status!r}")
        return copied

    async def _copied_status(self, target: BlobClient, token: str) -> str | None:
        """The copy status of the blob at the key if an earlier attach copied it from the
        upload version ``token`` (its stamp), else None: one properties read, on a
        refused copy only. Not Content-MD5: a client sets it with its upload."""
        try:
            found = await target.get_blob_properties()
        # Unknown counts as not copied: the caller would undo a maybe-copy, maybe another's.
        except Exception:  # noqa: BLE001
            return None
        if found.metadata.get(SOURCE_ETAG) != token:
            return None
        return str(found.copy.status)

    async def _delete_objects(self, client: BlobServiceClient, names: list[str]) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        container = client.get_container_client(self.bucket)

        async def delete_one(name: str) -> None:
            with contextlib.suppress(ResourceNotFoundError):  # already gone: as asked
                # An upload SAS (create) can snapshot its blob; a snapshot blocks a plain delete.
                await container.delete_blob(name, delete_snapshots="include")

        await asyncio.gather(*(delete_one(name) for name in names))

    async def _probe(self, client: BlobServiceClient) -> str:
        await client.get_container_client(self.bucket).get_container_properties()
        await self._signing_key(self.read_ttl)
        how = "account key" if self._account_key else "user-delegation key"
        return f"SAS signed with {how}"

    async def _disconnect(self, client: BlobServiceClient) -> None:
        await client.close()
        if self._own_credential and self._credential is not None:
            credential, self._credential, self._own_credential = self._credential, None, False
            await credential.close()
