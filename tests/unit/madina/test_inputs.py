"""Shared request checks: JSON depth without parsing, times in range, bounded echo."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from madina.http import json_depth
from madina.inputs import EARLIEST, InvalidInput, echo, time_from_request, utc_in_range


@pytest.mark.parametrize(("body", "depth"), [
    (b"", 0), (b"1", 0), (b"{}", 1), (b'{"a": [1, {"b": "[[[["}]}', 3), (b'["\\"[", [[]]]', 3),
    (b"[" * 1000 + b"]" * 1000, 1000),
])
def test_json_depth_counts_brackets_outside_strings(body: bytes, depth: int) -> None:
    assert json_depth(body) == depth


@pytest.mark.parametrize("body", [b'"' + b'\\"' * 300_000, b"[]," * 300_000, b'"' * 600_000])
def test_json_depth_is_linear_on_a_megabyte_of_hostile_input(body: bytes) -> None:
    started = time.perf_counter()
    json_depth(body)
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1969-12-31T23:59:59Z"])
def test_times_no_service_can_use_are_refused_not_overflowed(text: str) -> None:
    with pytest.raises(InvalidInput, match="observe_time"):
        utc_in_range(datetime.fromisoformat(text), "observe_time")


def test_a_time_with_an_offset_comes_back_in_utc() -> None:
    assert utc_in_range(datetime.fromisoformat("2025-03-01T09:00:00+01:00")) == datetime(2025, 3, 1, 8, tzinfo=UTC)


@pytest.mark.parametrize("stamp", [Timestamp(seconds=10**15), Timestamp(seconds=0, nanos=-1), Timestamp(seconds=-1)])
def test_request_timestamps_out_of_range_are_invalid_input(stamp: Timestamp) -> None:
    with pytest.raises(InvalidInput, match="when"):
        time_from_request(stamp, "when")
    assert time_from_request(Timestamp(seconds=0), "when") == EARLIEST


def test_echo_bounds_what_it_quotes() -> None:
    assert echo("abc") == "'abc'"
    quoted = echo("x" * 1_000_000)
    assert len(quoted) < 100 and "1000000 characters" in quoted
