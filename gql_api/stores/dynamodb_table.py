"""The DynamoDB table and its items: the table's definition (which `gql-api provision`
and the SAM template share) and the doctor's comparison with it; the keys of posts, tag
entries and profiles; documents as DynamoDB attribute values; which SDK errors mean the
table cannot be reached (for the store and its change feed). Their layout and why:
README, "The DynamoDB store"."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gql_api.domain.records import PostRecord
from gql_api.stores.documents import DocumentCodec
from gql_api.stores.keyset import from_micros, to_micros

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb.type_defs import StreamSpecificationTypeDef

# index name -> (partition key attribute, projection)
INDEXES: dict[str, tuple[str, str]] = {
    "feed": ("feedPk", "ALL"),
    "author": ("authorPk", "ALL"),
    "tag": ("tagPk", "KEYS_ONLY"),
    "tagAuthor": ("tagAuthorPk", "KEYS_ONLY"),
}
SORT_KEY = "feedSk"
FIX = "run `gql-api provision` (or deploy the table of deploy/aws)"
# The change feed reads the table's stream: a deleted post's old image holds its author and tags.
STREAM: StreamSpecificationTypeDef = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}

_UNAVAILABLE_CODES = {
    "ResourceNotFoundException",
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "LimitExceededException",  # GetRecords past its 5 calls a second on a shard
    "InternalServerError",
    "ServiceUnavailable",
    "UnrecognizedClientException",
    "AccessDeniedException",
    "ExpiredTokenException",
}

# Times as integer microseconds; an absent value is left out of the item.
CODEC = DocumentCodec(
    "createdAt", "updatedAt", write_time=to_micros, read_time=from_micros, keep_nulls=False
)


def table_definition(table: str) -> dict[str, Any]:
    """The ``CreateTable`` request of the table this store expects (also for deploy files)."""
    attributes = {"pk", "sk", SORT_KEY} | {key for key, _ in INDEXES.values()}
    return {
        "TableName": table,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": "S"} for name in sorted(attributes)
        ],
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": name,
                "KeySchema": [
                    {"AttributeName": key, "KeyType": "HASH"},
                    {"AttributeName": SORT_KEY, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": projection},
            }
            for name, (key, projection) in INDEXES.items()
        ],
        "StreamSpecification": dict(STREAM),
    }


def compare(table: str, described: Mapping[str, Any]) -> list[tuple[bool, str]]:
    """``DescribeTable``'s answer against ``table_definition``: (ok, one line with a fix)."""
    fix = FIX
    expected = table_definition(table)
    checks = [
        (
            described.get("KeySchema") == expected["KeySchema"],
            f"table {table}: key schema pk (HASH), sk (RANGE)",
        ),
        (
            described.get("TableStatus") == "ACTIVE",
            f"table {table}: status {described.get('TableStatus')}",
        ),
    ]
    present = {i["IndexName"]: i for i in described.get("GlobalSecondaryIndexes", [])}
    for index in expected["GlobalSecondaryIndexes"]:
        name = index["IndexName"]
        found = present.get(name)
        if found is None:
            checks.append((False, f"index {name}: missing; fix: {fix}"))
            continue
        same = (
            found.get("KeySchema") == index["KeySchema"]
            and found.get("Projection", {}).get("ProjectionType")
            == index["Projection"]["ProjectionType"]
        )
        status = found.get("IndexStatus")
        shape = "as expected" if same else "differs from what gql-api expects"
        line = f"index {name}: {shape}, {status}"
        checks.append((same and status == "ACTIVE", line if same else f"{line}; fix: {fix}"))
    checks.append(stream_check(table, described))
    return checks


def stream_check(table: str, described: Mapping[str, Any]) -> tuple[bool, str]:
    """The table's stream (in ``DescribeTable``'s answer) against ``STREAM``."""
    spec = described.get("StreamSpecification") or {}
    view = spec.get("StreamViewType") if spec.get("StreamEnabled") else None
    if view == STREAM["StreamViewType"]:
        return True, f"stream of {table}: {view}"
    if view is None:
        return False, f"stream of {table}: missing (the live feed reads it); fix: {FIX}"
    # Not replaced by provision: a new stream cuts off the old one's other readers.
    return (
        False,
        f"stream of {table}: {view}, not NEW_AND_OLD_IMAGES; fix: `aws dynamodb update-table "
        f"--table-name {table} --stream-specification StreamEnabled=false`, then again with "
        "StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES (the old stream's readers stop)",
    )


def post_key(post_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"POST#{post_id}"}, "sk": {"S": "POST"}}


def is_post_key(keys: Mapping[str, Any]) -> bool:
    """Whether an item's keys are a post's: tag entries' sort keys are TAG#<tag>, profiles'
    PROFILE (``post_key``)."""
    return keys.get("sk") == {"S": "POST"}


def profile_key(user_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"PROFILE#{user_id}"}, "sk": {"S": "PROFILE"}}


def tag_key(post_id: str, tag: str) -> dict[str, Any]:
    return {"pk": {"S": f"POST#{post_id}"}, "sk": {"S": f"TAG#{tag}"}}


def tag_item(post: PostRecord, tag: str) -> dict[str, Any]:
    return {
        **tag_key(post.id, tag),
        "tagPk": {"S": f"TAG#{tag}"},
        "tagAuthorPk": {"S": f"TAG#{tag} {post.author_id}"},
        SORT_KEY: {"S": sort_key(to_micros(post.created_at), post.id)},
    }


def sort_key(micros: int, post_id: str) -> str:
    return f"{micros:016d}#{post_id}"


def id_of(entry: dict[str, Any]) -> str:
    pk: str = entry["pk"]["S"]
    return pk.removeprefix("POST#")


def record_of(item: Mapping[str, Any]) -> PostRecord:
    """A post item (or a stream record's image of one) as a record."""
    return CODEC.post_record(plain(item))


def outage(error: Exception) -> str | None:
    """What an SDK error says when the table or its stream cannot be reached, else None."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        return f"DynamoDB {code}: {error}" if code in _UNAVAILABLE_CODES else None
    if isinstance(error, BotoCoreError):  # connection refused, timeouts, no credentials
        return f"DynamoDB unreachable: {error}"
    return None


def typed(document: Mapping[str, Any]) -> dict[str, Any]:
    """A document of ``CODEC`` as DynamoDB attribute values (strings, booleans, integers,
    lists of strings: all a post or a profile holds)."""
    return {name: _attribute(value) for name, value in document.items()}


def plain(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item's attribute values as ``CODEC`` reads them (its keys included)."""
    return {name: _value(attribute) for name, attribute in item.items()}


def _attribute(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):  # before int: a bool is an int too
        return {"BOOL": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": value}
    return {"L": [{"S": entry} for entry in value]}


def _value(attribute: Mapping[str, Any]) -> Any:
    ((kind, raw),) = attribute.items()
    if kind == "N":
        return int(raw)
    if kind == "L":
        return [entry["S"] for entry in raw]
    return raw
