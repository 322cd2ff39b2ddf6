"""Image storage: signed upload URLs for fresh keys, read URLs for stored keys, and the
checks and server-side copies that attach an upload to a post.

``open_image_storage(settings)`` builds the configured provider (S3, Azure Blob or
Cloud Storage), or answers None when no images bucket is set. A provider's module and
SDK are imported only when it is chosen, so an app without images loads none of them.
"""

from __future__ import annotations

import os
from datetime import timedelta

from gql_api.images.base import (
    Check,
    ImageObject,
    ImageStorage,
    ImageStorageError,
    NotAttachable,
    UploadUrl,
)
from gql_api.images.keys import (
    CONTENT_TYPES,
    ImageInputError,
    content_type_of,
    is_issued_image_key,
    is_valid_image_key,
    new_image_key,
)
from gql_api.settings import Settings

__all__ = [
    "CONTENT_TYPES",
    "Check",
    "ImageInputError",
    "ImageObject",
    "ImageStorage",
    "ImageStorageError",
    "NotAttachable",
    "UploadUrl",
    "content_type_of",
    "is_issued_image_key",
    "is_valid_image_key",
    "new_image_key",
    "open_image_storage",
    "upload_url_ttl",
]


def upload_url_ttl(settings: Settings) -> timedelta:
    """How long an upload URL works (``GQL_API_UPLOAD_URL_TTL``)."""
    return timedelta(seconds=settings.upload_url_ttl)


def open_image_storage(settings: Settings) -> ImageStorage | None:
    """The configured image storage, not yet connected; None without an images bucket.

    Nothing is sent over the network here: ``open()`` (or the first URL asked for)
    creates the SDK client, once per process.
    """
    bucket, provider = settings.images_bucket, settings.images_cloud
    if bucket is None or provider is None:
        return None
    public, timeout = settings.images_public_base_url, settings.store_timeout
    max_bytes = settings.max_image_bytes
    read_ttl = timedelta(seconds=settings.images_read_url_ttl)
    if provider == "s3":
        from gql_api.images.s3 import S3ImageStorage

        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        return S3ImageStorage(
            bucket,
            endpoint_url=endpoint or None,
            public_base_url=public,
            read_ttl=read_ttl,
            timeout=timeout,
            max_bytes=max_bytes,
        )
    if provider == "azure":
        from gql_api.images.azure_blob import AzureBlobImageStorage

        # Never a public base URL: only a read SAS fixes the type a blob is served with.
        secret = settings.azure_storage_connection_string
        return AzureBlobImageStorage(
            bucket,
            connection_string=None if secret is None else secret.get_secret_value(),
            account_url=settings.azure_storage_account_url,
            read_ttl=read_ttl,
            timeout=timeout,
            max_bytes=max_bytes,
        )
    from gql_api.images.gcs import GcsImageStorage

    return GcsImageStorage(
        bucket, public_base_url=public, read_ttl=read_ttl, timeout=timeout, max_bytes=max_bytes
    )
