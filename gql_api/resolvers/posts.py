"""Resolvers of the post queries and mutations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import strawberry
from graphql import (
    BooleanValueNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    SelectionNode,
    VariableNode,
)
from strawberry import UNSET
from strawberry.types import Info

from gql_api.domain.service import NewPost, PostEdit
from gql_api.resolvers.context import RequestContext
from gql_api.schema.types import Post, PostConnection, PostEdge
from gql_api.schema.values import (
    CreatePostInput,
    DeletePostPayload,
    ExpectedVersion,
    FormField,
    Header,
    IdempotencyKey,
    PageInfo,
    UpdatePostInput,
    UploadUrl,
    given,
)

Context = Info[RequestContext, None]


async def post(info: Context, id: strawberry.ID) -> Post | None:
    record = await info.context.service.get_post(str(id))
    return None if record is None else Post.from_record(record)


async def posts(
    info: Context,
    first: int | None = 20,
    after: str | None = UNSET,
    tag: str | None = UNSET,
    author_id: strawberry.ID | None = UNSET,
) -> PostConnection:
    author = given(author_id)
    page = await info.context.service.list_posts(
        first=first,
        after=given(after),
        tag=given(tag),
        author_id=None if author is None else str(author),
    )
    if page.edges and selects(info, "author"):
        # One batched load for the page, so each Post.author answers without awaiting.
        authors = list(dict.fromkeys(edge.post.author_id for edge in page.edges))
        loaded = await info.context.profiles.load_many(authors)
        info.context.known_profiles.update(zip(authors, loaded, strict=True))
    service = info.context.service
    if (
        service.images is not None
        and any(edge.post.image_keys for edge in page.edges)
        and selects(info, "imageUrls")
    ):
        # One storage call for the pages of this request (the request's loader batches and
        # caches them: a key on several aliased pages is signed once), so each
        # Post.imageUrls then answers without awaiting.
        keys = list(dict.fromkeys(key for edge in page.edges for key in edge.post.image_keys))
        urls = await info.context.load_image_urls(keys)  # [] if the storage failed
        if urls:
            info.context.known_image_urls.update(zip(keys, urls, strict=True))
    edges = [PostEdge(node=Post.from_record(edge.post), edge=edge) for edge in page.edges]
    return PostConnection(
        edges=edges,
        page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
    )


def selects(info: Context, name: str) -> bool:
    """Whether ``name`` is selected anywhere under this field (fragments included, what
    ``@skip`` or ``@include`` leaves out excluded). It walks graphql-core's nodes:
    Strawberry's ``info.selected_fields`` converts the whole selection on every call, some
    50 µs of a page request."""
    raw = info._raw_info  # graphql-core's info, which Strawberry's wraps
    # Strawberry's executor gives resolvers the coerced values; graphql-core's, a holder.
    given: Any = raw.variable_values
    variables: Mapping[str, Any] = getattr(given, "coerced", given)
    return _selects(raw.field_nodes, name, raw.fragments, variables)


def _selects(
    nodes: Sequence[SelectionNode],
    name: str,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
) -> bool:
    for node in nodes:
        if not _included(node, variables):
            continue
        if isinstance(node, FieldNode) and node.name.value == name:
            return True
        if isinstance(node, FragmentSpreadNode):
            fragment = fragments.get(node.name.value)
            below = () if fragment is None else fragment.selection_set.selections
        else:
            selection_set = getattr(node, "selection_set", None)
            below = () if selection_set is None else selection_set.selections
        if _selects(below, name, fragments, variables):
            return True
    return False


def _included(node: SelectionNode, variables: Mapping[str, Any]) -> bool:
    for directive in node.directives or ():
        kind = directive.name.value
        if kind not in ("skip", "include"):
            continue
        value = next((a.value for a in directive.arguments or () if a.name.value == "if"), None)
        if isinstance(value, VariableNode):
            condition = bool(variables.get(value.name.value))
        else:
            condition = isinstance(value, BooleanValueNode) and value.value
        if condition == (kind == "skip"):
            return False
    return True


async def create_post(
    info: Context, input: CreatePostInput, idempotency_key: IdempotencyKey = UNSET
) -> Post:
    new = NewPost(
        content=input.content,
        is_markdown=bool(input.is_markdown),
        tags=input.tags or (),
        image_keys=input.image_keys or (),
    )
    record = await info.context.service.create_post(
        info.context.viewer, new, given(idempotency_key)
    )
    return Post.from_record(record)


async def update_post(
    info: Context,
    id: strawberry.ID,
    input: UpdatePostInput,
    expected_version: ExpectedVersion = UNSET,
) -> Post:
    edit = PostEdit(
        content=given(input.content),
        is_markdown=given(input.is_markdown),
        tags=given(input.tags),
        image_keys=given(input.image_keys),
    )
    record = await info.context.service.update_post(
        info.context.viewer, str(id), edit, given(expected_version)
    )
    return Post.from_record(record)


async def delete_post(
    info: Context, id: strawberry.ID, expected_version: ExpectedVersion = UNSET
) -> DeletePostPayload:
    deleted = await info.context.service.delete_post(
        info.context.viewer, str(id), given(expected_version)
    )
    return DeletePostPayload(id=strawberry.ID(deleted))


async def create_upload_urls(
    info: Context,
    count: int,
    content_types: list[str] | None = UNSET,
    sizes: Annotated[
        list[int] | None,
        strawberry.argument(
            description="Each image's exact size in bytes, one per upload, each from 1 to "
            "the server's limit: each upload must then be exactly that long. S3 and Cloud "
            "Storage refuse another length, and S3 upload URLs then work once (a PUT, "
            "not a POST)."
        ),
    ] = UNSET,
) -> list[UploadUrl]:
    uploads = await info.context.service.create_upload_urls(
        info.context.viewer, count, given(content_types), given(sizes)
    )
    return [
        UploadUrl(
            key=upload.key,
            url=upload.url,
            method=upload.method,
            headers=[Header(name=name, value=value) for name, value in upload.headers],
            fields=[FormField(name=name, value=value) for name, value in upload.fields],
            expires_at=upload.expires_at,
        )
        for upload in uploads
    ]
