"""Idempotency keys on createPost, on every store: a retry answers the post made."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import pytest

from gql_api.domain.service import NewPost, PostEdit, PostService
from gql_api.errors import BadUserInput, Conflict
from gql_api.stores.base import AlreadyExists, PageQuery, PostStore
from tests.helpers import ALICE, BOB, StepClock, record

HELLO = NewPost(content="hello", tags=["Intro"])


async def stored_ids(store: PostStore) -> list[str]:
    return [p.id for p in (await store.list_posts(PageQuery(first=100))).posts]


async def test_a_retry_answers_the_post_already_made(
    service: PostService, store: PostStore
) -> None:
    first = await service.create_post(ALICE, HELLO, "key-1")
    again = await service.create_post(ALICE, NewPost(content="hello", tags=["intro"]), "key-1")
    assert again == first  # the same input once normalized: the same post
    assert await stored_ids(store) == [first.id]


async def test_the_same_key_with_another_input_is_a_conflict(
    service: PostService, store: PostStore
) -> None:
    first = await service.create_post(ALICE, HELLO, "key-2")
    for changed in (
        NewPost(content="hello!", tags=["Intro"]),
        NewPost(content="hello", tags=["intro", "more"]),
        NewPost(content="hello", tags=["Intro"], is_markdown=True),
    ):
        with pytest.raises(Conflict, match="another input"):
            await service.create_post(ALICE, changed, "key-2")
    assert await stored_ids(store) == [first.id]


async def test_keys_belong_to_their_user(service: PostService, store: PostStore) -> None:
    alices = await service.create_post(ALICE, HELLO, "shared-key")
    bobs = await service.create_post(BOB, HELLO, "shared-key")
    assert alices.id != bobs.id and bobs.author_id == "bob"
    assert sorted(await stored_ids(store)) == sorted([alices.id, bobs.id])


async def test_without_a_key_every_create_is_a_new_post(
    service: PostService, store: PostStore
) -> None:
    await service.create_post(ALICE, HELLO)
    await service.create_post(ALICE, HELLO)
    assert len(await stored_ids(store)) == 2


async def test_a_key_is_spent_after_24_hours(store: PostStore) -> None:
    clock = StepClock()
    service = PostService(store, timeout=5.0, clock=clock)
    first = await service.create_post(ALICE, HELLO, "key-3")
    clock.now += timedelta(hours=23, minutes=59)
    assert await service.create_post(ALICE, HELLO, "key-3") == first
    clock.now += timedelta(minutes=2)
    with pytest.raises(Conflict, match="more than 24 hours ago"):
        await service.create_post(ALICE, HELLO, "key-3")
    assert await stored_ids(store) == [first.id]


@pytest.mark.parametrize("key", ["", "has space", "é", "\ud800", "x" * 256, "tab\t"])
async def test_a_malformed_key_is_refused(service: PostService, key: str) -> None:
    with pytest.raises(BadUserInput) as refused:
        await service.create_post(ALICE, HELLO, key)
    assert refused.value.extensions["field"] == "idempotencyKey"


async def test_concurrent_retries_store_one_post(service: PostService, store: PostStore) -> None:
    answers = await asyncio.gather(
        *(service.create_post(ALICE, HELLO, "key-4") for _ in range(8)), return_exceptions=True
    )
    posts = [a for a in answers if not isinstance(a, BaseException)]
    assert len(posts) == 8, answers
    assert {p.id for p in posts} == set(await stored_ids(store))
    assert len(set(await stored_ids(store))) == 1


async def test_an_update_keeps_the_key_answering_its_post(service: PostService) -> None:
    first = await service.create_post(ALICE, HELLO, "key-5")
    edited = await service.update_post(ALICE, first.id, PostEdit(content="edited"))
    assert await service.create_post(ALICE, HELLO, "key-5") == edited


async def test_a_second_create_of_one_id_changes_nothing(store: PostStore) -> None:
    post = await store.create(dataclasses.replace(record(), idempotency_digest="d1"))
    with pytest.raises(AlreadyExists):
        await store.create(dataclasses.replace(record(), id=post.id, content="other"))
    assert await store.get(post.id) == post  # the digest round-trips too
