"""The rules, written once above the stores: validation, ownership, versions, error codes.

Resolvers call this; stores below it know nothing of users or permissions.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from gql_api.auth.identity import Identity
from gql_api.domain.cursors import decode_cursor, encode_cursor, filter_key, malformed_cursor
from gql_api.domain.idempotency import check_idempotency_key, replayed, with_idempotency_key
from gql_api.domain.image_attachments import ImageAttachments
from gql_api.domain.live_feed import EventFilter, LiveFeed, Subscriber
from gql_api.domain.records import PostChanges, PostRecord, ProfileRecord
from gql_api.domain.validation import (
    check_content,
    check_image_key_count,
    check_image_keys,
    check_nickname,
    check_page_size,
    check_upload_arguments,
    check_user_id,
    is_issued_post_id,
    new_post_id,
    normalize_tag,
    normalize_tags,
)
from gql_api.errors import (
    BadUserInput,
    Conflict,
    Forbidden,
    ImageStorageUnavailableError,
    PostNotFound,
    StoreUnavailableError,
    SubscriptionsUnavailable,
    Unauthenticated,
)
from gql_api.images import ImageInputError, ImageStorage, UploadUrl
from gql_api.images.base import utc_now
from gql_api.logs import count_store_call
from gql_api.stores.base import (
    AlreadyExists,
    DatabaseUnavailable,
    InvalidPosition,
    NoSuchPost,
    PageQuery,
    PostStore,
    VersionConflict,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

# Without expectedVersion, a write that loses a race re-reads and tries again this often.
WRITE_ATTEMPTS = 5
RETRY_DELAY_SECONDS = 0.01

# createUploadUrls without contentTypes: every upload is of this type.
DEFAULT_UPLOAD_CONTENT_TYPE = "image/jpeg"
# The default of GQL_API_UPLOAD_URL_TTL.
DEFAULT_UPLOAD_URL_TTL = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class NewPost:
    content: str
    is_markdown: bool = False
    tags: Sequence[str] = ()
    image_keys: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class PostEdit:
    """Fields left as ``None`` keep their stored value."""

    content: str | None = None
    is_markdown: bool | None = None
    tags: Sequence[str] | None = None
    image_keys: Sequence[str] | None = None

    def is_empty(self) -> bool:
        return all(v is None for v in (self.content, self.is_markdown, self.tags, self.image_keys))


@dataclass(frozen=True, slots=True)
class Edge:
    post: PostRecord
    position: str  # the store's token for this post's place in the feed
    filters: str  # the filter key the cursor is made for

    @property
    def cursor(self) -> str:
        """Made when asked for: most pages never ask for their edges' cursors."""
        return encode_cursor(self.position, self.filters)


@dataclass(frozen=True, slots=True)
class Page:
    edges: list[Edge]
    has_next_page: bool

    @property
    def end_cursor(self) -> str | None:
        return self.edges[-1].cursor if self.edges else None


class PostService:
    def __init__(
        self,
        store: PostStore,
        *,
        timeout: float,
        clock: Callable[[], datetime] = utc_now,
        new_id: Callable[[], str] = new_post_id,
        images: ImageStorage | None = None,
        upload_url_ttl: timedelta = DEFAULT_UPLOAD_URL_TTL,
        live: LiveFeed | None = None,
    ) -> None:
        self.store = store
        self.live = live  # None: the store has no change feed, or subscriptions are off
        self.images = images  # None: no images bucket is set
        self._upload_url_ttl = upload_url_ttl
        self._timeout = timeout
        self._clock = clock
        self._new_id = new_id

    async def ping(self) -> None:
        await self._call(self.store.ping())

    async def get_post(self, post_id: str) -> PostRecord | None:
        if not is_issued_post_id(post_id):
            return None
        return await self._call(self.store.get(post_id))

    async def list_posts(
        self,
        *,
        first: int | None = None,
        after: str | None = None,
        tag: str | None = None,
        author_id: str | None = None,
    ) -> Page:
        size = check_page_size(first)
        if tag is not None:
            tag = normalize_tag(tag, "tag")
        if author_id is not None:
            author_id = check_user_id(author_id, "authorId")
        filters = filter_key(tag, author_id)
        position = None if after is None else decode_cursor(after, filters)
        query = PageQuery(first=size, after=position, tag=tag, author_id=author_id)
        try:
            page = await self._call(self.store.list_posts(query))
        except InvalidPosition:
            raise malformed_cursor() from None
        edges = [
            Edge(post=post, position=token, filters=filters)
            for post, token in zip(page.posts, page.cursors, strict=True)
        ]
        return Page(edges=edges, has_next_page=page.has_next_page)

    async def follow_posts(
        self, *, tag: str | None = None, author_id: str | None = None
    ) -> Subscriber:
        """A subscriber of the posts created, edited and deleted from now on, narrowed to
        a tag and/or an author as ``list_posts`` is; anonymous callers may follow too."""
        if tag is not None:
            tag = normalize_tag(tag, "tag")
        if author_id is not None:
            author_id = check_user_id(author_id, "authorId")
        if self.live is None:
            raise SubscriptionsUnavailable(
                f"live updates are not served here (the {self.store.name} store has no "
                "change feed on this deployment)"
            )
        try:
            return await self.live.subscribe(EventFilter(tag=tag, author_id=author_id))
        except DatabaseUnavailable as exc:
            log.warning("store %s: change feed unavailable: %r", self.store.name, exc)
            raise StoreUnavailableError(
                "the database's change feed is unavailable; subscribe again later"
            ) from exc

    async def create_post(
        self, viewer: Identity | None, new: NewPost, idempotency_key: str | None = None
    ) -> PostRecord:
        """Store a new post; with ``idempotency_key``, a retry answers the post made."""
        author = _signed_in(viewer)
        post = PostRecord(
            id=self._new_id(),
            author_id=author.user_id,
            content=check_content(new.content, "input.content"),
            is_markdown=new.is_markdown,
            tags=normalize_tags(new.tags, "input.tags"),
            image_keys=check_image_keys(new.image_keys, author.user_id, "input.imageKeys"),
            created_at=self._now(),
            updated_at=None,
            version=1,
            author_nickname=author.nickname,
        )
        if idempotency_key is not None:
            post = with_idempotency_key(post, check_idempotency_key(idempotency_key))
            earlier = await self.get_post(post.id)
            if earlier is not None:
                return replayed(earlier, post, self._now())
        async with self._attachments() as images:
            await images.attach(post.image_keys)
            try:
                return await self._call(self.store.create(post))
            except AlreadyExists:
                # A retry running beside this one stored it first.
                earlier = await self.get_post(post.id)
                if earlier is None or post.idempotency_digest is None:
                    raise
                return replayed(earlier, post, self._now())

    async def update_post(
        self,
        viewer: Identity | None,
        post_id: str,
        edit: PostEdit,
        expected_version: int | None = None,
    ) -> PostRecord:
        user = _signed_in(viewer)
        if edit.is_empty():
            raise BadUserInput("input sets no field: give at least one to change", field="input")
        content = None if edit.content is None else check_content(edit.content, "input.content")
        tags = None if edit.tags is None else normalize_tags(edit.tags, "input.tags")
        if edit.image_keys is not None:
            check_image_key_count(edit.image_keys, "input.imageKeys")

        async def attempt(current: PostRecord) -> PostRecord:
            changes = PostChanges(
                content=current.content if content is None else content,
                is_markdown=current.is_markdown if edit.is_markdown is None else edit.is_markdown,
                tags=current.tags if tags is None else tags,
                image_keys=current.image_keys
                if edit.image_keys is None
                else _checked_keys(edit.image_keys, current),
                updated_at=self._now(),
            )
            return await self.store.update(current, changes)

        async with self._attachments() as images:

            async def attach_new(current: PostRecord) -> None:
                if edit.image_keys is not None:
                    await images.replace(
                        current.image_keys, _checked_keys(edit.image_keys, current)
                    )

            return await self._write(user, post_id, expected_version, attempt, attach_new)

    async def delete_post(
        self, viewer: Identity | None, post_id: str, expected_version: int | None = None
    ) -> str:
        user = _signed_in(viewer)
        images = self._attachments()

        async def attempt(current: PostRecord) -> str:
            await self.store.delete(current)
            images.dropped = current.image_keys
            return post_id

        async with images:
            return await self._write(user, post_id, expected_version, attempt)

    async def load_profiles(self, user_ids: Sequence[str]) -> list[ProfileRecord]:
        """Profiles in the order asked, one store call for all (the DataLoader's batch)."""
        found = await self._call(self.store.get_profiles(list(dict.fromkeys(user_ids))))
        return [found.get(uid) or ProfileRecord(user_id=uid) for uid in user_ids]

    async def update_profile(self, viewer: Identity | None, nickname: str) -> ProfileRecord:
        """Store the caller's nickname (trimmed): one write, no read; the last write wins."""
        user = _signed_in(viewer)
        profile = ProfileRecord(
            user_id=user.user_id,
            nickname=check_nickname(nickname, "nickname"),
            updated_at=self._now(),
        )
        return await self._call(self.store.put_profile(profile))

    async def create_upload_urls(
        self,
        viewer: Identity | None,
        count: int,
        content_types: Sequence[str] | None,
        sizes: Sequence[int] | None = None,
    ) -> list[UploadUrl]:
        """``count`` signed uploads for fresh keys under the caller's prefix; without
        ``content_types`` every one is ``image/jpeg``; ``sizes``: each file's exact size."""
        user = _signed_in(viewer)
        if self.images is None:
            raise BadUserInput(
                "image uploads are off on this server: no images bucket is set "
                "(GQL_API_IMAGES_BUCKET)"
            )
        images = self.images
        check_upload_arguments(count, content_types, sizes, images.max_bytes)
        if content_types is None:
            content_types = [DEFAULT_UPLOAD_CONTENT_TYPE] * count
        exact = None if sizes is None else list(sizes)
        return await self._images_call(
            images.upload_urls(user.user_id, list(content_types), self._upload_url_ttl, exact)
        )

    async def read_image_urls(self, keys: Sequence[str]) -> list[str]:
        """A readable URL per key, in order, all in one storage call (none without a
        bucket: then every post answers an empty ``imageUrls``)."""
        if self.images is None or not keys:
            return []
        return await self._images_call(self.images.read_urls(list(keys)))

    def _attachments(self) -> ImageAttachments:
        """The images one mutation attaches or drops (see gql_api.domain.image_attachments)."""
        return ImageAttachments(self.images, self._images_call, self._timeout, "input.imageKeys")

    async def _images_call(self, operation: Awaitable[T]) -> T:
        """Bound an image storage call by the store timeout. The storage signs URLs, in
        the process or through its cloud (a key, a token); any failure of it is
        ``IMAGE_STORAGE_UNAVAILABLE``, its details only in the log."""
        assert self.images is not None
        try:
            async with asyncio.timeout(self._timeout):
                return await operation
        except ImageInputError as exc:
            raise BadUserInput(str(exc)) from None
        except Exception as exc:
            log.error("image storage %s failed: %r", self.images.name, exc, exc_info=exc)
            raise ImageStorageUnavailableError(
                "the image storage did not answer in time or cannot sign URLs; try again later"
            ) from exc

    async def _write(
        self,
        user: Identity,
        post_id: str,
        expected_version: int | None,
        attempt: Callable[[PostRecord], Awaitable[T]],
        before: Callable[[PostRecord], Awaitable[None]] | None = None,
    ) -> T:
        """Read, check, write conditionally on the version read; retry lost races.
        ``before`` runs after the checks, outside the store call's time bound."""
        current_version: int | None = None
        for round_ in range(WRITE_ATTEMPTS):
            if round_:
                # Lost a race: let the winner finish before reading again (jittered, so
                # writers that collided do not collide again in step).
                await asyncio.sleep(random.uniform(0, RETRY_DELAY_SECONDS * round_))  # noqa: S311
            current = await self.get_post(post_id)
            if current is None:
                raise _not_found(post_id)
            if current.author_id != user.user_id and not user.is_admin:
                raise Forbidden("only the post's author or an admin may change it")
            if expected_version is not None and current.version != expected_version:
                raise _conflict(current.version)
            if before is not None:
                await before(current)
            try:
                return await self._call(attempt(current))
            except NoSuchPost:
                raise _not_found(post_id) from None
            except VersionConflict as exc:
                if expected_version is not None:
                    raise _conflict(exc.current_version) from None
                current_version = exc.current_version
        raise _conflict(current_version)

    async def _call(self, operation: Awaitable[T]) -> T:
        """Bound a store call in time; a slow or absent database is ``STORE_UNAVAILABLE``."""
        count_store_call()
        try:
            async with asyncio.timeout(self._timeout):
                return await operation
        except (TimeoutError, DatabaseUnavailable) as exc:
            log.warning("store %s unavailable: %r", self.store.name, exc)
            raise StoreUnavailableError(
                "the database is unavailable (it failed or did not answer in time); try again"
            ) from exc

    def _now(self) -> datetime:
        return self._clock().astimezone(UTC)


def _signed_in(viewer: Identity | None) -> Identity:
    if viewer is None:
        raise Unauthenticated("sign in to do this: send Authorization: Bearer <token>")
    return viewer


def _checked_keys(keys: Sequence[str], current: PostRecord) -> tuple[str, ...]:
    """An edit's image keys: new ones as ``createUploadUrls`` hands out, the post's own
    (a migrated post's legacy keys among them) kept as they are."""
    return check_image_keys(keys, current.author_id, "input.imageKeys", kept=current.image_keys)


def _not_found(post_id: str) -> PostNotFound:
    # Only an id this service could have issued is echoed, never a client's megabyte.
    if is_issued_post_id(post_id):
        return PostNotFound(f"no post with id {post_id!r}", id=post_id)
    return PostNotFound("no post has this id (not an id this service issues)")


def _conflict(current_version: int | None) -> Conflict:
    return Conflict(
        f"the post has changed: its version is now {current_version}; read it and try again",
        current_version=current_version,
    )
