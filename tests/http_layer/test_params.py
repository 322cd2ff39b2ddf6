"""A request's parameters and media types (``http/params.py``)."""

from __future__ import annotations

import pytest

from gql_api.http.params import HttpError, check_query, check_shapes, negotiate, wants_event_stream


@pytest.mark.parametrize(
    ("accept", "wanted"),
    [
        ("text/event-stream", True),
        ("text/event-stream, application/json", True),
        ("application/json, text/event-stream", False),
        ("*/*", False),
        (None, False),
        ("text/html, text/event-stream", True),
        ("application/graphql-response+json, text/event-stream;q=0.5", False),
    ],
)
def test_an_event_stream_is_wanted_only_before_json(accept: str | None, wanted: bool) -> None:
    assert wants_event_stream(accept) is wanted


@pytest.mark.parametrize(
    ("accept", "media"),
    [
        (None, "application/json"),
        ("application/graphql-response+json", "application/graphql-response+json"),
        (
            "application/json;q=0.5, application/graphql-response+json",
            "application/graphql-response+json",
        ),
        ("*/*", "application/json"),
    ],
)
def test_negotiation(accept: str | None, media: str) -> None:
    assert negotiate(accept) == media


def test_nothing_acceptable_is_406() -> None:
    with pytest.raises(HttpError) as refused:
        negotiate("text/html")
    assert (refused.value.status, refused.value.code) == (406, "NOT_ACCEPTABLE")


@pytest.mark.parametrize(
    "params",
    [{"variables": [1]}, {"extensions": "x"}, {"operationName": 3}],
)
def test_shapes_are_checked(params: dict[str, object]) -> None:
    with pytest.raises(HttpError):
        check_shapes(params)


@pytest.mark.parametrize("query", [None, "", "   ", 5])
def test_a_query_is_required(query: object) -> None:
    with pytest.raises(HttpError):
        check_query({"query": query})
