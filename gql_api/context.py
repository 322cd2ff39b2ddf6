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

    def __post_init__(self) -> None:
        # One loader per request: every Post.author in a response is one store call.
        self.profiles = DataLoader(load_fn=self.service.load_profiles)
