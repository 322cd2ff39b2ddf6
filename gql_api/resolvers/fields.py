"""Resolvers of the fields of objects: a viewer's profile, a post's author and image URLs,
an edge's cursor.

``Post.author`` and ``Post.imageUrls`` usually answer from what their page's resolver
loaded for every post at once. For them the field's metadata also names a direct
resolver (``DIRECT_RESOLVER``): graphql-core's own contract, a value or an awaitable,
which the executor installs in place of Strawberry's wrapper, so a known answer costs no
coroutine (20 of each on a page of 20). The Strawberry resolvers say the same thing as
coroutines, for any schema run without that executor.
"""

from __future__ import annotations

from collections.abc import Awaitable
from inspect import isawaitable
from typing import TYPE_CHECKING, TypeVar

import strawberry
from graphql import GraphQLResolveInfo
from strawberry.types import Info

from gql_api.domain.records import ProfileRecord
from gql_api.resolvers.context import RequestContext
from gql_api.schema.values import Profile

if TYPE_CHECKING:
    from gql_api.schema.types import Post, PostEdge, Viewer

T = TypeVar("T")
Context = Info[RequestContext, None]
# Strawberry's info, or graphql-core's own when the executor calls a direct resolver.
AnyInfo = Context | GraphQLResolveInfo[RequestContext]
# The key, in a Strawberry field's metadata, of the graphql-core resolver to run instead.
DIRECT_RESOLVER = "gql_api.direct_resolver"


async def viewer_profile(root: strawberry.Parent[Viewer], info: Context) -> Profile:
    stored = await info.context.profiles.load(str(root.user_id))
    return Profile(user_id=root.user_id, nickname=stored.nickname or root.claimed_nickname)


def edge_cursor(root: strawberry.Parent[PostEdge]) -> str:
    return root.edge.cursor


async def post_author(root: strawberry.Parent[Post], info: Context) -> Profile:
    return await _settled(post_author_now(root, info))


async def post_image_urls(root: strawberry.Parent[Post], info: Context) -> list[str]:
    return await _settled(post_image_urls_now(root, info))


def post_author_now(root: Post, info: AnyInfo) -> Profile | Awaitable[Profile]:
    """The author's profile if its page loaded it, else an awaitable batched by the loader."""
    context: RequestContext = info.context
    known = context.known_profiles.get(str(root.author_id))
    if known is not None:
        return _author_profile(root, known)
    return _load_author(root, context)


def post_image_urls_now(root: Post, info: AnyInfo) -> list[str] | Awaitable[list[str]]:
    """The URLs if known (fetched with the page, or no key, or no bucket), else an
    awaitable that the request's loader batches with every other post's keys into one
    storage call."""
    keys = root.image_keys
    if not keys:
        return []
    context: RequestContext = info.context
    known = context.known_image_urls
    if all(key in known for key in keys):
        return [known[key] for key in keys]
    if context.service.images is None or context.images_failed:
        return []
    return context.load_image_urls(keys)


async def _load_author(root: Post, context: RequestContext) -> Profile:
    return _author_profile(root, await context.profiles.load(str(root.author_id)))


def _author_profile(root: Post, stored: ProfileRecord) -> Profile:
    return Profile(user_id=root.author_id, nickname=stored.nickname or root.author_nickname)


async def _settled(answer: T | Awaitable[T]) -> T:
    if isawaitable(answer):
        return await answer
    return answer
