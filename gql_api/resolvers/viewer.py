"""Resolvers of who is asking, profiles and limits."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from gql_api.domain.validation import check_user_id
from gql_api.resolvers.context import RequestContext
from gql_api.schema.types import Viewer
from gql_api.schema.values import Limits, Profile

Context = Info[RequestContext, None]


def viewer(info: Context) -> Viewer | None:
    identity = info.context.viewer
    if identity is None:
        return None
    return Viewer(
        user_id=strawberry.ID(identity.user_id),
        is_admin=identity.is_admin,
        claimed_nickname=identity.nickname,
    )


async def profile(info: Context, user_id: strawberry.ID) -> Profile | None:
    uid = check_user_id(str(user_id), "userId")
    stored = await info.context.profiles.load(uid)
    identity = info.context.viewer
    claimed = identity.nickname if identity is not None and identity.user_id == uid else None
    return Profile(user_id=user_id, nickname=stored.nickname or claimed)


async def update_profile(info: Context, nickname: str) -> Profile:
    stored = await info.context.service.update_profile(info.context.viewer, nickname)
    # Later fields of this response read the new nickname, not one loaded before it.
    info.context.profiles.prime(stored.user_id, stored, force=True)
    return Profile(user_id=strawberry.ID(stored.user_id), nickname=stored.nickname)


def limits() -> Limits:
    return Limits()
