"""The SAM template: valid, and its table exactly what the DynamoDB store provisions."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

from cfnlint.decode import decode

from gql_api.images.base import PENDING_PREFIX
from gql_api.stores import dynamodb_connections
from gql_api.stores.dynamodb_table import INDEXES, table_definition

PACKAGE = Path(__file__).resolve().parent.parent / "gql_api"
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
    groups = [r for r in resources.values() if r["Type"] == "AWS::Logs::LogGroup"]
    functions = [n for n, r in resources.items() if r["Type"] == "AWS::Serverless::Function"]
    assert sorted(g["Properties"]["LogGroupName"]["Fn::Sub"] for g in groups) == sorted(
        f"/aws/lambda/${{{name}}}" for name in functions
    )
    assert len(functions) == 3
    assert all(g["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"} for g in groups)
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


def defined(module: str) -> set[str]:
    """The functions a module of the package defines (read, not imported: importing an
    entry point reads the settings of its deployment)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def test_the_websocket_api_sends_every_route_to_its_function() -> None:
    resources = template()["Resources"]
    api = resources["WebSocketApi"]["Properties"]
    assert api["ProtocolType"] == "WEBSOCKET"
    routes = {
        r["Properties"]["RouteKey"]: r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::ApiGatewayV2::Route"
    }
    assert set(routes) == {"$connect", "$disconnect", "$default"}  # messages name no route
    for route in routes.values():
        assert route["ApiId"] == {"Ref": "WebSocketApi"}
        assert route["Target"] == {"Fn::Sub": "integrations/${WebSocketIntegration}"}
    integration = resources["WebSocketIntegration"]["Properties"]
    assert integration["IntegrationType"] == "AWS_PROXY"
    assert "${WebSocketFunction.Arn}" in integration["IntegrationUri"]["Fn::Sub"]
    function = resources["WebSocketFunction"]["Properties"]
    module, name = function["Handler"].rsplit(".", 1)
    assert module == "gql_api.lambda_websocket" and name in defined("lambda_websocket")
    assert {"connect", "disconnect", "default"} <= defined("lambda_websocket")
    fanout = resources["FanoutFunction"]["Properties"]
    assert fanout["Handler"] == "gql_api.lambda_fanout.fanout" and "fanout" in defined(
        "lambda_fanout"
    )
    assert resources["WebSocketInvoke"]["Properties"]["FunctionName"] == {
        "Ref": "WebSocketFunction"
    }
    url = template()["Outputs"]["WebSocketUrl"]["Value"]["Fn::Sub"]
    assert url.startswith("wss://${WebSocketApi}.execute-api.") and url.endswith("/live")
    stage = resources["WebSocketStage"]["Properties"]
    assert stage["StageName"] == "live" and stage["AutoDeploy"] is True
    for function in ("WebSocketFunction", "FanoutFunction"):
        variables = resources[function]["Properties"]["Environment"]["Variables"]
        assert variables["GQL_API_WEBSOCKET_TABLE"] == {"Ref": "ConnectionsTable"}
        assert variables["GQL_API_DYNAMODB_TABLE"] == {"Ref": "PostsTable"}
        assert variables["GQL_API_AUTH"] == {"Ref": "AuthMode"}
        endpoint = variables["GQL_API_WEBSOCKET_ENDPOINT"]["Fn::Sub"]
        assert endpoint == url.replace("wss://", "https://", 1)


def test_the_connections_table_is_the_adapters_and_expires_its_items() -> None:
    table = template()["Resources"]["ConnectionsTable"]["Properties"]
    expected = dynamodb_connections.table_definition("ignored")
    assert table["KeySchema"] == expected["KeySchema"]
    assert table["AttributeDefinitions"] == expected["AttributeDefinitions"]
    assert table["BillingMode"] == expected["BillingMode"]
    assert "GlobalSecondaryIndexes" not in table  # a connection's pointers, not an index
    assert table["TimeToLiveSpecification"] == {
        "AttributeName": dynamodb_connections.TTL_ATTRIBUTE,
        "Enabled": True,
    }


def granted(function: str) -> dict[str, tuple[set[str], Any]]:
    """Sid -> (actions, resource) of a function's policy."""
    properties = template()["Resources"][function]["Properties"]
    return {
        s["Sid"]: (set(s["Action"]), s["Resource"]) for s in properties["Policies"][0]["Statement"]
    }


MANAGE = {
    "Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:"
    "${WebSocketApi}/live/*/@connections/*"
}
CONNECTIONS = {"Fn::GetAtt": ["ConnectionsTable", "Arn"]}
POSTS = {"Fn::GetAtt": ["PostsTable", "Arn"]}


def test_the_websocket_function_may_do_only_what_it_does() -> None:
    statements = granted("WebSocketFunction")
    assert statements["Connections"] == (
        {
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "dynamodb:BatchWriteItem",
            "dynamodb:Query",
        },
        CONNECTIONS,
    )
    assert statements["ManageConnections"] == ({"execute-api:ManageConnections"}, MANAGE)
    # Queries and mutations over the socket: the HTTP function's rights on the posts table.
    http = template()["Resources"]["ApiFunction"]["Properties"]["Policies"][0]["Statement"]
    for sid in ("PostsItems", "PostsIndexes"):
        same = next(s for s in http if s["Sid"] == sid)
        assert statements[sid] == (set(same["Action"]), same["Resource"])
    assert set(statements) == {"Connections", "ManageConnections", "PostsItems", "PostsIndexes"}
    assert not any(a.startswith("s3:") for actions, _ in statements.values() for a in actions)


def test_the_fan_out_reads_the_stream_and_may_do_only_what_it_does() -> None:
    statements = granted("FanoutFunction")
    assert statements == {
        "PostsStream": (
            {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"},
            {"Fn::GetAtt": ["PostsTable", "StreamArn"]},
        ),
        "PostsStreams": ({"dynamodb:ListStreams"}, {"Fn::Sub": "${PostsTable.Arn}/stream/*"}),
        "Profiles": ({"dynamodb:GetItem", "dynamodb:BatchGetItem"}, POSTS),
        "Subscriptions": (
            {
                "dynamodb:GetItem",
                "dynamodb:Query",
                "dynamodb:DeleteItem",
                "dynamodb:BatchWriteItem",
            },
            CONNECTIONS,
        ),
        "ManageConnections": ({"execute-api:ManageConnections"}, MANAGE),
    }
    mapping = template()["Resources"]["FanoutStream"]["Properties"]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["PostsTable", "StreamArn"]}
    assert mapping["FunctionName"] == {"Ref": "FanoutFunction"}
    (only_posts,) = mapping["FilterCriteria"]["Filters"]
    assert json.loads(only_posts["Pattern"]) == {"dynamodb": {"Keys": {"sk": {"S": ["POST"]}}}}
    # The stream the store provisions (NEW_AND_OLD_IMAGES: a deletion's author and tags).
    stream = template()["Resources"]["PostsTable"]["Properties"]["StreamSpecification"]
    assert stream["StreamViewType"] == "NEW_AND_OLD_IMAGES"


def test_cloudfront_caches_what_gql_api_marks_public_and_nothing_else() -> None:
    resources = template()["Resources"]
    policy = resources["GraphQLCachePolicy"]["Properties"]["CachePolicyConfig"]
    key = policy["ParametersInCacheKeyAndForwardedToOrigin"]
    # The origin's Cache-Control decides: nothing is kept that it does not say to keep.
    assert policy["MinTTL"] == 0 and policy["DefaultTTL"] == 0
    assert key["QueryStringsConfig"] == {"QueryStringBehavior": "all"}  # the query, APQ's hash
    assert key["CookiesConfig"] == {"CookieBehavior": "none"}
    assert key["HeadersConfig"]["HeaderBehavior"] == "whitelist"
    # Authorization in the key: a signed-in request never gets an anonymous copy.
    assert set(key["HeadersConfig"]["Headers"]) == {"Accept", "Authorization", "Origin"}
    assert key["EnableAcceptEncodingGzip"] and key["EnableAcceptEncodingBrotli"]
    config = resources["Cdn"]["Properties"]["DistributionConfig"]
    (origin,) = config["Origins"]
    assert origin["DomainName"] == {
        "Fn::Sub": "${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}"
    }
    default = config["DefaultCacheBehavior"]
    assert default["CachePolicyId"] == {"Ref": "GraphQLCachePolicy"}
    assert default["CachedMethods"] == ["GET", "HEAD"] and "POST" in default["AllowedMethods"]
    assert default["Compress"] is True
    (health,) = config["CacheBehaviors"]
    assert health["PathPattern"] == "/healthz"
    assert health["CachePolicyId"] == "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"  # CachingDisabled
