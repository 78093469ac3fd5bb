"""EPA NowCast for PM, checked against EPA's published worked example, and the evaluator's use of it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.environment.domain.evaluator import StationState, apply_observations
from services.environment.domain.measurands import Observation, StationKind
from services.environment.domain.nowcast import nowcast, nowcast_aqi
from services.environment.domain.stations import load_stations

# US EPA "Computing the NowCast" worked example, hourly PM2.5 in µg/m³ listed oldest to newest:
# range 90 - 10 = 80, scaled rate 80/90, weight 1 - 80/90 = 0.11 < 0.5 so 0.5, NowCast 17.4 µg/m³.
# Sources: https://cdn.slideserve.com/brina/computing-the-nowcast (EPA AirNow training slides) and
# the steps in the EPA PM NowCast fact sheet, https://nepis.epa.gov/Exe/ZyPURL.cgi?Dockey=P100X0J6.txt
EPA_EXAMPLE_OLDEST_FIRST = [50, 80, 75, 90, 82, 53, 64, 74, 21, 10, 16, 13]


def newest_first(values):
    return list(reversed(values))


def test_epa_worked_example_gives_17_4():
    value = nowcast(newest_first(EPA_EXAMPLE_OLDEST_FIRST))
    assert value == pytest.approx(17.4, abs=0.05)


def test_epa_example_maps_to_aqi_66_through_the_24h_breakpoints():
    # 17.4 µg/m³ (truncated to 0.1) in the 9.1-35.4 row: (100-51)/(35.4-9.1)*(17.4-9.1)+51 = 66.5 -> 66.
    result = nowcast_aqi(newest_first(EPA_EXAMPLE_OLDEST_FIRST), [])
    assert result is not None
    assert result.sub_indices == {"pm25_ugm3": 66}
    assert result.category == "Moderate"


def test_weight_factor_is_floored_at_half_for_pm():
    # Without the floor the weight would be 0.1 and the newest hour would dominate (~10.9).
    hours = [10.0, 100.0, 100.0]
    assert nowcast(hours) == pytest.approx((10 + 0.5 * 100 + 0.25 * 100) / 1.75)


def test_steady_air_is_the_plain_12_hour_mean():
    assert nowcast([20.0] * 12) == pytest.approx(20.0)


def test_only_the_12_newest_hours_count():
    assert nowcast([20.0] * 12 + [500.0]) == pytest.approx(20.0)


@pytest.mark.parametrize(
    ("hours", "valid"),
    [
        ([None, None, 13.0, 16.0], False),  # the 2 newest missing
        ([None, 16.0, None, 21.0], False),  # only 1 of the 3 newest
        ([13.0, None, None, 21.0], False),
        ([13.0, None, 10.0, 21.0], True),  # 2 of the 3 newest
        ([None, 16.0, 10.0], True),
        ([13.0, 16.0], True),
    ],
)
def test_two_of_the_three_newest_hours_must_be_valid(hours, valid):
    assert (nowcast(hours) is not None) is valid


def test_a_missing_hour_drops_out_of_both_sums():
    # Hour 1 missing: weights w^0 and w^2 only (w = 1 - 6/16 = 0.625).
    w = 1 - (16 - 10) / 16
    assert nowcast([10.0, None, 16.0]) == pytest.approx((10 + 16 * w**2) / (1 + w**2))


def test_pm10_nowcast_uses_pm10_breakpoints():
    result = nowcast_aqi([], [60.0] * 12)
    assert result is not None and result.sub_indices == {"pm10_ugm3": 53}


def test_evaluator_publishes_nowcast_from_complete_clock_hours():
    station = replace({s.id: s for s in load_stations()}["cas-air-anfa"], reporting_interval=timedelta(hours=1))
    start = datetime(2025, 3, 1, 0, 30, tzinfo=UTC)
    state = StationState.new(station.id)
    values = EPA_EXAMPLE_OLDEST_FIRST
    for hour, value in enumerate(values):
        observation = Observation(station.id, start + timedelta(hours=hour), StationKind.AIR, {"pm25_ugm3": value})
        state = apply_observations(state, [observation], (), station).state
    # The 12th hour is still open: its hour does not count yet, so the NowCast is over 11 hours.
    assert state.nowcast_aqi is not None
    assert state.nowcast_aqi.sub_indices["pm25_ugm3"] == nowcast_aqi(newest_first(values[:-1]), []).sub_indices[
        "pm25_ugm3"
    ]
    closing = Observation(station.id, start + timedelta(hours=12), StationKind.AIR, {"pm25_ugm3": 13.0})
    state = apply_observations(state, [closing], (), station).state
    assert state.nowcast_aqi is not None and state.nowcast_aqi.sub_indices == {"pm25_ugm3": 66}
    # last_aqi (rolling means) is untouched and still published as before.
    assert state.last_aqi is not None


def test_no_nowcast_before_two_complete_hours():
    station = replace({s.id: s for s in load_stations()}["cas-air-anfa"], reporting_interval=timedelta(hours=1))
    start = datetime(2025, 3, 1, 0, 30, tzinfo=UTC)
    state = StationState.new(station.id)
    first = Observation(station.id, start, StationKind.AIR, {"pm25_ugm3": 30.0})
    second = Observation(station.id, start + timedelta(hours=1), StationKind.AIR, {"pm25_ugm3": 30.0})
    state = apply_observations(state, [first, second], (), station).state
    assert state.nowcast_aqi is None and state.last_aqi is not None
