"""Pagination through the service: client cursors, filters, inserts between pages."""

from __future__ import annotations

import base64
import json
from itertools import chain

import pytest

from gql_api.domain.cursors import encode_cursor, filter_key
from gql_api.domain.service import NewPost, PostService
from gql_api.errors import BadUserInput
from tests.helpers import ALICE, BOB


async def walk(service: PostService, first: int, **filters: str) -> list[list[str]]:
    pages: list[list[str]] = []
    after = None
    while True:
        page = await service.list_posts(first=first, after=after, **filters)
        pages.append([e.post.id for e in page.edges])
        if page.edges:
            assert page.end_cursor == page.edges[-1].cursor
        if not page.has_next_page:
            return pages
        after = page.end_cursor


async def seed(service: PostService, count: int) -> list[str]:
    """Posts by alternating authors with tags; returns ids newest first."""
    ids = []
    for i in range(count):
        author = ALICE if i % 2 == 0 else BOB
        tags = ["all", "three" if i % 3 == 0 else "other"]
        ids.append((await service.create_post(author, NewPost(content=f"#{i}", tags=tags))).id)
    return ids[::-1]


@pytest.mark.parametrize(
    "filters",
    [{}, {"tag": "three"}, {"author_id": "bob"}, {"tag": "three", "author_id": "alice"}],
    ids=["none", "tag", "author", "tag+author"],
)
@pytest.mark.parametrize("first", [1, 4, 25])
async def test_walk_lists_every_post_once_in_full_pages(
    service: PostService, filters: dict[str, str], first: int
) -> None:
    newest = await seed(service, 25)
    expected = []
    for number, post_id in zip(range(24, -1, -1), newest, strict=True):
        author = "alice" if number % 2 == 0 else "bob"
        if "tag" in filters and number % 3 != 0:
            continue
        if "author_id" in filters and filters["author_id"] != author:
            continue
        expected.append(post_id)
    pages = await walk(service, first, **filters)
    assert list(chain.from_iterable(pages)) == expected
    assert all(len(page) == first for page in pages[:-1])
    assert 1 <= len(pages[-1]) <= first


async def test_posts_inserted_between_pages_do_not_disturb_the_walk(service: PostService) -> None:
    newest = await seed(service, 9)
    page = await service.list_posts(first=4, tag="all")
    seen = [e.post.id for e in page.edges]
    while page.has_next_page:
        await service.create_post(ALICE, NewPost(content="late", tags=["all"]))
        page = await service.list_posts(first=4, after=page.end_cursor, tag="all")
        seen += [e.post.id for e in page.edges]
    assert seen == newest


async def test_first_may_change_between_pages(service: PostService) -> None:
    newest = await seed(service, 6)
    page = await service.list_posts(first=2)
    rest = await service.list_posts(first=10, after=page.end_cursor)
    assert [e.post.id for e in page.edges + rest.edges] == newest


async def test_cursor_for_other_filters_is_refused(service: PostService) -> None:
    await seed(service, 6)
    page = await service.list_posts(first=2, tag="all")
    for filters in ({}, {"tag": "other"}, {"tag": "all", "author_id": "alice"}):
        with pytest.raises(BadUserInput) as raised:
            await service.list_posts(first=2, after=page.end_cursor, **filters)
        assert "other tag/authorId" in raised.value.message
    # the tag is normalized before the check, so the same tag spelled otherwise is fine
    await service.list_posts(first=2, after=page.end_cursor, tag=" ALL ")


def _forge(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not a cursor",
        "!!!!",
        "é",
        "A" * 2000,
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        _forge({"a": 1}),
        _forge([2, "x", "y"]),
        _forge([1, 5, "1.x"]),
    ],
)
async def test_malformed_cursor_is_bad_user_input(service: PostService, cursor: str) -> None:
    with pytest.raises(BadUserInput) as raised:
        await service.list_posts(after=cursor)
    assert raised.value.extensions == {"code": "BAD_USER_INPUT", "field": "after"}


async def test_cursor_with_a_position_the_store_cannot_use_is_bad_user_input(
    service: PostService,
) -> None:
    page = await service.list_posts(first=1)
    assert page.edges == []
    for position in ("nonsense", "-5.x", "12"):
        with pytest.raises(BadUserInput):
            await service.list_posts(after=encode_cursor(position, filter_key(None, None)))
