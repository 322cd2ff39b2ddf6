"""The Strawberry schema: the public contract's Query and Mutation."""

from __future__ import annotations

from datetime import datetime
from operator import attrgetter

import strawberry
from graphql import GraphQLFieldResolver, GraphQLObjectType
from strawberry.printer import print_schema
from strawberry.schema.config import StrawberryConfig

from gql_api.resolvers import posts as post_resolvers
from gql_api.resolvers import viewer as viewer_resolvers
from gql_api.schema.types import (
    DATETIME,
    DeletePostPayload,
    Limits,
    Post,
    PostConnection,
    Profile,
    Viewer,
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


schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    config=StrawberryConfig(scalar_map={datetime: DATETIME}),
)


def _plain_attribute_resolvers(built: strawberry.Schema) -> None:
    """Resolve plain attribute fields (no resolver, extension or permission) with a bare
    attribute read. Strawberry's generic field wrapper builds an Info per field; for the
    ~150 plain fields of a page that per-field work dominates the request, and buys
    nothing where there is nothing to call."""
    for graphql_type in built._schema.type_map.values():
        if graphql_type.name.startswith("__") or not isinstance(graphql_type, GraphQLObjectType):
            continue
        for field in graphql_type.fields.values():
            definition = (field.extensions or {}).get("strawberry-definition")
            if (
                definition is None
                or definition.base_resolver is not None
                or definition.extensions
                or definition.permission_classes
            ):
                continue
            field.resolve = _attribute(definition.python_name)


def _attribute(name: str) -> GraphQLFieldResolver:
    read = attrgetter(name)

    def resolve(source: object, info: object, **arguments: object) -> object:
        return read(source)

    return resolve


_plain_attribute_resolvers(schema)


def sdl() -> str:
    return print_schema(schema) + "\n"
