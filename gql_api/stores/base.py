"""The store interface: page queries, errors and the async protocol every database adapter
speaks, over the domain's records (``gql_api.domain.records``).

A store knows nothing of users, permissions or GraphQL: the service layer above it
holds the rules, and one contract test suite holds every store to the same behaviour.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol, TypeVar

from gql_api.domain.records import PostChange, PostChanges, PostRecord, ProfileRecord

Client = TypeVar("Client")


@dataclass(frozen=True, slots=True)
class PageQuery:
    """One page of the newest-first feed, optionally narrowed to a tag and/or an author.

    ``after`` is the store's own position token (from ``PostPage.cursors``); the
    service wraps it in the client-facing cursor and checks the filters.
    """

    first: int
    after: str | None = None
    tag: str | None = None
    author_id: str | None = None


@dataclass(frozen=True, slots=True)
class PostPage:
    posts: list[PostRecord]
    cursors: list[str]  # the store's position token after each post, same order
    has_next_page: bool


def page_of(posts: list[PostRecord], first: int, position: Callable[[PostRecord], str]) -> PostPage:
    """A page from up to ``first + 1`` posts read in feed order: the extra one only
    says that a next page exists."""
    shown = posts[:first]
    return PostPage(
        posts=shown, cursors=[position(p) for p in shown], has_next_page=len(posts) > first
    )


async def with_etag(
    current: PostRecord, read: Callable[[str], Awaitable[PostRecord | None]]
) -> PostRecord:
    """``current`` carrying the store's concurrency token: as it is when it was read from
    the store, else read again (``NoSuchPost`` or ``VersionConflict`` if gone or changed)."""
    if current.etag is not None:
        return current
    stored = await read(current.id)
    if stored is None:
        raise NoSuchPost(current.id)
    if stored.version != current.version:
        raise VersionConflict(stored.version)
    return stored


async def lost_race(
    post_id: str, read: Callable[[str], Awaitable[PostRecord | None]]
) -> StoreError:
    """Why a conditional write was refused, read back: ``NoSuchPost`` if the post is gone,
    else ``VersionConflict`` with the version another writer made (raise it ``from None``)."""
    stored = await read(post_id)
    if stored is None:
        return NoSuchPost(post_id)
    return VersionConflict(stored.version)


def opened(client: Client | None) -> Client:
    """A store's SDK client, or ``DatabaseUnavailable`` once the store is closed."""
    if client is None:
        raise DatabaseUnavailable("the store is closed")
    return client


@contextmanager
def translated(outage: Callable[[Exception], str | None]) -> Iterator[None]:
    """Where a store calls its SDK: an error that ``outage`` describes (the database is
    not there, throttles, refuses the credentials) becomes ``DatabaseUnavailable`` with
    that description; any other error, the store's own included, passes unchanged."""
    try:
        yield
    except StoreError:
        raise
    except Exception as error:
        reason = outage(error)
        if reason is None:
            raise
        raise DatabaseUnavailable(reason) from error


# Post ids every database can hold as a key or document id, with room for test ids. Any
# other string ("a/b", "..", "__x__", NUL, a megabyte) names no stored post: stores answer
# it without a database call, so no id ever becomes part of a document path or key.
_STORABLE_POST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


def is_storable_post_id(post_id: str) -> bool:
    """Whether ``post_id`` can name a stored post on every store."""
    return _STORABLE_POST_ID.fullmatch(post_id) is not None


def stored_post_id(post_id: str) -> str:
    """``post_id`` for a conditional write; ``NoSuchPost`` when no store could hold it."""
    if not is_storable_post_id(post_id):
        raise NoSuchPost("no stored post can have this id")
    return post_id


def storable_post(post: PostRecord) -> PostRecord:
    """``post`` for a create; a ``ValueError`` (a caller's bug) when its id cannot be stored."""
    if not is_storable_post_id(post.id):
        raise ValueError("a new post's id must match [A-Za-z0-9][A-Za-z0-9_-]{0,127}")
    return post


# User ids kept as they are where a store names a document after one (Firestore, Cosmos DB).
# Both refuse "/"; Cosmos DB also a backslash, "?", "#" and ids over 255 characters;
# Firestore "." and "..". Any other id (a token's sub may be any string) is named by its hash.
_PLAIN_DOCUMENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:|+=-]{0,199}")


def profile_document_id(user_id: str) -> str:
    """The document id of a user's profile: the user id itself when every store can take
    it, else ``~`` and its SHA-256 (no plain id starts with ``~``, so the two never meet)."""
    if _PLAIN_DOCUMENT_ID.fullmatch(user_id):
        return user_id
    return "~" + hashlib.sha256(user_id.encode("utf-8", "surrogatepass")).hexdigest()


class StoreError(Exception):
    """Base of the errors every store raises."""


class NoSuchPost(StoreError):
    """No post has this id."""


class AlreadyExists(StoreError):
    """A create found a post stored under its id already (and changed nothing)."""


class VersionConflict(StoreError):
    """The stored version is not the one the write was conditional on."""

    def __init__(self, current_version: int) -> None:
        super().__init__(f"stored version is {current_version}")
        self.current_version = current_version


class InvalidPosition(StoreError):
    """A position token this store did not make (or made for another query)."""


class DatabaseUnavailable(StoreError):
    """The database did not answer, or not in time."""


class PostStore(Protocol):
    """What every database adapter offers. All methods are coroutines."""

    name: str

    async def open(self) -> None:
        """Connect (and provision, for embedded stores). Called once per process."""

    async def close(self) -> None:
        """Release connections. Called once on shutdown."""

    async def ping(self) -> None:
        """Answer when the database answers; raise ``DatabaseUnavailable`` when not."""

    async def provision(self) -> str:
        """Create what the store needs (tables, indexes); idempotent. Says what it did."""

    async def inspect(self) -> list[tuple[bool, str]]:
        """Compare what exists with what the store needs: (ok, one line with a fix)."""

    async def get(self, post_id: str) -> PostRecord | None: ...

    async def create(self, post: PostRecord) -> PostRecord:
        """Store a new post (``version`` 1) with its tag entries, atomically."""

    async def update(self, current: PostRecord, changes: PostChanges) -> PostRecord:
        """Apply ``changes`` only if the stored version is still ``current.version``.

        ``current`` is the record as the caller read it (stores use its tags to keep
        their tag entries in step without another read). Returns the new record
        (version + 1). Raises ``NoSuchPost`` or ``VersionConflict``; never writes part.
        """

    async def delete(self, current: PostRecord) -> None:
        """Delete only if the stored version is still ``current.version``.

        Raises ``NoSuchPost`` or ``VersionConflict``; never deletes part.
        """

    async def list_posts(self, query: PageQuery) -> PostPage:
        """Newest first (created_at desc, id desc); ``has_next_page`` exact.

        Raises ``InvalidPosition`` for a position token it cannot use.
        """

    async def get_profiles(self, user_ids: Sequence[str]) -> Mapping[str, ProfileRecord]:
        """The stored profiles among ``user_ids`` (absent ids are simply missing)."""

    async def put_profile(self, profile: ProfileRecord) -> ProfileRecord:
        """Store ``profile`` under its user id, replacing any stored one, and return it.

        One atomic point write (no read first): concurrent writers never mix their
        values, and the last write wins.
        """


class ChangeFeed(Protocol):
    """The writes of every process on a store's database, as they happen (the live feed)."""

    async def changes(self) -> AsyncIterator[PostChange]:
        """Follow the database's writes from now on: once this returns, every create,
        update and delete made afterwards, by any process on the same database, comes out
        of the iterator, within about 2 s, at least once, and in version order for each
        post. What was written before the call is not replayed. While the database cannot
        be read the iterator raises ``DatabaseUnavailable`` (the caller follows anew);
        ``aclose()`` releases what it holds."""
        ...
