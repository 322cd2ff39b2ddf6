"""The DateTime scalar: RFC 3339 in UTC with a Z suffix and microseconds, whatever time
zone the stored value carries (the stores hold UTC, answered without a conversion)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from gql_api.schema.values import _parse_datetime, _serialize_datetime

RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
OFFSETS = st.integers(min_value=-23 * 60, max_value=23 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
MOMENTS = st.datetimes(
    min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=st.just(UTC)
)


@given(MOMENTS, OFFSETS)
def test_one_instant_is_one_string_in_any_zone(moment: datetime, zone: timezone) -> None:
    text = _serialize_datetime(moment)
    assert RFC3339_UTC.fullmatch(text), text
    assert _serialize_datetime(moment.astimezone(zone)) == text
    assert _parse_datetime(text) == moment


def test_a_whole_second_keeps_its_microseconds() -> None:
    assert _serialize_datetime(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == (
        "2026-01-02T03:04:05.000000Z"
    )
