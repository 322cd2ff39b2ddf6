"""Full Lambda event samples of each shape that reaches the handler.

Shapes follow the AWS documentation's examples: API Gateway REST (payload 1.0),
HTTP API (payload 2.0), a Lambda function URL (2.0, no route key) and an
Application Load Balancer target.
"""

from __future__ import annotations

import base64
from typing import Any

SHAPES = ["rest_v1", "http_v2", "function_url", "alb"]


def event(
    shape: str,
    *,
    method: str = "POST",
    body: str | None = None,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    base64_body: bool = False,
) -> dict[str, Any]:
    all_headers = {
        "accept": "application/json",
        "content-type": "application/json",
        "host": "api.example.com",
        "user-agent": "curl/8.0",
        "x-forwarded-for": "203.0.113.7",
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
        **(headers or {}),
    }
    raw_body = body
    if body is not None and base64_body:
        raw_body = base64.b64encode(body.encode()).decode()
    query = query or {}
    from urllib.parse import urlencode

    raw_query = urlencode(query)
    if shape == "rest_v1":
        return {
            "resource": "/graphql",
            "path": "/graphql",
            "httpMethod": method,
            "headers": all_headers,
            "multiValueHeaders": {k: [v] for k, v in all_headers.items()},
            "queryStringParameters": query or None,
            "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} or None,
            "pathParameters": None,
            "stageVariables": None,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "1234567890",
                "domainName": "api.example.com",
                "httpMethod": method,
                "identity": {"sourceIp": "203.0.113.7", "userAgent": "curl/8.0"},
                "path": "/prod/graphql",
                "protocol": "HTTP/1.1",
                "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
                "requestTimeEpoch": 1428582896000,
                "resourceId": "123456",
                "resourcePath": "/graphql",
                "stage": "prod",
            },
            "body": raw_body,
            "isBase64Encoded": base64_body,
        }
    if shape in ("http_v2", "function_url"):
        sample: dict[str, Any] = {
            "version": "2.0",
            "routeKey": "$default" if shape == "function_url" else "ANY /graphql",
            "rawPath": "/graphql",
            "rawQueryString": raw_query,
            "cookies": [],
            "headers": all_headers,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "api-id" if shape == "http_v2" else "abcdefghijklmnop",
                "domainName": (
                    "api.example.com"
                    if shape == "http_v2"
                    else "abcdefghijklmnop.lambda-url.eu-west-1.on.aws"
                ),
                "domainPrefix": "api",
                "http": {
                    "method": method,
                    "path": "/graphql",
                    "protocol": "HTTP/1.1",
                    "sourceIp": "203.0.113.7",
                    "userAgent": "curl/8.0",
                },
                "requestId": "JKJaXmPLvHcESHA=",
                "routeKey": "$default",
                "stage": "$default",
                "time": "10/Mar/2026:00:03:04 +0000",
                "timeEpoch": 1773100984000,
            },
            "isBase64Encoded": base64_body,
        }
        if query:
            sample["queryStringParameters"] = query
        if raw_body is not None:
            sample["body"] = raw_body
        return sample
    if shape == "alb":
        return {
            "requestContext": {
                "elb": {
                    "targetGroupArn": (
                        "arn:aws:elasticloadbalancing:eu-west-1:123456789012:"
                        "targetgroup/gql-api/6d0ecf831eec9f09"
                    )
                }
            },
            "httpMethod": method,
            "path": "/graphql",
            "queryStringParameters": query,
            "headers": all_headers,
            "body": raw_body or "",
            "isBase64Encoded": base64_body,
        }
    raise ValueError(shape)
