"""Attaching uploaded images to a post, and removing them with it.

A mutation that writes a post uses one ``ImageAttachments`` as an ``async with``
around its store write. Before the write, ``attach`` inspects each newly listed key's
pending upload (side by side, one storage call each): it must exist, hold at most
``max_bytes`` and have its extension's content type; then each is copied to its key
inside the storage (side by side again), conditional on being the very upload
inspected. After a successful write the pending uploads are discarded and the images
the post no longer shows (``dropped``) deleted (but for a migrated post's legacy keys,
which the earlier service let posts share); after a failed one the copies made
are deleted, so nothing is left half-written. Both clean-ups are best effort: a
failure is logged, never the mutation's (a lifecycle rule on ``uploads/`` removes
pending uploads anyway).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Collection, Sequence
from types import TracebackType
from typing import Protocol, Self, TypeVar

from gql_api.errors import BadUserInput, StoreUnavailableError
from gql_api.images import (
    ImageObject,
    ImageStorage,
    NotAttachable,
    content_type_of,
    is_issued_image_key,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


class ImagesCall(Protocol):
    """Bounds a storage call in time and turns its failures into the API's error."""

    def __call__(self, operation: Awaitable[T], /) -> Awaitable[T]: ...


class ImageAttachments:
    """The images one mutation attaches (``attach``, ``replace``) or drops (``dropped``)."""

    def __init__(
        self, images: ImageStorage | None, call: ImagesCall, timeout: float, field: str
    ) -> None:
        self._images = images
        self._call = call
        self._timeout = timeout
        self._field = field
        self.attached: list[str] = []  # copied (or maybe copied) by this mutation
        self.claimed: list[str] = []  # newly on the post: their uploads go after the write
        self.dropped: Sequence[str] = ()  # attached images the written post no longer shows

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        error_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if images := self._images:
            if error is None:
                await self._best_effort(
                    "discard pending uploads", images.discard_pending, self.claimed
                )
                # A migrated post's legacy keys stay: the earlier service let posts share one.
                dropped = [key for key in self.dropped if is_issued_image_key(key)]
                await self._best_effort("delete dropped images", images.delete, dropped)
            elif not isinstance(error, StoreUnavailableError):
                await self._best_effort("undo attached images", images.delete)
            # STORE_UNAVAILABLE: the write may have been stored after all, so its images
            # stay (and so do the uploads, for a retry): never a stored post without them.

    async def attach(self, keys: Sequence[str], already: Collection[str] = ()) -> None:
        """Check and attach the keys not ``already`` on the post (``keys`` are valid
        keys of the post's author); ``BAD_USER_INPUT`` names the first one refused."""
        new = [
            (f"{self._field}[{index}]", key)
            for index, key in enumerate(keys)
            if key not in already and key not in self.claimed
        ]
        if not new:
            return
        images = self._images
        if images is None:
            raise BadUserInput(
                "image uploads are off on this server: no images bucket is set "
                "(GQL_API_IMAGES_BUCKET), so a post cannot list imageKeys",
                field=self._field,
            )
        found = await self._call(asyncio.gather(*(images.inspect(key) for _, key in new)))
        tokens = [
            check_upload(where, key, pending, images.max_bytes)
            for (where, key), pending in zip(new, found, strict=True)
        ]
        refused = await self._call(self._copy_all(images, [key for _, key in new], tokens))
        for where, key in new:
            if key in refused:
                raise BadUserInput(
                    f"{where} {key!r} was replaced while being attached, or is already "
                    "attached to a post: upload the image again under a new key",
                    field=where,
                )

    async def replace(self, current: Sequence[str], keys: Sequence[str]) -> None:
        """An edit from the post's ``current`` keys to ``keys``: attach the new ones,
        and drop (after the write) those it no longer lists."""
        await self.attach(keys, already=current)
        self.dropped = [key for key in current if key not in keys]

    async def _copy_all(self, images: ImageStorage, keys: list[str], tokens: list[str]) -> set[str]:
        """Attach each key side by side; the keys the storage's conditions refused."""
        # Counted before copying, so a failure or timeout midway still undoes each copy.
        self.attached.extend(keys)
        self.claimed.extend(keys)
        outcomes = await asyncio.gather(
            *(images.attach(key, token) for key, token in zip(keys, tokens, strict=True)),
            return_exceptions=True,
        )
        refused = {o.key for o in outcomes if isinstance(o, NotAttachable)}
        # Refused, or found copied already (an earlier attempt's, or another post's): the
        # key may hold another post's image, which is not ours to undo.
        others = {key for key, o in zip(keys, outcomes, strict=True) if o is False} | refused
        self.attached = [key for key in self.attached if key not in others]
        self.claimed = [key for key in self.claimed if key not in refused]
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, NotAttachable):
                raise outcome
        return refused

    async def _best_effort(
        self,
        what: str,
        operation: _KeysOperation,
        keys: Sequence[str] | None = None,
    ) -> None:
        keys = self.attached if keys is None else keys
        if not keys or self._images is None:
            return
        try:
            async with asyncio.timeout(self._timeout):
                await operation(list(keys))
        except Exception as exc:  # noqa: BLE001 - logged; the post is written either way
            log.warning(
                "image storage %s: could not %s (%d object(s)): %r",
                self._images.name,
                what,
                len(keys),
                exc,
            )


class _KeysOperation(Protocol):
    def __call__(self, keys: Sequence[str], /) -> Awaitable[None]: ...


def check_upload(where: str, key: str, pending: ImageObject | None, max_bytes: int) -> str:
    """The pending upload's version token, if it may be attached; else ``BAD_USER_INPUT``."""
    if pending is None:
        raise BadUserInput(
            f"{where} {key!r} has not been uploaded (or was already attached): upload the "
            "image through its createUploadUrls URL first",
            field=where,
        )
    if pending.size > max_bytes:
        raise BadUserInput(
            f"{where} {key!r} is {pending.size} bytes, over the limit of {max_bytes} bytes",
            field=where,
        )
    if pending.size == 0:
        raise BadUserInput(f"{where} {key!r} is empty: upload the image again", field=where)
    expected = content_type_of(key)
    sent = (pending.content_type or "").strip().lower()
    if sent != expected:
        raise BadUserInput(
            f"{where} {key!r} was uploaded as {pending.content_type!r}, not {expected!r} as "
            "its key says: upload it again with the Content-Type handed out",
            field=where,
        )
    return pending.token
