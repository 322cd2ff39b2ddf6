"""The Strawberry schema: the public contract's Query and Mutation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from operator import attrgetter
from typing import cast

import strawberry
from graphql import GraphQLFieldResolver, GraphQLObjectType
from strawberry.printer import print_schema
from strawberry.schema.config import StrawberryConfig
from strawberry.types.field import StrawberryField

from gql_api import fast_fields
from gql_api.resolvers import posts as post_resolvers
from gql_api.resolvers import viewer as viewer_resolvers
from gql_api.schema.types import (
    DATETIME,
    DeletePostPayload,
    Limits,
    Post,
    PostConnection,
    Profile,
    UploadUrl,
    Viewer,
    _post_author,
    _post_image_urls,
)


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


schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    config=StrawberryConfig(scalar_map={datetime: DATETIME}),
)


def _plain_attribute_resolvers(built: strawberry.Schema) -> None:
    """Resolve plain fields with a bare call: attribute fields (no resolver) and fields
    whose resolver takes only the parent object (no argument, no info, not async), none
    with an extension or a permission. Strawberry's generic field wrapper builds an Info
    and an argument dict per field; for the ~150 plain fields of a page that work
    dominates the request, and buys nothing where there is nothing to pass. Those
    answering scalars also skip graphql-core's per-field work (``gql_api.fast_fields``)."""
    for graphql_type in built._schema.type_map.values():
        if graphql_type.name.startswith("__") or not isinstance(graphql_type, GraphQLObjectType):
            continue
        for field_name, field in graphql_type.fields.items():
            definition = (field.extensions or {}).get("strawberry-definition")
            if definition is None or definition.extensions or definition.permission_classes:
                continue
            read = _reader(definition)
            if read is None:
                continue
            field.resolve = _resolve_by(read)
            fast_fields.register(built._schema, graphql_type, field_name, read)
    # Post.author and Post.imageUrls read only info.context, which graphql-core's own info
    # carries too: they are called directly, without Strawberry's wrapper (20 times on a
    # page of 20).
    post_type = built._schema.type_map["Post"]
    assert isinstance(post_type, GraphQLObjectType)
    post_type.fields["author"].resolve = cast(GraphQLFieldResolver, _post_author)
    post_type.fields["imageUrls"].resolve = cast(GraphQLFieldResolver, _post_image_urls)


def _reader(definition: StrawberryField) -> Callable[[object], object] | None:
    resolver = definition.base_resolver
    if resolver is None:
        return attrgetter(definition.python_name)
    parameters = list(resolver.signature.parameters.values())
    takes_only_parent = len(parameters) == 1 and parameters[0] in (
        resolver.self_parameter,
        resolver.root_parameter,
        resolver.parent_parameter,
    )
    if takes_only_parent and not resolver.is_async:
        return cast(Callable[[object], object], resolver.wrapped_func)
    return None


def _resolve_by(read: Callable[[object], object]) -> GraphQLFieldResolver:
    def resolve(source: object, info: object, **arguments: object) -> object:
        return read(source)

    return resolve


_plain_attribute_resolvers(schema)


def sdl() -> str:
    return print_schema(schema) + "\n"
