"""A mutation's images (``domain/image_attachments.py``): each new key is inspected and
copied before the write; after it, pending uploads go and dropped images are deleted; after
a failed write the copies are undone, unless the store may have written after all. Over an
in-process stand-in for the storage (the real providers: tests/test_image_attach.py and
tests/test_upload_flow.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

import pytest

from gql_api.domain.image_attachments import ImageAttachments, check_upload
from gql_api.errors import BadUserInput, Conflict, StoreUnavailableError
from gql_api.images import ImageObject, NotAttachable

T = TypeVar("T")
PNG = ImageObject(size=100, content_type="image/png", token="v1")


class Storage:
    """Pending uploads by key; records every attach and delete it is asked for."""

    name = "stand-in"
    max_bytes = 1000

    def __init__(self, pending: dict[str, ImageObject], taken: Sequence[str] = ()) -> None:
        self.pending = pending
        self.taken = set(taken)  # keys whose copy the storage's conditions refuse
        self.attached: list[str] = []
        self.discarded: list[str] = []
        self.deleted: list[str] = []

    async def inspect(self, key: str) -> ImageObject | None:
        return self.pending.get(key)

    async def attach(self, key: str, token: str) -> bool:
        if key in self.taken:
            raise NotAttachable(key)
        self.attached.append(key)
        return True

    async def discard_pending(self, keys: Sequence[str]) -> None:
        self.discarded += keys

    async def delete(self, keys: Sequence[str]) -> None:
        self.deleted += keys


async def direct(operation: Awaitable[T]) -> T:
    return await operation


def attachments(storage: Any) -> ImageAttachments:
    return ImageAttachments(storage, direct, timeout=5, field="input.imageKeys")


async def write_failing(storage: Storage, error: Exception) -> None:
    """A mutation that attaches a new image, then whose store write fails with ``error``."""
    async with attachments(storage) as images:
        await images.attach(["alice/new.png"])
        raise error


OLD = "alice/" + "o" * 22 + ".png"  # of the form createUploadUrls hands out


async def test_a_successful_write_attaches_then_discards_uploads_and_drops_old_images() -> None:
    storage = Storage({"alice/new.png": PNG})
    async with attachments(storage) as images:
        await images.replace([OLD], ["alice/new.png"])
    assert storage.attached == ["alice/new.png"]
    assert storage.discarded == ["alice/new.png"]
    assert storage.deleted == [OLD]


async def test_a_legacy_key_dropped_from_a_migrated_post_is_not_deleted() -> None:
    # The earlier service let several posts show one object: it may still be shown.
    storage = Storage({})
    async with attachments(storage) as images:
        images.dropped = ["alice/photos/cat.jpg", OLD, "alice/" + "o" * 21 + ".png"]
    assert storage.deleted == [OLD]


async def test_keys_already_on_the_post_are_not_copied_again() -> None:
    storage = Storage({})
    async with attachments(storage) as images:
        await images.replace(["alice/a.png"], ["alice/a.png"])
    assert storage.attached == [] and storage.deleted == []


async def test_a_failed_write_undoes_the_copies_it_made() -> None:
    storage = Storage({"alice/new.png": PNG})
    with pytest.raises(Conflict):
        await write_failing(storage, Conflict("lost the race", current_version=2))
    assert storage.deleted == ["alice/new.png"]
    assert storage.discarded == []  # the upload stays, for a retry


async def test_an_unknown_write_outcome_keeps_the_copies() -> None:
    storage = Storage({"alice/new.png": PNG})
    with pytest.raises(StoreUnavailableError):
        await write_failing(storage, StoreUnavailableError("the store did not answer"))
    assert storage.deleted == [] and storage.discarded == []  # the post may be stored


async def test_a_refused_copy_names_its_key_and_is_not_undone() -> None:
    storage = Storage({"alice/a.png": PNG, "alice/b.png": PNG}, taken=["alice/b.png"])
    with pytest.raises(BadUserInput) as refused:
        async with attachments(storage) as images:
            await images.attach(["alice/a.png", "alice/b.png"])
    assert refused.value.extensions["field"] == "input.imageKeys[1]"
    assert storage.deleted == ["alice/a.png"]  # ours undone; b holds another's image


async def test_no_bucket_means_no_image_keys() -> None:
    with pytest.raises(BadUserInput, match="GQL_API_IMAGES_BUCKET"):
        async with attachments(None) as images:
            await images.attach(["alice/a.png"])


@pytest.mark.parametrize(
    ("pending", "says"),
    [
        (None, "has not been uploaded"),
        (ImageObject(1001, "image/png", "v"), "over the limit of 1000 bytes"),
        (ImageObject(0, "image/png", "v"), "is empty"),
        (ImageObject(10, "image/jpeg", "v"), "uploaded as 'image/jpeg', not 'image/png'"),
    ],
)
def test_an_upload_is_checked_before_it_is_attached(pending: ImageObject | None, says: str) -> None:
    with pytest.raises(BadUserInput, match=says) as refused:
        check_upload("imageKeys[0]", "alice/x.png", pending, 1000)
    assert refused.value.extensions["field"] == "imageKeys[0]"
    assert check_upload("imageKeys[0]", "alice/x.png", PNG, 1000) == "v1"
