"""Per-request state handed to every resolver as ``info.context``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from strawberry.dataloader import DataLoader

from gql_api.auth.identity import Identity
from gql_api.domain.records import ProfileRecord
from gql_api.domain.service import PostService
from gql_api.errors import ImageStorageUnavailableError


@dataclass(slots=True)
class RequestContext:
    service: PostService
    viewer: Identity | None
    request_id: str
    profiles: DataLoader[str, ProfileRecord] = field(init=False)
    # Profiles a page resolver loaded for all its posts at once: Post.author then answers
    # from here without a coroutine per post.
    known_profiles: dict[str, ProfileRecord] = field(default_factory=dict)
    # Read URLs a page resolver fetched for all its posts' image keys at once (one storage
    # call); Post.imageUrls answers from here, else through ``image_urls()``.
    known_image_urls: dict[str, str] = field(default_factory=dict)
    _image_urls: DataLoader[str, str] | None = field(default=None, init=False)
    # Set once the image storage failed in this request: every imageUrls then answers []
    # (the posts still answer), and the response carries one error saying so.
    images_failed: bool = False
    # Errors for the response that null no field (added to its "errors", without a path).
    notices: list[dict[str, Any]] = field(default_factory=list)
    # The bytes the response may still hold: the execution layer's ResponseBudget, set
    # by the executor for each execution (typed loosely: resolvers sit below it).
    response_budget: Any = None

    def __post_init__(self) -> None:
        # One loader per request: every Post.author in a response is one store call.
        self.profiles = DataLoader(load_fn=self.service.load_profiles)

    def image_urls(self) -> DataLoader[str, str]:
        """Read URLs by image key: every Post.imageUrls of a response in one storage call.
        Made on first use, so a request that reads no image URL pays nothing for it."""
        if self._image_urls is None:
            self._image_urls = DataLoader(load_fn=self.service.read_image_urls)
        return self._image_urls

    async def load_image_urls(self, keys: Sequence[str]) -> list[str]:
        try:
            return await self.image_urls().load_many(keys)
        except ImageStorageUnavailableError as error:
            self.image_storage_failed(error)
            return []

    def image_storage_failed(self, error: ImageStorageUnavailableError) -> None:
        """A feed without its images rather than no feed: imageUrls answers []."""
        if not self.images_failed:
            self.images_failed = True
            self.notices.append(
                {
                    "message": f"{error.message} (imageUrls answered empty lists)",
                    "extensions": {**error.extensions, "requestId": self.request_id},
                }
            )
