"""Resolvers of the post queries and mutations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import strawberry
from strawberry import UNSET
from strawberry.types import Info
from strawberry.types.nodes import SelectedField, Selection

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
    if page.edges and selects(info.selected_fields, "author"):
        # One batched load for the page, so each Post.author answers without awaiting.
        authors = list(dict.fromkeys(edge.post.author_id for edge in page.edges))
        loaded = await info.context.profiles.load_many(authors)
        info.context.known_profiles.update(zip(authors, loaded, strict=True))
    service = info.context.service
    if (
        service.images is not None
        and any(edge.post.image_keys for edge in page.edges)
        and selects(info.selected_fields, "imageUrls")
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


def selects(selections: Sequence[Selection], name: str) -> bool:
    """Whether ``name`` is selected anywhere under ``selections`` (fragments included,
    whatever ``@skip`` or ``@include`` leaves out excluded)."""
    for selection in selections:
        if not _included(selection):
            continue
        if isinstance(selection, SelectedField) and selection.name == name:
            return True
        if selects(selection.selections, name):
            return True
    return False


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


def _included(selection: Selection) -> bool:
    directives = selection.directives
    skip, include = directives.get("skip"), directives.get("include")
    return not (skip is not None and skip.get("if")) and (
        include is None or bool(include.get("if"))
    )
