"""The Strawberry schema: the public contract's Query, Mutation and Subscription, and its SDL."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.printer import print_schema
from strawberry.schema.config import StrawberryConfig

from gql_api.resolvers import posts as post_resolvers
from gql_api.resolvers import subscriptions as subscription_resolvers
from gql_api.resolvers import viewer as viewer_resolvers
from gql_api.schema.types import Post, PostConnection, PostEvent, Viewer
from gql_api.schema.values import DATETIME, DeletePostPayload, Limits, Profile, UploadUrl


@strawberry.type
class Query:
    post: Post | None = strawberry.field(
        resolver=post_resolvers.post, description="The post with this id; null when there is none."
    )
    posts: PostConnection = strawberry.field(
        resolver=post_resolvers.posts,
        description="Posts newest first, optionally only those with a tag and/or by an author.",
    )
    viewer: Viewer | None = strawberry.field(
        resolver=viewer_resolvers.viewer, description="The signed-in caller; null when anonymous."
    )
    profile: Profile | None = strawberry.field(
        resolver=viewer_resolvers.profile,
        description="Any user's profile (nickname null when unset).",
    )
    limits: Limits = strawberry.field(resolver=viewer_resolvers.limits)


@strawberry.type
class Mutation:
    create_post: Post = strawberry.field(resolver=post_resolvers.create_post)
    update_post: Post = strawberry.field(resolver=post_resolvers.update_post)
    delete_post: DeletePostPayload = strawberry.field(resolver=post_resolvers.delete_post)
    update_profile: Profile = strawberry.field(
        resolver=viewer_resolvers.update_profile,
        description="Set the caller's nickname: trimmed, then 1-50 characters, "
        "no control characters.",
    )
    create_upload_urls: list[UploadUrl] = strawberry.field(
        resolver=post_resolvers.create_upload_urls,
        description="Signed upload URLs for `count` (1 to maxImagesPerPost) new images of "
        "the caller, under fresh keys {userId}/{random}.{ext}: upload each image with "
        "exactly the given method, headers and form fields before expiresAt, then list "
        "the keys in createPost/updatePost imageKeys, which check that each was uploaded, "
        "within the server's size limit, with its key's type. `contentTypes` gives one "
        "type per image, from image/png, image/jpeg, image/webp, image/gif; null or left "
        "out, every image is image/jpeg. A Content-Length among the headers (with "
        "`sizes`) is the body's length: the HTTP client sets it from the body (a browser "
        "always does, and cannot be told to); send the other headers as given.",
    )


@strawberry.type
class Subscription:
    post_events: PostEvent = strawberry.subscription(  # type: ignore[assignment]
        resolver=subscription_resolvers.post_events,
        description="Posts created, edited and deleted from now on, through any instance, "
        "optionally only those with a tag and/or by an author (normalized as for posts). "
        "Over graphql-transport-ws (WebSocket) or GraphQL over SSE on /graphql; at least "
        "once, in version order for each post.",
    )


schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    config=StrawberryConfig(scalar_map={datetime: DATETIME}),
)


def sdl() -> str:
    return print_schema(schema) + "\n"
