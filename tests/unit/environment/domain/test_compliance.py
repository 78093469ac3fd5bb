"""Coverage (75 % of hourly values), calendar-year exceedance counts, allowance alerts, annual means."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from madina.alerts import AlertState, Severity, alert_id
from services.environment.domain.compliance import (
    ComplianceState,
    allowance_status,
    annual_means,
    close_periods,
)
from services.environment.domain.evaluator import StationState, apply_observations
from services.environment.domain.hourly import HourlyStore, quarters_needed
from services.environment.domain.measurands import Observation, StationKind
from services.environment.domain.profiles import (
    ProfileError,
    Rule,
    load_profiles,
    select_annual_limits,
    select_rules,
)
from services.environment.domain.stations import Station, load_stations

PARIS = ZoneInfo("Europe/Paris")

PROFILE = """
profiles:
  - name: test
    version: 1
    title: Allowance test profile
    source: {standard: Test, document: Test rules, url: https://example.org, year: 2025}
    defaults:
      min_hourly_coverage: 0.75
      allowance_warning_at: 0.5
    annual_limits:
      - {id: pm10-year, measurand: pm10_ugm3, limit: 40}
    rules:
      - id: pm10-24h
        measurand: pm10_ugm3
        window: 24h
        comparison: above
        allowed_exceedances: 2
        levels:
          - {name: limit value, threshold: 50, severity: major}
      - id: no2-1h
        measurand: no2_ugm3
        window: 1h
        comparison: above
        allowed_exceedances: 4
        levels:
          - {name: limit value, threshold: 200, severity: major}
"""


@pytest.fixture(scope="module")
def hourly_station() -> Station:
    """An air station in Paris time reporting hourly means (one sample is a valid hourly value)."""
    base = {s.id: s for s in load_stations()}["cas-air-anfa"]
    return replace(base, timezone="Europe/Paris", reporting_interval=timedelta(hours=1))


@pytest.fixture(scope="module")
def rules(tmp_path_factory) -> tuple[Rule, ...]:
    path: Path = tmp_path_factory.mktemp("profiles") / "test.yaml"
    path.write_text(PROFILE, encoding="utf-8")
    return select_rules(load_profiles([path], include_builtin=False), ["test"])


def local(year, month, day, hour=0, minute=0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=PARIS).astimezone(UTC)


def feed(station, rules, state, times_and_values):
    transitions = []
    for at, values in times_and_values:
        result = apply_observations(state, [Observation(station.id, at, StationKind.AIR, values)], rules, station)
        assert result.rejected == []
        state = result.state
        transitions.extend(result.transitions)
    return state, transitions


# --- coverage -------------------------------------------------------------------------------


def test_quorum_scales_with_the_reporting_interval():
    assert quarters_needed(timedelta(seconds=60)) == 3
    assert quarters_needed(timedelta(minutes=15)) == 3
    assert quarters_needed(timedelta(minutes=30)) == 2
    assert quarters_needed(timedelta(hours=1)) == 1


def test_an_hour_needs_three_of_four_quarters_from_a_minute_station():
    store = HourlyStore()
    start = datetime(2025, 3, 1, 10, tzinfo=UTC)
    for minute in (0, 20):
        store.add(start + timedelta(minutes=minute), {"pm10_ugm3": 30.0})
    index = store.newest
    assert index is not None
    assert store.mean("pm10_ugm3", index, quorum=3) is None
    store.add(start + timedelta(minutes=40), {"pm10_ugm3": 60.0})
    assert store.mean("pm10_ugm3", index, quorum=3) == pytest.approx(40.0)


@pytest.mark.parametrize(("hours_with_data", "judged"), [(17, False), (18, True)])
def test_24h_rule_is_judged_only_with_18_of_24_hourly_values(hourly_station, rules, hours_with_data, judged):
    day = datetime(2025, 3, 1, tzinfo=UTC)
    script = [(day + timedelta(hours=h, minutes=30), {"pm10_ugm3": 100.0}) for h in range(hours_with_data)]
    script.append((day + timedelta(hours=24, minutes=5), {"pm10_ugm3": 100.0}))
    _, transitions = feed(hourly_station, rules, StationState.new(hourly_station.id), script)
    raised = [t for t in transitions if t.rule_id == "test/pm10-24h"]
    assert bool(raised) is judged
    if judged:
        assert raised[0].event_time == day + timedelta(hours=24, minutes=5)


def test_insufficient_window_neither_clears_nor_escalates_an_open_episode(hourly_station, rules):
    day = datetime(2025, 3, 1, tzinfo=UTC)
    script = [(day + timedelta(hours=h, minutes=30), {"pm10_ugm3": 100.0}) for h in range(24)]
    state, transitions = feed(hourly_station, rules, StationState.new(hourly_station.id), script)
    opened = [t.state for t in transitions if t.rule_id == "test/pm10-24h" and t.state is not AlertState.UPDATED]
    assert opened == [AlertState.RAISED]
    # The station goes quiet for 20 hours; clean air afterwards is only 1 hour of 24: no verdict.
    later = [(day + timedelta(hours=44 + h, minutes=30), {"pm10_ugm3": 0.0}) for h in range(3)]
    state, transitions = feed(hourly_station, rules, state, later)
    assert [t for t in transitions if t.rule_id == "test/pm10-24h"] == []
    assert state.rules["test/pm10-24h"].episode.active


def test_daily_mean_with_17_hours_is_insufficient_data_and_not_counted(hourly_station, rules):
    store = HourlyStore()
    day = local(2025, 3, 3)
    for hour in range(17):
        store.add(day + timedelta(hours=hour, minutes=30), {"pm10_ugm3": 90.0})
    state, _ = close_periods(
        ComplianceState(), store, rules, hourly_station, local(2025, 3, 4, 1), timedelta(minutes=10)
    )
    daily = state.daily["pm10_ugm3"]
    assert daily.mean is None and daily.valid_hours == 17 and daily.hours_in_day == 24
    assert state.count("test/pm10-24h", 2025) == 0
    store.add(day + timedelta(hours=17, minutes=30), {"pm10_ugm3": 90.0})
    state, _ = close_periods(
        ComplianceState(), store, rules, hourly_station, local(2025, 3, 4, 1), timedelta(minutes=10)
    )
    assert state.daily["pm10_ugm3"].mean == pytest.approx(90.0)
    assert state.count("test/pm10-24h", 2025) == 1


def test_dst_day_has_23_hours_and_needs_18_of_them(hourly_station, rules):
    store = HourlyStore()
    day = local(2025, 3, 30)  # Europe/Paris springs forward: a 23-hour day
    for hour in range(18):
        store.add(day + timedelta(hours=hour, minutes=30), {"pm10_ugm3": 60.0})
    state, _ = close_periods(ComplianceState(), store, rules, hourly_station, local(2025, 3, 31, 1), timedelta(0))
    assert state.daily["pm10_ugm3"].hours_in_day == 23
    assert state.daily["pm10_ugm3"].mean == pytest.approx(60.0)


# --- exceedances across the year boundary -------------------------------------------------------


def polluted_days(first: datetime, days: int, pm10: float):
    return [(first + timedelta(hours=h, minutes=30), {"pm10_ugm3": pm10}) for h in range(24 * days)]


def test_daily_exceedances_count_per_local_calendar_year_and_alert_on_the_allowance(hourly_station, rules):
    # PM10 80 µg/m³ every hour from 28 Dec to 2 Jan (Paris time), allowance 2, warning at 50 %.
    script = polluted_days(local(2025, 12, 28), 6, 80.0)
    script.append((local(2026, 1, 3, 0, 30), {"pm10_ugm3": 10.0}))
    state, transitions = feed(hourly_station, rules, StationState.new(hourly_station.id), script)
    allowance = [t for t in transitions if "/allowance-" in t.rule_id]
    summary = [(t.rule_id.rsplit("/", 1)[1], t.state, t.severity, t.observed_value, t.event_time) for t in allowance]
    assert summary == [
        ("allowance-warning", AlertState.RAISED, Severity.WARNING, 1.0, local(2025, 12, 29)),
        ("allowance-exceeded", AlertState.RAISED, Severity.MAJOR, 3.0, local(2025, 12, 31)),
        # The first hour of 2026 closes: the year is over, both alerts clear at local midnight.
        ("allowance-exceeded", AlertState.CLEARED, Severity.MAJOR, 4.0, local(2026, 1, 1)),
        ("allowance-warning", AlertState.CLEARED, Severity.WARNING, 4.0, local(2026, 1, 1)),
        # The count starts again: 1 January is the first exceedance of 2026, under a new alert id.
        ("allowance-warning", AlertState.RAISED, Severity.WARNING, 1.0, local(2026, 1, 2)),
    ]
    warning_2025, _, _, cleared_warning, warning_2026 = allowance
    assert warning_2025.alert_id == cleared_warning.alert_id != warning_2026.alert_id
    assert warning_2025.alert_id == alert_id(
        "environment", hourly_station.id, "test/pm10-24h/allowance-warning", datetime(2025, 1, 1, tzinfo=PARIS)
    )
    assert warning_2026.alert_id == alert_id(
        "environment", hourly_station.id, "test/pm10-24h/allowance-warning", datetime(2026, 1, 1, tzinfo=PARIS)
    )
    assert [t.revision for t in allowance] == [1, 1, 2, 2, 1]
    assert warning_2025.details.labels["year"] == "2025" and warning_2025.details.category == "air-quality"
    assert "1 of 2 allowed" in warning_2025.message
    assert state.compliance.count("test/pm10-24h", 2025) == 4
    assert state.compliance.count("test/pm10-24h", 2026) == 2

    [status] = [s for s in allowance_status(state.compliance, rules, hourly_station) if s.period == "day"]
    assert (status.year, status.count, status.allowed, status.remaining, status.breached) == (2026, 2, 2, 0, False)


def test_the_year_is_the_stations_local_year(hourly_station, rules):
    # 31 Dec 23:30 Paris is 22:30 UTC: still 2025. A day of 80 µg/m³ ending there counts for 2025.
    script = polluted_days(local(2025, 12, 31), 1, 80.0)
    script.append((local(2026, 1, 1, 0, 30), {"pm10_ugm3": 10.0}))
    state, _ = feed(hourly_station, rules, StationState.new(hourly_station.id), script)
    assert state.compliance.count("test/pm10-24h", 2025) == 1
    assert state.compliance.count("test/pm10-24h", 2026) == 0


def test_hourly_exceedances_count_once_per_valid_hour(hourly_station, rules):
    start = local(2025, 6, 1, 8)
    script = [(start + timedelta(hours=h, minutes=30), {"no2_ugm3": 250.0 if h < 3 else 50.0}) for h in range(6)]
    state, transitions = feed(hourly_station, rules, StationState.new(hourly_station.id), script)
    # Replaying the same readings again (a crash replay) cannot count an hour twice.
    state, _ = feed(hourly_station, rules, state, script[-1:])
    assert state.compliance.count("test/no2-1h", 2025) == 3
    [status] = [s for s in allowance_status(state.compliance, rules, hourly_station) if s.period == "hour"]
    assert (status.count, status.remaining) == (3, 1)
    # Warning at 50 % of 4 = 2 hours.
    assert [t.observed_value for t in transitions if t.rule_id == "test/no2-1h/allowance-warning"] == [2.0]


def test_annual_mean_with_coverage_and_limit(hourly_station, rules, tmp_path):
    path = tmp_path / "test.yaml"
    path.write_text(PROFILE, encoding="utf-8")
    limits = select_annual_limits(load_profiles([path], include_builtin=False), ["test"])
    start = local(2025, 1, 1)
    script = [(start + timedelta(hours=h, minutes=30), {"pm10_ugm3": 30.0 if h % 2 else 50.0}) for h in range(48)]
    state, _ = feed(hourly_station, rules, StationState.new(hourly_station.id), script)
    [row] = annual_means(state.compliance, hourly_station, limits)
    assert row.measurand == "pm10_ugm3" and row.year == 2025
    # Hours 0-46 are closed (the 48th is still open): 24 at 50 µg/m³ and 23 at 30 µg/m³.
    assert row.mean == pytest.approx((24 * 50 + 23 * 30) / 47)
    assert row.valid_hours == 47 and row.hours_elapsed == 47 and row.hours_in_year == 8760
    assert row.limit == 40 and not row.valid and row.exceeds is None  # 47 h of 8760 is no annual mean


def test_state_with_compliance_round_trips_and_old_state_still_reads(hourly_station, rules):
    script = polluted_days(local(2025, 12, 30), 2, 80.0)
    state, _ = feed(hourly_station, rules, StationState.new(hourly_station.id), script)
    assert state.compliance.alerts  # an open allowance alert is part of the state
    assert StationState.from_dict(state.to_dict()) == state
    old = state.to_dict()
    for key in ("hours", "compliance", "nowcast_aqi"):
        del old[key]
    restored = StationState.from_dict(old)
    assert restored.compliance == ComplianceState() and restored.nowcast_aqi is None


# --- profiles ---------------------------------------------------------------------------------


def test_eu_profiles_carry_allowances_and_annual_limits():
    profiles = load_profiles()
    eu2008 = {r.id: r for r in select_rules(profiles, ["eu-2008-50"])}
    assert eu2008["eu-2008-50/pm10-24h"].allowed_exceedances == 35
    assert eu2008["eu-2008-50/no2-1h"].allowed_exceedances == 18
    assert eu2008["eu-2008-50/so2-1h"].allowed_exceedances == 24
    assert eu2008["eu-2008-50/so2-24h"].allowed_exceedances == 3
    assert eu2008["eu-2008-50/pm10-24h"].min_hourly_coverage == 0.75
    assert eu2008["eu-2008-50/no2-1h"].min_hourly_coverage == 0  # a 1 h window has no hours to count
    eu2024 = {r.id: r for r in select_rules(profiles, ["eu-2024-2881"])}
    assert {rid.split("/")[1]: (r.limit_value, r.allowed_exceedances) for rid, r in eu2024.items()
            if r.allowed_exceedances is not None} == {
        "pm25-24h": (25, 18), "pm10-24h": (45, 18), "no2-1h": (200, 3), "no2-24h": (50, 18),
        "so2-1h": (350, 3), "so2-24h": (50, 18), "co-24h": (4, 18),
    }
    annual = {limit.id: limit.limit for limit in select_annual_limits(profiles, ["eu-2008-50", "eu-2024-2881"])}
    assert annual["eu-2008-50/pm10-year"] == 40 and annual["eu-2024-2881/pm25-year"] == 10
    assert all(limit.min_coverage == 0.9 for limit in select_annual_limits(profiles, ["eu-2024-2881"]))


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ("allowed_exceedances: 3\n        window: 8h", "allowed_exceedances"),
        ("allowed_exceedances: -1", "allowed_exceedances"),
        ("min_hourly_coverage: 0.75\n        window: 1h", "min_hourly_coverage"),
    ],
)
def test_bad_allowance_fields_are_refused(tmp_path, extra, problem):
    body = f"""
profiles:
  - name: bad
    version: 1
    source: {{standard: T, document: T, url: https://example.org, year: 2025}}
    rules:
      - id: r
        measurand: pm10_ugm3
        comparison: above
        {extra}
        levels: [{{threshold: 50, severity: major}}]
"""
    if "window" not in extra:
        body = body.replace("comparison: above", "comparison: above\n        window: 24h")
    path = tmp_path / "bad.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ProfileError, match=problem):
        load_profiles([path], include_builtin=False)
