"""Cursors a client invents, on every store: a page or BAD_USER_INPUT, never a store error.

Cursors are not signed: a client can wrap any position in a well-formed envelope. Each
position is parsed strictly before a store sees it, so what reaches a store is always a
place it could have made itself.
"""

from __future__ import annotations

import base64
import json

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gql_api.domain.cursors import decode_cursor, encode_cursor, filter_key
from gql_api.domain.service import NewPost, Page, PostService
from gql_api.errors import BadUserInput
from gql_api.stores.keyset import MAX_MICROS
from tests.helpers import ALICE

CRAFTED = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ids = st.one_of(
    st.text(max_size=40),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}", fullmatch=True),
    st.sampled_from(["a/b", "..", "__x__", "\ud800", "x\x00", "🎉", "0" * 32]),
)
micros = st.one_of(
    st.integers(min_value=0, max_value=10**25).map(str),
    st.sampled_from(["", "-1", "1e9", "١٢٣", str(MAX_MICROS), str(MAX_MICROS + 1), "9" * 18]),
)
positions = st.one_of(st.text(max_size=60), st.builds(lambda m, i: f"{m}.{i}", micros, ids))
filters = st.sampled_from([(None, None), ("intro", None), (None, "alice"), ("intro", "alice")])


async def page_or_refusal(
    service: PostService, cursor: str, tag: str | None, author: str | None
) -> None:
    """What a crafted cursor may get: a page (the position was one a store could make),
    or BAD_USER_INPUT naming ``after``. Anything else fails the test."""
    try:
        page = await service.list_posts(first=5, after=cursor, tag=tag, author_id=author)
    except BadUserInput as refused:
        assert refused.extensions.get("field") == "after", refused.message  # noqa: PT017
        return
    assert isinstance(page, Page) and len(page.edges) <= 5


@given(position=positions, tag_author=filters)
@example(position=f"{'9' * 18}.p1", tag_author=(None, None))
@example(position=f"{MAX_MICROS}.p1", tag_author=("intro", "alice"))
@example(position="123.\ud800", tag_author=(None, None))
@CRAFTED
async def test_a_crafted_position_in_a_valid_envelope(
    service: PostService, position: str, tag_author: tuple[str | None, str | None]
) -> None:
    cursor = encode_cursor(position, filter_key(*tag_author))
    await page_or_refusal(service, cursor, *tag_author)


@given(
    raw=st.one_of(
        st.text(max_size=80),
        st.binary(max_size=200).map(lambda b: base64.urlsafe_b64encode(b).decode()),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=10),
            lambda inner: st.lists(inner, max_size=4),
            max_leaves=8,
        ).map(lambda v: base64.urlsafe_b64encode(json.dumps(v).encode()).decode().rstrip("=")),
    )
)
@CRAFTED
async def test_any_string_as_a_cursor(service: PostService, raw: str) -> None:
    await page_or_refusal(service, raw, None, None)


async def test_a_real_cursor_still_pages(service: PostService) -> None:
    for n in range(3):
        await service.create_post(ALICE, NewPost(content=f"post {n}", tags=["intro"]))
    first = await service.list_posts(first=2, tag="intro")
    rest = await service.list_posts(first=2, tag="intro", after=first.end_cursor)
    assert [e.post.content for e in first.edges + rest.edges] == ["post 2", "post 1", "post 0"]


@given(position=positions, tag_author=filters)
@example(position="123.\ud800", tag_author=(None, None))
@example(position="1.é🎉", tag_author=("intro", "alice"))
@CRAFTED
def test_a_cursor_carries_its_position_and_filters(
    position: str, tag_author: tuple[str | None, str | None]
) -> None:
    key = filter_key(*tag_author)
    assert decode_cursor(encode_cursor(position, key), key) == position
    assert filter_key(*tag_author) != filter_key("other", "someone")
