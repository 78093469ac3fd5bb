"""US EPA AQI (2024 breakpoints) as computed by services.environment.domain.aqi."""

from __future__ import annotations

import pytest

from services.environment.domain.aqi import (
    CO_8H,
    CO_MGM3_PER_PPM,
    NO2_1H,
    NO2_UGM3_PER_PPB,
    O3_1H,
    O3_8H,
    O3_UGM3_PER_PPM,
    PM10_24H,
    PM25_24H,
    SO2_1H,
    SO2_24H,
    SO2_UGM3_PER_PPB,
    AqiResult,
    compute_aqi,
)


def aqi_of(key: str, value: float) -> int:
    result = compute_aqi({key: value})
    assert result is not None
    return result.aqi


@pytest.mark.parametrize(
    ("pm25", "expected"),
    [
        (0.0, 0),
        (9.0, 50),
        (9.09, 50),  # truncated to 9.0 before lookup
        (9.1, 51),
        (35.4, 100),
        (35.5, 101),
        (55.4, 150),
        (55.5, 151),
        (125.4, 200),
        (125.5, 201),
        (225.4, 300),
        (225.5, 301),
        (325.4, 500),
    ],
)
def test_pm25_breakpoint_edges_follow_2024_table(pm25, expected):
    assert aqi_of(PM25_24H, pm25) == expected


@pytest.mark.parametrize(
    ("pm10", "expected"),
    [
        (54, 50),
        (54.9, 50),
        (55, 51),
        (154, 100),
        (155, 101),
        (254, 150),
        (255, 151),
        (354, 200),
        (355, 201),
        (424, 300),
        (425, 301),
        (604, 500),
    ],
)
def test_pm10_breakpoint_edges_with_integer_truncation(pm10, expected):
    assert aqi_of(PM10_24H, pm10) == expected


@pytest.mark.parametrize(
    ("ppm", "expected"),
    [
        (0.054, 50),
        (0.055, 51),
        (0.070, 100),
        (0.071, 101),
        (0.085, 150),
        (0.086, 151),
        (0.105, 200),
        (0.106, 201),
        (0.200, 300),
    ],
)
def test_o3_8h_edges_after_ugm3_to_ppm_conversion(ppm, expected):
    assert aqi_of(O3_8H, ppm * O3_UGM3_PER_PPM) == expected


def test_o3_8h_above_table_reports_300_with_note():
    result = compute_aqi({O3_8H: 0.250 * O3_UGM3_PER_PPM})
    assert result is not None and result.aqi == 300
    assert any("1 h ozone" in note for note in result.notes)


def test_o3_1h_raises_index_when_more_precautionary():
    result = compute_aqi({O3_8H: 0.050 * O3_UGM3_PER_PPM, O3_1H: 0.165 * O3_UGM3_PER_PPM})
    assert result is not None and result.sub_indices["o3_ugm3"] == 151


def test_o3_1h_below_its_table_is_ignored():
    result = compute_aqi({O3_8H: 0.050 * O3_UGM3_PER_PPM, O3_1H: 0.100 * O3_UGM3_PER_PPM})
    assert result is not None and result.aqi == 46


def test_no2_so2_co_sub_indices_use_ppb_ppm_conversions():
    result = compute_aqi(
        {NO2_1H: 100 * NO2_UGM3_PER_PPB, SO2_1H: 75 * SO2_UGM3_PER_PPB, CO_8H: 9.4 * CO_MGM3_PER_PPM}
    )
    assert result is not None
    assert result.sub_indices["no2_ugm3"] == 100
    assert result.sub_indices["so2_ugm3"] == 100
    assert result.sub_indices["co_mgm3"] == 100


def test_so2_above_1h_table_needs_24h_mean():
    without = compute_aqi({SO2_1H: 400 * SO2_UGM3_PER_PPB})
    with_24h = compute_aqi({SO2_1H: 400 * SO2_UGM3_PER_PPB, SO2_24H: 305 * SO2_UGM3_PER_PPB})
    assert without is not None and without.aqi == 200 and without.notes
    assert with_24h is not None and with_24h.aqi == 201


def test_above_range_caps_at_500_with_note():
    result = compute_aqi({PM25_24H: 600.0})
    assert result is not None
    assert result.aqi == 500 and result.category == "Hazardous"
    assert "beyond the AQI" in result.notes[0]


def test_station_aqi_is_max_sub_index_with_dominant_pollutant_and_category():
    result = compute_aqi({PM25_24H: 40.0, PM10_24H: 100.0, O3_8H: 60.0})
    assert result is not None
    assert result.dominant_pollutant == "pm25_ugm3"
    assert result.aqi == max(result.sub_indices.values()) == 112
    assert result.category == "Unhealthy for Sensitive Groups"


def test_tied_sub_indices_pick_dominant_deterministically():
    result = compute_aqi({PM10_24H: 54.0, PM25_24H: 9.0})
    assert result is not None and result.dominant_pollutant == "pm25_ugm3"


def test_no_inputs_gives_none():
    assert compute_aqi({}) is None


def test_result_round_trips_through_dict():
    result = compute_aqi({PM25_24H: 40.0, O3_8H: 500.0})
    assert result is not None
    assert AqiResult.from_dict(result.to_dict()) == result
