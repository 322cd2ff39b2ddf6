"""The one post and profile mapping of the document stores (``stores/documents.py``): each
store's encoding round-trips every record, and writes the layout its stored data has
(items and documents written before the mapping was shared read back the same)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gql_api.domain.records import PostRecord, ProfileRecord
from gql_api.stores import cosmos_changes, dynamodb, dynamodb_table, firestore
from gql_api.stores.documents import DocumentCodec

CREATED = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
UPDATED = datetime(2026, 3, 5, 0, 0, 0, 1, tzinfo=UTC)
CREATED_US = 1772600767123456
UPDATED_US = 1772668800000001

BARE = PostRecord(
    id="p1",
    author_id="alice",
    content="hello",
    is_markdown=False,
    tags=(),
    image_keys=(),
    created_at=CREATED,
    updated_at=None,
    version=1,
)
FULL = PostRecord(
    id="p2",
    author_id="bob",
    content="# hi",
    is_markdown=True,
    tags=("a", "b"),
    image_keys=("bob/x.png",),
    created_at=CREATED,
    updated_at=UPDATED,
    version=3,
    author_nickname="Bo",
    idempotency_digest="d" * 64,
)
CODECS = {
    "dynamodb": dynamodb_table.CODEC,
    "firestore": firestore.CODEC,
    "cosmos": cosmos_changes.CODEC,
}


@pytest.mark.parametrize("codec", CODECS.values(), ids=CODECS.keys())
@pytest.mark.parametrize("post", [BARE, FULL], ids=["bare", "full"])
def test_every_post_round_trips(codec: DocumentCodec, post: PostRecord) -> None:
    assert codec.post_record(codec.post(post)) == post


@pytest.mark.parametrize("codec", CODECS.values(), ids=CODECS.keys())
@pytest.mark.parametrize(
    "profile",
    [ProfileRecord("alice"), ProfileRecord("bob", "Bo", UPDATED)],
    ids=["bare", "full"],
)
def test_every_profile_round_trips(codec: DocumentCodec, profile: ProfileRecord) -> None:
    assert codec.profile_record(profile.user_id, codec.profile(profile)) == profile


def test_dynamodb_items_keep_their_layout() -> None:
    item = dynamodb.DynamoDBStore("posts")._post_item(FULL)
    assert item == {
        "pk": {"S": "POST#p2"},
        "sk": {"S": "POST"},
        "id": {"S": "p2"},
        "authorId": {"S": "bob"},
        "content": {"S": "# hi"},
        "isMarkdown": {"BOOL": True},
        "tags": {"L": [{"S": "a"}, {"S": "b"}]},
        "imageKeys": {"L": [{"S": "bob/x.png"}]},
        "createdAt": {"N": str(CREATED_US)},
        "updatedAt": {"N": str(UPDATED_US)},
        "version": {"N": "3"},
        "authorNickname": {"S": "Bo"},
        "idempotencyDigest": {"S": "d" * 64},
        "feedPk": {"S": "FEED#0"},
        "authorPk": {"S": "AUTHOR#bob"},
        "feedSk": {"S": f"{CREATED_US:016d}#p2"},
    }
    assert dynamodb_table.record_of(item) == FULL
    bare = dynamodb.DynamoDBStore("posts")._post_item(BARE)
    # Absent values are left out of the item, never stored as NULL.
    assert not {"updatedAt", "authorNickname", "idempotencyDigest"} & bare.keys()
    assert dynamodb_table.typed(dynamodb_table.CODEC.profile(ProfileRecord("alice"))) == {
        "userId": {"S": "alice"}
    }


def test_firestore_and_cosmos_documents_keep_their_layout() -> None:
    common = {
        "id": "p1",
        "authorId": "alice",
        "content": "hello",
        "isMarkdown": False,
        "tags": [],
        "imageKeys": [],
        "version": 1,
        "authorNickname": None,
        "idempotencyDigest": None,
    }
    assert firestore.CODEC.post(BARE) == {**common, "createdAt": CREATED, "updatedAt": None}
    assert cosmos_changes.CODEC.post(BARE) == {**common, "createdUs": CREATED_US, "updatedUs": None}
    assert cosmos_changes.CODEC.profile(ProfileRecord("bob", "Bo", UPDATED)) == {
        "userId": "bob",
        "nickname": "Bo",
        "updatedUs": UPDATED_US,
    }
