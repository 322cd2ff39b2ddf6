"""A subscription's stream (``execution/subscriptions.py``): the resolver subscribes when
the stream opens, each event runs the selection in a fresh context, and subscribers of
the same selection as the same viewer share one response per event."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from gql_api.auth.identity import Identity
from gql_api.domain.live_feed import LiveFeed
from gql_api.domain.records import ProfileRecord
from gql_api.domain.service import NewPost, PostService
from gql_api.execution.executor import Executor, RequestError
from gql_api.execution.subscriptions import EventStream, open_stream
from gql_api.resolvers.context import RequestContext
from gql_api.schema.root import schema
from gql_api.stores.memory import MemoryStore

EVENTS = """subscription Feed($tag: String) {
  postEvents(tag: $tag) { kind postId version post { content tags author { nickname } } }
}"""
ALICE = Identity(user_id="alice", is_admin=False)


class Counting(PostService):
    """Counts the profile loads: one per execution of a selection asking for authors."""

    loads = 0

    async def load_profiles(self, user_ids: Any) -> list[ProfileRecord]:
        Counting.loads += 1
        return await super().load_profiles(user_ids)


@pytest.fixture
async def service() -> PostService:
    store = MemoryStore()
    await store.open()
    Counting.loads = 0
    return Counting(store, timeout=2, live=LiveFeed(store, queue_size=10, timeout=2))


async def subscribe(
    service: PostService, variables: dict[str, Any] | None = None, viewer_key: Any = None
) -> EventStream:
    executor = Executor(schema)

    def context() -> RequestContext:
        return RequestContext(service=service, viewer=None, request_id="r")

    return await open_stream(
        executor,
        executor.prepare(EVENTS, None),
        variables=variables,
        context=context(),
        new_context=context,
        viewer_key=viewer_key,
        request_id="r",
    )


async def next_response(stream: EventStream) -> dict[str, Any]:
    async with asyncio.timeout(2):
        response: dict[str, Any] = orjson.loads(await anext(stream))
        return response


async def test_each_event_runs_the_selection(service: PostService) -> None:
    stream = await subscribe(service, {"tag": "News"})
    await service.create_post(ALICE, NewPost(content="elsewhere", tags=["sport"]))
    post = await service.create_post(ALICE, NewPost(content="hi", tags=["news"]))
    event = (await next_response(stream))["data"]["postEvents"]
    assert event == {
        "kind": "CREATED",
        "postId": post.id,
        "version": 1,
        "post": {"content": "hi", "tags": ["news"], "author": {"nickname": None}},
    }
    await service.delete_post(ALICE, post.id)
    event = (await next_response(stream))["data"]["postEvents"]
    assert (event["kind"], event["version"], event["post"]) == ("DELETED", 1, None)
    await stream.aclose()


async def test_each_event_reads_the_author_anew(service: PostService) -> None:
    stream = await subscribe(service)
    await service.create_post(ALICE, NewPost(content="one"))
    assert (await next_response(stream))["data"]["postEvents"]["post"]["author"] == {
        "nickname": None
    }
    await service.update_profile(ALICE, "Alice")
    await service.create_post(ALICE, NewPost(content="two"))
    second = await next_response(stream)
    assert second["data"]["postEvents"]["post"]["author"] == {"nickname": "Alice"}
    await stream.aclose()


async def test_subscribers_of_one_selection_share_its_execution(service: PostService) -> None:
    streams = [await subscribe(service, {"tag": "news"}) for _ in range(20)]
    other_viewer = await subscribe(service, {"tag": "news"}, viewer_key=("bob", False))
    await service.create_post(ALICE, NewPost(content="hi", tags=["news"]))
    responses = [await next_response(s) for s in [*streams, other_viewer]]
    assert all(r == responses[0] for r in responses)
    assert Counting.loads == 2  # once for the 20 anonymous subscribers, once for bob
    for stream in [*streams, other_viewer]:
        await stream.aclose()


async def test_closing_a_stream_unsubscribes(service: PostService) -> None:
    stream = await subscribe(service)
    assert service.live is not None and service.live.subscribers == 1
    await stream.aclose()  # never read from: still unsubscribed
    assert service.live.subscribers == 0


async def test_a_bad_filter_is_the_subscriptions_error(service: PostService) -> None:
    with pytest.raises(RequestError) as refused:
        await subscribe(service, {"tag": "two words"})
    (error,) = refused.value.errors
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == "tag"
    assert error["path"] == ["postEvents"]


async def test_variables_that_do_not_coerce_are_a_request_error(service: PostService) -> None:
    with pytest.raises(RequestError) as refused:
        await subscribe(service, {"tag": 12})
    assert refused.value.errors[0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_without_a_live_feed_subscriptions_are_unavailable() -> None:
    store = MemoryStore()
    await store.open()
    with pytest.raises(RequestError) as refused:
        await subscribe(PostService(store, timeout=2))
    assert refused.value.errors[0]["extensions"]["code"] == "SUBSCRIPTIONS_UNAVAILABLE"


async def test_a_long_stream_keeps_no_more_objects_for_each_event(service: PostService) -> None:
    """graphql-core's per-event executor shares its subfield cache, keyed by field lists
    each event collects anew: without a cache of its own per event it grew for good."""
    import gc

    stream = await subscribe(service)

    async def events(count: int) -> None:
        for number in range(count):
            await service.create_post(ALICE, NewPost(content=f"post {number}", tags=["news"]))
            await next_response(stream)

    await events(50)  # warm: caches and loaders settle
    gc.collect()
    before = len(gc.get_objects())
    await events(300)
    gc.collect()
    grown = len(gc.get_objects()) - before
    await stream.aclose()
    # The store keeps each post (a few objects); the stream keeps nothing of an event.
    assert grown < 300 * 8, grown  # 2 per post with the fix; 38 per event without
