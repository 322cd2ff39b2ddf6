"""The SAM template: valid, and its table exactly what the DynamoDB store provisions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cfnlint.decode import decode

from gql_api.images.base import PENDING_PREFIX
from gql_api.stores.dynamodb_table import INDEXES, table_definition

TEMPLATE = Path(__file__).resolve().parent.parent / "deploy" / "aws" / "template.yaml"


def template() -> dict[str, Any]:
    parsed, problems = decode(str(TEMPLATE))
    assert not problems, problems
    assert parsed is not None
    return dict(parsed)


def test_the_templates_table_is_what_provision_creates() -> None:
    table = template()["Resources"]["PostsTable"]["Properties"]
    expected = table_definition("ignored")

    def by_name(items: list[dict[str, Any]], key: str) -> dict[str, Any]:
        return {item[key]: item for item in items}

    assert table["BillingMode"] == expected["BillingMode"]
    assert table["KeySchema"] == expected["KeySchema"]
    assert by_name(table["AttributeDefinitions"], "AttributeName") == by_name(
        expected["AttributeDefinitions"], "AttributeName"
    )
    assert by_name(table["GlobalSecondaryIndexes"], "IndexName") == by_name(
        expected["GlobalSecondaryIndexes"], "IndexName"
    )


def test_the_function_may_do_exactly_what_the_store_does() -> None:
    function = template()["Resources"]["ApiFunction"]["Properties"]
    statements = function["Policies"][0]["Statement"]
    granted = {action for s in statements for action in s["Action"]}
    assert granted == {
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:ConditionCheckItem",
        "dynamodb:Query",
        "s3:PutObject",
        "s3:GetObject",
        "s3:DeleteObject",
        "s3:ListBucket",
    }
    index_statement = next(s for s in statements if s["Action"] == ["dynamodb:Query"])
    assert index_statement["Resource"] == {"Fn::Sub": "${PostsTable.Arn}/index/*"}
    images_statement = next(s for s in statements if s["Sid"] == "Images")
    assert images_statement["Resource"] == {"Fn::Sub": "${ImagesBucket.Arn}/*"}
    listing = next(s for s in statements if s["Action"] == ["s3:ListBucket"])
    assert listing["Resource"] == {"Fn::GetAtt": ["ImagesBucket", "Arn"]}
    assert [a for a in images_statement["Action"] if not a.startswith("s3:")] == []
    assert all(
        "*" not in str(s["Resource"]).replace("/index/*", "").replace("Arn}/*", "")
        for s in statements
    )
    assert len(INDEXES) == 4


def test_the_function_is_configured_for_production() -> None:
    function = template()["Resources"]["ApiFunction"]["Properties"]
    variables = function["Environment"]["Variables"]
    assert variables["GQL_API_STORE"] == "dynamodb"
    assert variables["GQL_API_DYNAMODB_TABLE"] == {"Ref": "PostsTable"}
    assert variables["GQL_API_AUTH"] == {"Ref": "AuthMode"}
    assert variables["GQL_API_IMAGES_BUCKET"] == {"Ref": "ImagesBucket"}
    bucket = template()["Resources"]["ImagesBucket"]["Properties"]
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    allowed_auth = template()["Parameters"]["AuthMode"]["AllowedValues"]
    assert "dev" not in allowed_auth
    assert function["Handler"] == "gql_api.lambda_handler.handler"
    assert function["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert "AutoPublishAlias" in function
    api = template()["Resources"]["Api"]["Properties"]["DefaultRouteSettings"]
    assert set(api) == {"ThrottlingRateLimit", "ThrottlingBurstLimit"}


def test_uploads_no_post_attached_expire_and_the_limit_is_a_parameter() -> None:
    resources = template()["Resources"]
    bucket = resources["ImagesBucket"]["Properties"]
    (rule,) = bucket["LifecycleConfiguration"]["Rules"]
    assert (rule["Status"], rule["Prefix"], rule["ExpirationInDays"]) == (
        "Enabled",
        PENDING_PREFIX,
        1,
    )
    cors = bucket["CorsConfiguration"]["Fn::If"][1]["CorsRules"][0]
    assert cors["AllowedMethods"] == ["POST", "GET"]  # uploads are presigned POSTs
    variables = resources["ApiFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["GQL_API_MAX_IMAGE_BYTES"] == {"Ref": "MaxImageBytes"}
    limit = template()["Parameters"]["MaxImageBytes"]
    assert (limit["Default"], limit["MinValue"], limit["MaxValue"]) == (10485760, 1024, 5 * 1024**3)


def test_the_functions_logs_expire() -> None:
    resources = template()["Resources"]
    (group,) = [r for r in resources.values() if r["Type"] == "AWS::Logs::LogGroup"]
    assert group["Properties"]["LogGroupName"] == {"Fn::Sub": "/aws/lambda/${ApiFunction}"}
    assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert template()["Parameters"]["LogRetentionDays"]["Default"] == 30


def test_the_fleet_is_bounded_per_route_and_in_concurrency() -> None:
    resources = template()["Resources"]
    function = resources["ApiFunction"]["Properties"]
    assert function["ReservedConcurrentExecutions"] == {"Ref": "ReservedConcurrency"}
    assert function["Environment"]["Variables"]["GQL_API_WRITES_PER_MINUTE"] == {
        "Ref": "WritesPerMinute"
    }
    api = resources["Api"]["Properties"]
    assert api["DefaultRouteSettings"]["ThrottlingRateLimit"] == {"Ref": "ThrottlingRateLimit"}
    assert api["RouteSettings"]["GET /healthz"]["ThrottlingRateLimit"] == {"Ref": "HealthRateLimit"}
