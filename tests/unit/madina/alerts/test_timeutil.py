"""Stored times: one canonical UTC text per instant, whatever zone the datetime was in, and naive
datetimes refused, also once the text of that instant is remembered."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from madina.alerts.timeutil import time_from_text, time_to_text


def test_equal_instants_give_one_fixed_precision_utc_text_that_reads_back_to_the_instant() -> None:
    draw = random.Random(3)
    for _ in range(3000):
        moment = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(microseconds=draw.randrange(10**15))
        zoned = moment.astimezone(timezone(timedelta(minutes=draw.randrange(-900, 900))))
        text = moment.isoformat(timespec="microseconds")
        assert time_to_text(zoned) == time_to_text(moment) == text
        assert time_from_text(text) == moment
    assert time_to_text(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00.000000+00:00"
    assert time_to_text(None) is None


def test_a_naive_time_is_refused_even_when_the_same_wall_time_in_utc_was_formatted_before() -> None:
    moment = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    time_to_text(moment)
    with pytest.raises(ValueError, match="timezone-aware"):
        time_to_text(moment.replace(tzinfo=None))
