"""The store contract: every store, the same behaviour."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta
from itertools import chain

import pytest

from gql_api.domain.records import PostChanges, PostRecord, ProfileRecord
from gql_api.images import new_image_key
from gql_api.stores.base import InvalidPosition, NoSuchPost, PageQuery, PostStore, VersionConflict
from tests.helpers import record


def changes_of(post: PostRecord, **values: object) -> PostChanges:
    fields: dict[str, object] = {
        "content": post.content,
        "is_markdown": post.is_markdown,
        "tags": post.tags,
        "image_keys": post.image_keys,
        "updated_at": post.created_at + timedelta(minutes=1),
    }
    fields.update(values)
    return PostChanges(**fields)  # type: ignore[arg-type]


async def walk(store: PostStore, first: int, **filters: str) -> list[list[str]]:
    """Every page of a feed, as lists of ids."""
    pages: list[list[str]] = []
    after = None
    while True:
        page = await store.list_posts(PageQuery(first=first, after=after, **filters))
        pages.append([p.id for p in page.posts])
        if not page.has_next_page:
            return pages
        after = page.cursors[-1]


async def test_created_post_reads_back_equal(store: PostStore) -> None:
    post = dataclasses.replace(
        record(tags=("x", "y")),
        content="  text with ünïcödé and emoji 🎉\n",
        is_markdown=True,
        image_keys=(new_image_key("alice", "image/png"), new_image_key("alice", "image/gif")),
        author_nickname="Al",
    )
    assert await store.create(post) == post
    assert await store.get(post.id) == post


async def test_missing_post_reads_as_none(store: PostStore) -> None:
    assert await store.get("no-such-id") is None


async def test_update_applies_when_version_matches(store: PostStore) -> None:
    post = await store.create(record(tags=("old",)))
    changed = changes_of(post, content="new", is_markdown=True, tags=("new",))
    updated = await store.update(post, changed)
    assert (updated.content, updated.is_markdown, updated.tags) == ("new", True, ("new",))
    assert updated.version == 2
    assert updated.updated_at == changed.updated_at
    assert updated.created_at == post.created_at
    assert await store.get(post.id) == updated


async def test_update_with_stale_version_conflicts_and_changes_nothing(store: PostStore) -> None:
    post = await store.create(record())
    await store.update(post, changes_of(post, content="v2"))
    with pytest.raises(VersionConflict) as raised:
        await store.update(post, changes_of(post, content="lost"))
    assert raised.value.current_version == 2
    stored = await store.get(post.id)
    assert stored is not None
    assert (stored.content, stored.version) == ("v2", 2)


async def test_update_of_missing_post_is_not_found(store: PostStore) -> None:
    with pytest.raises(NoSuchPost):
        await store.update(record(), changes_of(record()))


async def test_delete_conditional_on_version(store: PostStore) -> None:
    post = await store.create(record(tags=("t",)))
    newer = await store.update(post, changes_of(post, content="v2"))
    with pytest.raises(VersionConflict) as raised:
        await store.delete(post)  # read before the update
    assert raised.value.current_version == 2
    assert await store.get(post.id) == newer
    await store.delete(newer)
    assert await store.get(post.id) is None
    with pytest.raises(NoSuchPost):
        await store.delete(newer)
    assert (await store.list_posts(PageQuery(first=10, tag="t"))).posts == []


async def test_concurrent_updates_of_one_version_have_one_winner(store: PostStore) -> None:
    post = await store.create(record())
    attempts = [store.update(post, changes_of(post, content=f"c{i}")) for i in range(10)]
    results = await asyncio.gather(*attempts, return_exceptions=True)
    winners = [r for r in results if isinstance(r, PostRecord)]
    assert len(winners) == 1
    assert all(isinstance(r, VersionConflict) for r in results if r not in winners)
    stored = await store.get(post.id)
    assert stored == winners[0]


async def test_feed_is_newest_first_with_id_breaking_ties(store: PostStore) -> None:
    first = record()
    same_moment = [
        record(created_at=first.created_at + timedelta(milliseconds=1), post_id=pid)
        for pid in ("m-b", "m-c", "m-a")
    ]
    later = record()
    for post in [first, *same_moment, later]:
        await store.create(post)
    page = await store.list_posts(PageQuery(first=10))
    assert [p.id for p in page.posts] == [later.id, "m-c", "m-b", "m-a", first.id]
    assert not page.has_next_page


async def test_every_page_but_the_last_is_full_and_has_next_is_exact(store: PostStore) -> None:
    posts = [await store.create(record()) for _ in range(7)]
    newest_first = [p.id for p in reversed(posts)]
    assert await walk(store, 3) == [newest_first[:3], newest_first[3:6], newest_first[6:]]
    assert await walk(store, 7) == [newest_first]  # exact: no empty trailing page
    assert await walk(store, 100) == [newest_first]


async def test_tag_and_author_feeds_are_full_pages(store: PostStore) -> None:
    made = []
    for i in range(12):
        tags = ("even",) if i % 2 == 0 else ("odd",)
        author = "alice" if i % 3 == 0 else "bob"
        made.append(await store.create(record(author_id=author, tags=(*tags, "all"))))
    newest = list(reversed(made))

    def ids(predicate: object) -> list[str]:
        return [p.id for p in newest if predicate(p)]  # type: ignore[operator]

    even = ids(lambda p: "even" in p.tags)
    assert await walk(store, 4, tag="even") == [even[:4], even[4:]]
    by_alice = ids(lambda p: p.author_id == "alice")
    assert await walk(store, 3, author_id="alice") == [by_alice[:3], by_alice[3:]]
    both = ids(lambda p: p.author_id == "bob" and "odd" in p.tags)
    assert list(chain.from_iterable(await walk(store, 2, tag="odd", author_id="bob"))) == both
    assert all(len(page) == 2 for page in (await walk(store, 2, tag="odd", author_id="bob"))[:-1])
    assert await walk(store, 5, tag="nothing") == [[]]


async def test_tag_feed_follows_updates(store: PostStore) -> None:
    post = await store.create(record(tags=("before",)))
    await store.update(post, changes_of(post, tags=("after",)))
    assert await walk(store, 5, tag="before") == [[]]
    assert await walk(store, 5, tag="after") == [[post.id]]


async def test_a_stale_read_cannot_disturb_tag_entries(store: PostStore) -> None:
    post = await store.create(record(tags=("a", "b")))
    newer = await store.update(post, changes_of(post, tags=("b", "c")))
    with pytest.raises(VersionConflict):  # written from the stale read: tags a, b
        await store.update(post, changes_of(post, tags=("d",)))
    with pytest.raises(VersionConflict):
        await store.delete(post)
    for tag, expected in (("a", []), ("b", [post.id]), ("c", [post.id]), ("d", [])):
        assert await walk(store, 5, tag=tag) == [expected], tag
    assert await store.get(post.id) == newer
    await store.delete(newer)
    for tag in ("a", "b", "c", "d"):
        assert await walk(store, 5, tag=tag) == [[]], tag


async def test_inserts_between_pages_do_not_shift_the_walk(store: PostStore) -> None:
    old = [await store.create(record()) for _ in range(6)]
    page1 = await store.list_posts(PageQuery(first=3))
    for _ in range(4):
        await store.create(record())  # newer than anything paged so far
    page2 = await store.list_posts(PageQuery(first=3, after=page1.cursors[-1]))
    assert [p.id for p in page1.posts + page2.posts] == [p.id for p in reversed(old)]
    assert not page2.has_next_page


async def test_position_from_any_post_resumes_after_it(store: PostStore) -> None:
    posts = [await store.create(record()) for _ in range(5)]
    page = await store.list_posts(PageQuery(first=5))
    rest = await store.list_posts(PageQuery(first=5, after=page.cursors[1]))
    assert [p.id for p in rest.posts] == [p.id for p in reversed(posts)][2:]


# Ids a client may send that no store can hold: path separators and traversal, names
# Firestore reserves, NUL, a megabyte, emoji, lone surrogates, URL syntax Cosmos DB routes on.
HOSTILE_IDS = [
    "a/b",
    "a/b/c",
    "..",
    ".",
    "__x__",
    "a\\b",
    "a?b",
    "a#b",
    "a%2Fb",
    "x\x00y",
    "x" * 1_000_000,
    "🎉",
    "\ud800",
    "a\udfffb",
    " ",
    "",
    "id\n",
]


@pytest.mark.parametrize("post_id", HOSTILE_IDS, ids=range(len(HOSTILE_IDS)))
async def test_any_id_is_safe_to_read_update_and_delete(store: PostStore, post_id: str) -> None:
    stored = await store.create(record())
    assert await store.get(post_id) is None
    ghost = dataclasses.replace(stored, id=post_id)
    with pytest.raises(NoSuchPost):
        await store.update(ghost, changes_of(ghost, content="changed"))
    with pytest.raises(NoSuchPost):
        await store.delete(ghost)
    with pytest.raises(ValueError, match="id"):
        await store.create(dataclasses.replace(record(), id=post_id))
    assert await store.get(stored.id) == stored  # nothing else was touched


@pytest.mark.parametrize("token", [f"123.{post_id}" for post_id in ("a/b", "..", "__x__", "")])
async def test_position_naming_an_impossible_id_is_refused(store: PostStore, token: str) -> None:
    with pytest.raises(InvalidPosition):
        await store.list_posts(PageQuery(first=3, after=token))


@pytest.mark.parametrize("token", ["", "garbage", "12x.id", ".id", "123.", "9" * 40 + ".x"])
async def test_foreign_position_is_refused(store: PostStore, token: str) -> None:
    with pytest.raises(InvalidPosition):
        await store.list_posts(PageQuery(first=3, after=token))


async def test_profiles_are_fetched_in_one_call(store: PostStore) -> None:
    assert await store.get_profiles([]) == {}
    assert await store.get_profiles(["nobody", "else"]) == {}


PROFILE_TIME = datetime(2026, 2, 1, 12, 0, 0, 123456, tzinfo=UTC)


def profile(user_id: str, nickname: str, minutes: int = 0) -> ProfileRecord:
    return ProfileRecord(user_id, nickname, PROFILE_TIME + timedelta(minutes=minutes))


async def test_a_stored_profile_reads_back_equal(store: PostStore) -> None:
    alice = profile("alice", "Alice 🎉 ünï")
    assert await store.put_profile(alice) == alice
    assert await store.get_profiles(["alice", "bob"]) == {"alice": alice}


async def test_a_profile_write_replaces_that_profile_only(store: PostStore) -> None:
    await store.put_profile(profile("alice", "Alice"))
    bob = await store.put_profile(profile("bob", "Bob"))
    renamed = await store.put_profile(profile("alice", "Ally", minutes=5))
    assert await store.get_profiles(["alice", "bob", "carol"]) == {"alice": renamed, "bob": bob}
    assert await store.get_profiles(["bob"]) == {"bob": bob}


async def test_concurrent_profile_writes_leave_one_whole_write(store: PostStore) -> None:
    writes = [profile("alice", f"name {i}", minutes=i) for i in range(8)]
    await asyncio.gather(*(store.put_profile(p) for p in writes))
    stored = (await store.get_profiles(["alice"]))["alice"]
    assert stored in writes  # nickname and time from the same write, never mixed


# A token's sub may be any string: ids no document store takes as a document id, ids
# that look like another id's stand-in, long ones, and plain ones.
ODD_USER_IDS = [
    "a/b",
    "a\\b",
    ".",
    "..",
    "__x__",
    "#?",
    "~" + hashlib.sha256(b"a/b").hexdigest(),
    "u" * 256,
    "ünï cödé 🎉",
    "auth0|0123456789",
    "https://issuer.example/users/42",
]


async def test_every_user_id_holds_a_profile_of_its_own(store: PostStore) -> None:
    for number, user_id in enumerate(ODD_USER_IDS):
        await store.put_profile(profile(user_id, f"nick {number}"))
    found = await store.get_profiles(ODD_USER_IDS)
    assert found == {
        user_id: profile(user_id, f"nick {number}") for number, user_id in enumerate(ODD_USER_IDS)
    }


async def test_ping_answers(store: PostStore) -> None:
    await store.ping()
