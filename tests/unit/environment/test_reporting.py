"""The processor's step publishes what regulators read: NowCast and 24 h AQI, exceedances against
the allowance and annual means in the station status, and NowCast and exceedance KPIs on kpis.v1."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from madina.bus.topics import KPIS
from services.environment.convert import batches_by_station
from services.environment.domain import aqi as aqi_inputs
from services.environment.domain.aqi import compute_aqi
from services.environment.domain.evaluator import EvaluatorConfig
from services.environment.domain.measurands import Observation, StationKind
from services.environment.domain.nowcast import nowcast
from services.environment.domain.profiles import load_profiles, select_annual_limits, select_rules
from services.environment.domain.stations import Station, load_stations
from services.environment.processor.station_stream import StoredState, apply_batch
from services.environment.topics import STATION_STATUS
from tests.unit.environment.domain.test_compliance import PROFILE  # pm10-24h: 50 µg/m³, 2 allowed, warning at 50 %

PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture(scope="module")
def station() -> Station:
    base = {s.id: s for s in load_stations()}["cas-air-anfa"]
    return replace(base, timezone="Europe/Paris", reporting_interval=timedelta(hours=1))


@pytest.fixture(scope="module")
def profile(tmp_path_factory):  # type: ignore[no-untyped-def]
    path: Path = tmp_path_factory.mktemp("profiles") / "test.yaml"
    path.write_text(PROFILE, encoding="utf-8")
    profiles = load_profiles([path], include_builtin=False)
    return select_rules(profiles, ["test"]), select_annual_limits(profiles, ["test"])


def run(station, profile, hours):  # type: ignore[no-untyped-def]
    """Feed one hourly reading per record; returns the final state and every published record."""
    rules, limits = profile
    stored = StoredState.new(station.id)
    records = []
    for at, values in hours:
        [(_, _, batch)] = batches_by_station([Observation(station.id, at, StationKind.AIR, values)])
        outputs = apply_batch(stored, batch, station, rules, EvaluatorConfig(), None, limits)
        assert outputs.rejected == []
        records.extend(outputs.records)
    return stored, records


def local(day: int, hour: int = 0, minute: int = 30) -> datetime:
    return datetime(2025, 3, day, hour, minute, tzinfo=PARIS).astimezone(UTC)


def test_status_carries_nowcast_daily_aqi_exceedances_against_allowance_and_annual_means(station, profile):
    # PM10 80 µg/m³ every hour of 3 local days, then one clean reading that closes the third day.
    hours = [(local(1) + timedelta(hours=h), {"pm10_ugm3": 80.0, "pm25_ugm3": 20.0}) for h in range(72)]
    hours.append((local(4, 0, 30), {"pm10_ugm3": 10.0, "pm25_ugm3": 5.0}))
    _, records = run(station, profile, hours)

    status = [message for spec, _, message in records if spec is STATION_STATUS][-1].status
    [count] = [e for e in status.exceedances if e.rule_id == "test/pm10-24h"]
    assert (count.rule_id, count.year, count.limit_value) == ("test/pm10-24h", 2025, 50.0)
    assert (count.exceedance_count, count.allowed_count, count.remaining_count, count.breached) == (3, 2, -1, True)
    assert count.averaging_period.ToTimedelta() == timedelta(days=1)

    # NowCast of the 12 complete clock hours before the newest reading's (all at 20 µg/m³ PM2.5; the
    # clean reading's hour is still open), timed at the end of the newest complete one.
    expected = nowcast([20.0] * 12)
    assert expected is not None
    assert status.nowcast_aqi.sub_indices["pm25_ugm3"] == compute_aqi({aqi_inputs.PM25_24H: expected}).aqi
    assert status.nowcast_aqi.compute_time.ToDatetime(tzinfo=UTC) == local(4, 0, 0)
    # The 24 h AQI is that of 3 March, the newest complete day, timed at its local end.
    assert status.daily_aqi.compute_time.ToDatetime(tzinfo=UTC) == datetime(2025, 3, 4, tzinfo=PARIS)
    assert status.daily_aqi.dominant_pollutant in {"pm10_ugm3", "pm25_ugm3"}

    [annual] = [m for m in status.annual_means if m.measurand == "pm10_ugm3"]
    assert annual.limit_id == "test/pm10-year" and annual.limit_value == 40.0
    assert annual.mean_value == pytest.approx(80.0) and annual.valid_hour_count == 72
    assert annual.coverage_fraction == pytest.approx(72 / 8760)
    assert not annual.valid and not annual.HasField("exceeds_limit")  # 72 h is no annual mean


def test_exceedance_kpis_say_count_of_allowance_per_station_when_the_count_changes(station, profile):
    hours = [(local(1) + timedelta(hours=h), {"pm10_ugm3": 80.0}) for h in range(72)]
    hours.append((local(4, 0, 30), {"pm10_ugm3": 10.0}))
    _, records = run(station, profile, hours)

    kpis = [(key, message) for spec, key, message in records
            if spec is KPIS and key.startswith("exceedances/test/pm10-24h/")]
    assert [(k.value, k.band, k.band_level) for _, k in kpis] == [
        (0.0, "0 of 2 allowed", 0),  # the first closed period: the tile appears
        (1.0, "1 of 2 allowed", 2),  # warning at 50 % of the allowance
        (2.0, "2 of 2 allowed", 2),
        (3.0, "3 of 2 allowed", 4),  # breached for the year
    ]
    key, kpi = kpis[-1]
    assert key == f"exceedances/test/pm10-24h/{station.id}" and kpi.kpi_id == "exceedances/test/pm10-24h"
    assert kpi.entity.entity_id == station.id and kpi.district.district_id == station.district


def test_nowcast_kpi_is_published_when_the_nowcast_changes(station, profile):
    hours = [(local(1) + timedelta(hours=h), {"pm25_ugm3": 10.0 + 10 * h}) for h in range(5)]
    _, records = run(station, profile, hours)
    nowcasts = [message for spec, key, message in records if spec is KPIS and key == f"aqi-nowcast/{station.id}"]
    # 2 of the 3 newest hours are needed: the first NowCast follows the third reading (2 complete hours).
    assert len(nowcasts) == 3
    assert [k.value for k in nowcasts] == sorted(k.value for k in nowcasts)
    assert nowcasts[-1].kpi_id == "aqi-nowcast" and nowcasts[-1].band
