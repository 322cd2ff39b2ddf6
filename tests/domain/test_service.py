"""The rules of the service layer, on every store: ownership, versions, validation."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from gql_api.auth.identity import Identity, identity_from_claims
from gql_api.domain.records import PostChanges, PostRecord, ProfileRecord
from gql_api.domain.service import NewPost, PostEdit, PostService
from gql_api.errors import (
    ApiError,
    BadUserInput,
    Conflict,
    Forbidden,
    PostNotFound,
    StoreUnavailableError,
    Unauthenticated,
)
from gql_api.images import new_image_key
from gql_api.settings import Settings
from gql_api.stores.base import PageQuery, PostStore
from gql_api.stores.memory import MemoryStore
from tests.helpers import ADMIN, ALICE, BOB, StepClock, record


async def alice_post(service: PostService, **values: object) -> str:
    post = await service.create_post(ALICE, NewPost(content="hello", **values))  # type: ignore[arg-type]
    return post.id


# --- ownership -----------------------------------------------------------------------------

OWNERSHIP = [
    (ALICE, None),
    (ADMIN, None),
    (BOB, Forbidden),
    (None, Unauthenticated),
]


@pytest.mark.parametrize(("viewer", "refusal"), OWNERSHIP, ids=["author", "admin", "other", "anon"])
async def test_who_may_update(
    service: PostService, viewer: Identity | None, refusal: type[ApiError] | None
) -> None:
    post_id = await alice_post(service)
    edit = PostEdit(content="changed")
    if refusal is None:
        updated = await service.update_post(viewer, post_id, edit)
        assert (updated.content, updated.version, updated.author_id) == ("changed", 2, "alice")
    else:
        with pytest.raises(refusal):
            await service.update_post(viewer, post_id, edit)
        unchanged = await service.get_post(post_id)
        assert unchanged is not None
        assert (unchanged.content, unchanged.version) == ("hello", 1)


@pytest.mark.parametrize(("viewer", "refusal"), OWNERSHIP, ids=["author", "admin", "other", "anon"])
async def test_who_may_delete(
    service: PostService, viewer: Identity | None, refusal: type[ApiError] | None
) -> None:
    post_id = await alice_post(service)
    if refusal is None:
        assert await service.delete_post(viewer, post_id) == post_id
        assert await service.get_post(post_id) is None
    else:
        with pytest.raises(refusal):
            await service.delete_post(viewer, post_id)
        assert await service.get_post(post_id) is not None


async def test_anonymous_may_not_create(service: PostService, store: PostStore) -> None:
    with pytest.raises(Unauthenticated):
        await service.create_post(None, NewPost(content="hi"))
    assert (await store.list_posts(PageQuery(first=5))).posts == []


async def test_anonymous_may_read(service: PostService) -> None:
    post_id = await alice_post(service)
    post = await service.get_post(post_id)
    assert post is not None
    assert [e.post.id for e in (await service.list_posts()).edges] == [post_id]


@pytest.mark.parametrize("viewer", [ALICE, BOB, ADMIN])
async def test_changing_a_missing_post_is_not_found(service: PostService, viewer: Identity) -> None:
    with pytest.raises(PostNotFound):
        await service.update_post(viewer, "missing", PostEdit(content="x"))
    with pytest.raises(PostNotFound):
        await service.delete_post(viewer, "missing")
    with pytest.raises(PostNotFound):
        await service.delete_post(viewer, "\ud800" * 3)  # not even a possible id


@pytest.mark.parametrize("post_id", ["a/b", "..", "__x__", "x\x00", "🎉", "A" * 32, "0" * 33])
async def test_an_id_never_issued_is_answered_without_the_store(post_id: str) -> None:
    calls: list[str] = []

    class CountingStore(MemoryStore):
        async def get(self, post_id: str) -> PostRecord | None:
            calls.append(post_id)
            return await super().get(post_id)

    store = CountingStore()
    await store.open()
    service = PostService(store, timeout=5.0)
    assert await service.get_post(post_id) is None
    with pytest.raises(PostNotFound) as refused:
        await service.update_post(ALICE, post_id, PostEdit(content="x"))
    assert post_id not in refused.value.message  # a client's text is not echoed back
    with pytest.raises(PostNotFound):
        await service.delete_post(ADMIN, post_id)
    assert calls == []
    issued = await alice_post(service)
    assert await service.get_post(issued) is not None
    assert calls == [issued]


# --- versions ------------------------------------------------------------------------------


async def test_versions_start_at_one_and_count_updates(service: PostService) -> None:
    post_id = await alice_post(service)
    created = await service.get_post(post_id)
    assert created is not None
    assert (created.version, created.updated_at) == (1, None)
    for expected in (2, 3, 4):
        updated = await service.update_post(ALICE, post_id, PostEdit(is_markdown=True))
        assert updated.version == expected
        assert updated.updated_at is not None and updated.updated_at > created.created_at


async def test_expected_version_mismatch_is_conflict_with_current_version(
    service: PostService,
) -> None:
    post_id = await alice_post(service)
    await service.update_post(ALICE, post_id, PostEdit(content="v2"), expected_version=1)
    with pytest.raises(Conflict) as raised:
        await service.update_post(ALICE, post_id, PostEdit(content="stale"), expected_version=1)
    assert raised.value.extensions == {"code": "CONFLICT", "currentVersion": 2}
    with pytest.raises(Conflict):
        await service.delete_post(ALICE, post_id, expected_version=1)
    current = await service.get_post(post_id)
    assert current is not None
    assert (current.content, current.version) == ("v2", 2)


async def test_concurrent_updates_without_expected_version_lose_nothing(
    service: PostService,
) -> None:
    post_id = await alice_post(service, tags=["start"])
    edits = [PostEdit(tags=[f"t{i}"]) for i in range(6)]
    results = await asyncio.gather(
        *(service.update_post(ALICE, post_id, e) for e in edits), return_exceptions=True
    )
    successes = [r for r in results if not isinstance(r, BaseException)]
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, BaseException))
    final = await service.get_post(post_id)
    assert final is not None
    assert final.version == 1 + len(successes)
    assert len(successes) >= 1


class RacedStore:
    """A store where another writer updates the post between our read and our write, once."""

    def __init__(self, inner: PostStore) -> None:
        self.inner = inner
        self.name = inner.name
        self.raced = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def update(self, current: PostRecord, changes: PostChanges) -> PostRecord:
        if not self.raced:
            self.raced = True
            rival = dataclasses.replace(changes, content=current.content, tags=("rival",))
            await self.inner.update(current, rival)
        return await self.inner.update(current, changes)


async def test_an_update_that_loses_a_race_rereads_and_keeps_both_changes(
    store: PostStore,
) -> None:
    service = PostService(RacedStore(store), timeout=5)
    post_id = await alice_post(service, tags=["start"])
    updated = await service.update_post(ALICE, post_id, PostEdit(content="mine"))
    assert (updated.content, updated.tags, updated.version) == ("mine", ("rival",), 3)
    assert await service.get_post(post_id) == updated


async def test_a_lost_race_with_expected_version_is_conflict_not_retried(
    store: PostStore,
) -> None:
    service = PostService(RacedStore(store), timeout=5)
    post_id = await alice_post(service)
    with pytest.raises(Conflict) as raised:
        await service.update_post(ALICE, post_id, PostEdit(content="mine"), expected_version=1)
    assert raised.value.extensions["currentVersion"] == 2
    stored = await service.get_post(post_id)
    assert stored is not None
    assert (stored.content, stored.tags) == ("hello", ("rival",))


async def test_concurrent_updates_with_one_expected_version_have_one_winner(
    service: PostService,
) -> None:
    post_id = await alice_post(service)
    results = await asyncio.gather(
        *(
            service.update_post(ALICE, post_id, PostEdit(content=f"c{i}"), expected_version=1)
            for i in range(8)
        ),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, BaseException))
    final = await service.get_post(post_id)
    assert final is not None and final.version == 2


# --- validation, each limit at its edge and one past ---------------------------------------


async def rejected(service: PostService, new: NewPost, field: str) -> BadUserInput:
    with pytest.raises(BadUserInput) as raised:
        await service.create_post(ALICE, new)
    assert raised.value.extensions["field"] == field
    assert (await service.list_posts()).edges == []
    return raised.value


async def test_content_length_edges(service: PostService) -> None:
    exact = "é" * 10_000
    post = await service.create_post(ALICE, NewPost(content=f"  {exact}\n"))
    assert post.content == f"  {exact}\n"  # stored exactly as sent
    await service.delete_post(ALICE, post.id)
    await rejected(service, NewPost(content="é" * 10_001), "input.content")
    await rejected(service, NewPost(content=" \n\t "), "input.content")
    await rejected(service, NewPost(content=""), "input.content")
    await rejected(service, NewPost(content="x" + " " * 20_000), "input.content")
    await rejected(service, NewPost(content="bad \ud800 surrogate"), "input.content")


async def test_tags_are_normalized(service: PostService) -> None:
    post = await service.create_post(
        ALICE,
        NewPost(
            content="x",
            tags=[" Python ", "PYTHON", "\uff50\uff59\uff54\uff48\uff4f\uff4e", "Rust", "rust"],
        ),
    )
    assert post.tags == ("python", "rust")


async def test_tag_limits(service: PostService) -> None:
    ten = [f"t{i}" for i in range(10)]
    post = await service.create_post(ALICE, NewPost(content="x", tags=[*ten, "T0", "t9"]))
    assert post.tags == tuple(ten)  # duplicates do not count towards the limit
    await service.delete_post(ALICE, post.id)
    await rejected(service, NewPost(content="x", tags=[*ten, "t10"]), "input.tags")
    fifty = "a" * 50
    post = await service.create_post(ALICE, NewPost(content="x", tags=[fifty]))
    assert post.tags == (fifty,)
    await service.delete_post(ALICE, post.id)
    await rejected(service, NewPost(content="x", tags=["a" * 51]), "input.tags[0]")
    await rejected(service, NewPost(content="x", tags=["ok", "   "]), "input.tags[1]")
    await rejected(service, NewPost(content="x", tags=["two words"]), "input.tags[0]")
    await rejected(service, NewPost(content="x", tags=["tab\tinside"]), "input.tags[0]")
    await rejected(service, NewPost(content="x", tags=["bell\x07"]), "input.tags[0]")


def png_key(user_id: str = "alice") -> str:
    return new_image_key(user_id, "image/png")


async def test_image_key_limits(service: PostService) -> None:
    four = [
        new_image_key("alice", t) for t in ("image/png", "image/jpeg", "image/webp", "image/gif")
    ]
    # Well-formed, but without an images bucket nothing can have been uploaded (four keys
    # uploaded for real and attached: tests/test_image_limits.py).
    off = await rejected(service, NewPost(content="x", image_keys=four), "input.imageKeys")
    assert "GQL_API_IMAGES_BUCKET" in off.message
    await rejected(service, NewPost(content="x", image_keys=[*four, png_key()]), "input.imageKeys")
    await rejected(service, NewPost(content="x", image_keys=[png_key("bob")]), "input.imageKeys[0]")
    name = png_key().removeprefix("alice/")
    await rejected(service, NewPost(content="x", image_keys=[f"alice{name}"]), "input.imageKeys[0]")
    # Under the author's prefix, but not a key createUploadUrls hands out.
    for malformed in (
        "alice/cat.png",  # a name of the client's choosing
        f"alice/../bob/{name}",
        f"alice/x/{name}",
        "alice/",
        f"alice/{name.replace('.png', '.svg')}",
        f"alice/{name}.png",
        f"alice/{name[1:]}",
    ):
        await rejected(service, NewPost(content="x", image_keys=[malformed]), "input.imageKeys[0]")
    key = png_key()
    await rejected(service, NewPost(content="x", image_keys=[key, key]), "input.imageKeys")


async def test_admin_edit_keeps_image_keys_under_the_author(service: PostService) -> None:
    post_id = await alice_post(service)
    with pytest.raises(BadUserInput) as raised:
        await service.update_post(ADMIN, post_id, PostEdit(image_keys=[png_key("root")]))
    assert raised.value.extensions["field"] == "input.imageKeys[0]"
    # The author's key passes the prefix check, then meets no bucket (an admin attaching
    # the author's uploads for real: tests/test_upload_flow.py).
    with pytest.raises(BadUserInput) as raised:
        await service.update_post(ADMIN, post_id, PostEdit(image_keys=[png_key()]))
    assert raised.value.extensions["field"] == "input.imageKeys"


async def test_a_migrated_post_keeps_its_legacy_keys_and_takes_new_ones_strictly(
    service: PostService, store: PostStore
) -> None:
    legacy = ("alice/2023/cat photo.jpg", "alice/x.png")  # the earlier service's forms
    migrated = dataclasses.replace(
        record(post_id="0f8c1c3e-5d0a-4e7b-9a4e-2f1d3c4b5a69"), image_keys=legacy
    )
    await store.create(migrated)
    assert await service.get_post(migrated.id) == migrated  # its UUID id is served
    kept = await service.update_post(ALICE, migrated.id, PostEdit(image_keys=legacy[::-1]))
    assert kept.image_keys == legacy[::-1] and kept.version == 2
    fewer = await service.update_post(ALICE, migrated.id, PostEdit(image_keys=legacy[1:]))
    assert fewer.image_keys == legacy[1:]
    for keys, where in (
        ([*legacy[1:], "alice/2024/dog.jpg"], "input.imageKeys[1]"),  # new: the strict form
        (["alice/2023/cat photo.jpg"], "input.imageKeys[0]"),  # dropped, so new again
        ([*legacy[1:], "bob/x.png"], "input.imageKeys[1]"),
    ):
        with pytest.raises(BadUserInput) as raised:
            await service.update_post(ALICE, migrated.id, PostEdit(image_keys=keys))
        assert raised.value.extensions["field"] == where
    edited = await service.update_post(ALICE, migrated.id, PostEdit(content="edited"))
    assert edited.image_keys == legacy[1:]  # an edit that leaves them keeps them


async def test_invalid_update_changes_nothing(service: PostService) -> None:
    post_id = await alice_post(service, tags=["keep"])
    for edit in (
        PostEdit(content=""),
        PostEdit(tags=["x"] * 0 + [f"t{i}" for i in range(11)]),
        PostEdit(image_keys=[png_key("bob")]),
        PostEdit(image_keys=["alice/x.png"]),
        PostEdit(),
    ):
        with pytest.raises(BadUserInput):
            await service.update_post(ALICE, post_id, edit)
    post = await service.get_post(post_id)
    assert post is not None
    assert (post.content, post.tags, post.version) == ("hello", ("keep",), 1)


async def test_page_size_edges(service: PostService) -> None:
    for i in range(101):
        await service.create_post(ALICE, NewPost(content=f"#{i}"))
    for first, size in ((None, 20), (1, 1), (100, 100)):
        page = await service.list_posts(first=first)
        assert len(page.edges) == size
        assert page.has_next_page
    for first in (0, 101, -1):
        with pytest.raises(BadUserInput) as raised:
            await service.list_posts(first=first)
        assert raised.value.extensions["field"] == "first"


async def test_tag_argument_is_normalized_like_tags(service: PostService) -> None:
    post_id = await alice_post(service, tags=["python"])
    page = await service.list_posts(tag="  PYTHON ")
    assert [e.post.id for e in page.edges] == [post_id]
    with pytest.raises(BadUserInput):
        await service.list_posts(tag="two words")


# --- profiles ------------------------------------------------------------------------------


async def nickname_of(service: PostService, user_id: str) -> str | None:
    return (await service.load_profiles([user_id]))[0].nickname


async def test_update_profile_stores_the_trimmed_nickname(
    service: PostService, clock: StepClock
) -> None:
    stored = await service.update_profile(ALICE, "  Alice \n")
    assert (stored.user_id, stored.nickname) == ("alice", "Alice")
    assert stored.updated_at == clock.now
    assert await service.load_profiles(["alice", "bob"]) == [stored, ProfileRecord("bob")]
    renamed = await service.update_profile(ALICE, "Ally")
    assert await service.load_profiles(["alice"]) == [renamed]


async def test_nickname_length_is_counted_in_code_points_after_trimming(
    service: PostService,
) -> None:
    for nickname in ("x", "é" * 50, "🎉" * 50, " \t" * 30 + "y" * 50 + "  "):
        assert (await service.update_profile(ALICE, nickname)).nickname == nickname.strip()
        assert await nickname_of(service, "alice") == nickname.strip()
    with pytest.raises(BadUserInput) as raised:
        await service.update_profile(ALICE, "é" * 51)
    assert raised.value.extensions == {"code": "BAD_USER_INPUT", "field": "nickname"}
    assert "at most 50" in raised.value.message


# Joiners, variation selectors and tag characters are format or default-ignorable
# characters that real names and emoji use beside visible ones.
ALLOWED_NICKNAMES = [
    "👨\u200d👩\u200d👧",
    "Ali\u200cReza",
    "🏴\U000e0067\U000e0062\U000e007f",
    "\u2764\ufe0f",
    "\ud55c\uae00 \u1100\u1161",  # Hangul, also spelled with conjoining jamo
    "a b",
]
REFUSED_NICKNAMES = [
    "",
    "   ",
    "\n\t",
    "\u200b",  # only an invisible character
    # Only characters shown as nothing: Hangul fillers, braille blank, grapheme joiner,
    # variation selectors, soft hyphen, word joiner, tag characters.
    "\u3164",
    "\u3164\u3164\u3164",
    "\uffa0",
    "\u115f",
    "\u1160",
    "\u115f\u1160",
    "\u2800",
    "\u034f",
    "\ufe0f",
    "\u00ad",
    "\u2060",
    "\U000e0067\U000e007f",
    "\u3164 \u2800 \u200d",
    # Line and paragraph separators (Zl, Zp) anywhere: not trimmed away inside a name.
    "a\u2028b",
    "a\u2029b",
    # Interlinear annotation characters hide the text they enclose.
    "a\ufff9b",
    "a\ufffab",
    "a\ufffbb",
    "\ufff9shown\ufffahidden\ufffb",
    "line\nbreak",
    "tab\there",
    "nul\x00",
    "del\x7f",
    "c1\x85inside",
    "bell\x07",
    "evil\u202eright-to-left",
    "iso\u2066late",
    "bad \ud800 surrogate",
]


async def test_nickname_characters(service: PostService) -> None:
    for nickname in ALLOWED_NICKNAMES:
        assert (await service.update_profile(ALICE, nickname)).nickname == nickname
    for nickname in REFUSED_NICKNAMES:
        with pytest.raises(BadUserInput) as raised:
            await service.update_profile(ALICE, nickname)
        assert raised.value.extensions["field"] == "nickname", repr(nickname)
    assert await nickname_of(service, "alice") == ALLOWED_NICKNAMES[-1]  # none stored


def test_a_token_nickname_claim_follows_the_same_rules() -> None:
    settings = Settings.model_construct()  # the defaults, whatever the environment
    for nickname in ALLOWED_NICKNAMES:
        claims = {"sub": "alice", "nickname": nickname}
        assert identity_from_claims(claims, settings).nickname == nickname
    for nickname in REFUSED_NICKNAMES:
        claims = {"sub": "alice", "nickname": nickname}
        assert identity_from_claims(claims, settings).nickname is None, repr(nickname)


async def test_anonymous_may_not_update_a_profile(service: PostService) -> None:
    for nickname in ("Nobody", ""):  # refused as anonymous before the input is looked at
        with pytest.raises(Unauthenticated):
            await service.update_profile(None, nickname)


# --- store outages -------------------------------------------------------------------------


class SlowStore:
    """Wraps a store and makes every call hang."""

    def __init__(self, inner: PostStore) -> None:
        self.inner = inner
        self.name = inner.name

    def __getattr__(self, name: str) -> object:
        async def hang(*args: object, **kwargs: object) -> None:
            await asyncio.sleep(3600)

        return hang


async def test_a_store_that_does_not_answer_is_store_unavailable(store: PostStore) -> None:
    service = PostService(SlowStore(store), timeout=0.05)  # type: ignore[arg-type]
    with pytest.raises(StoreUnavailableError):
        await service.get_post("0" * 32)  # an id the store is asked about
    with pytest.raises(StoreUnavailableError):
        await service.create_post(ALICE, NewPost(content="x"))
    with pytest.raises(StoreUnavailableError):
        await service.update_profile(ALICE, "Alice")
