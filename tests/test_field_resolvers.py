"""The field resolvers (``gql_api.resolvers.fields``) answer what their types say: the same
data through Strawberry's own execution (its async resolvers) as through the executor
(the direct resolvers it installs), and a direct resolver hands back a value, not an
awaitable, when its page loaded the answer."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from inspect import isawaitable
from typing import Any

import strawberry
from strawberry.schema.config import StrawberryConfig

from gql_api.domain.service import NewPost, PostService
from gql_api.execution import fast_fields
from gql_api.resolvers import fields
from gql_api.resolvers.context import RequestContext
from gql_api.schema import root
from gql_api.schema.types import Post
from gql_api.schema.values import DATETIME, Profile
from gql_api.stores.memory import MemoryStore
from tests.helpers import ALICE, BOB

QUERY = """query ($id: ID!) {
  posts(first: 5) { nodes { id author { userId nickname } imageUrls } }
  post(id: $id) { author { userId nickname } imageUrls }
  viewer { userId profile { userId nickname } }
}"""


async def seeded() -> tuple[PostService, str]:
    store = MemoryStore()
    await store.open()
    service = PostService(store, timeout=5)
    await service.create_post(ALICE, NewPost(content="one"))
    await service.update_profile(ALICE, "Ada")
    second = await service.create_post(dataclasses.replace(BOB, nickname="Bo"), NewPost("two"))
    return service, second.id


def context(service: PostService) -> RequestContext:
    return RequestContext(service=service, viewer=ALICE, request_id="test")


async def run(schema: strawberry.Schema, service: PostService, post_id: str) -> Any:
    result = await schema.execute(
        QUERY, variable_values={"id": post_id}, context_value=context(service)
    )
    assert result.errors is None, result.errors
    return result.data


async def test_strawberry_alone_and_the_prepared_schema_answer_the_same() -> None:
    service, post_id = await seeded()
    # A schema of the same types that no executor prepared: Strawberry calls every resolver.
    plain = strawberry.Schema(
        query=root.Query,
        mutation=root.Mutation,
        config=StrawberryConfig(scalar_map={datetime: DATETIME}),
    )
    fast_fields.prepare(root.schema)

    alone = await run(plain, service, post_id)
    prepared = await run(root.schema, service, post_id)

    assert alone == prepared
    authors = [node["author"] for node in alone["posts"]["nodes"]]
    assert authors == [
        {"userId": "bob", "nickname": "Bo"},  # the token's nickname: no stored profile
        {"userId": "alice", "nickname": "Ada"},
    ]
    assert alone["post"] == {"author": {"userId": "bob", "nickname": "Bo"}, "imageUrls": []}
    assert alone["viewer"]["profile"] == {"userId": "alice", "nickname": "Ada"}


async def test_a_direct_resolver_answers_a_value_when_its_page_loaded_it() -> None:
    service, post_id = await seeded()
    record = await service.get_post(post_id)
    assert record is not None
    post = Post.from_record(record)
    request = context(service)
    info: Any = type("Info", (), {"context": request})()

    pending = fields.post_author_now(post, info)
    assert isawaitable(pending)  # not loaded with a page: batched through the loader
    assert await pending == Profile(user_id=post.author_id, nickname="Bo")

    request.known_profiles["bob"] = await request.profiles.load("bob")
    known = fields.post_author_now(post, info)
    assert known == Profile(user_id=post.author_id, nickname="Bo")
    assert fields.post_image_urls_now(post, info) == []  # no keys: a list, at once


def test_the_executor_installs_the_direct_resolvers() -> None:
    fast_fields.prepare(root.schema)
    post_type: Any = root.schema._schema.type_map["Post"]
    assert post_type.fields["author"].resolve is fields.post_author_now
    assert post_type.fields["imageUrls"].resolve is fields.post_image_urls_now
