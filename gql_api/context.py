"""Per-request state handed to every resolver as ``info.context``."""

from __future__ import annotations

from dataclasses import dataclass, field

from strawberry.dataloader import DataLoader

from gql_api.auth import Identity
from gql_api.service import PostService
from gql_api.stores.base import ProfileRecord


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

    def __post_init__(self) -> None:
        # One loader per request: every Post.author in a response is one store call.
        self.profiles = DataLoader(load_fn=self.service.load_profiles)

    def image_urls(self) -> DataLoader[str, str]:
        """Read URLs by image key: every Post.imageUrls of a response in one storage call.
        Made on first use, so a request that reads no image URL pays nothing for it."""
        if self._image_urls is None:
            self._image_urls = DataLoader(load_fn=self.service.read_image_urls)
        return self._image_urls
