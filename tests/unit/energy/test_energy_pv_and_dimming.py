"""PV expectation and underperformance; dimming schedules and their commands; district totals."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from madina.alerts import AlertState
from services.energy.domain import (
    DimmingSchedule,
    EnergyKpi,
    GenerationReading,
    PvExpectation,
    ScheduleStep,
    SiteState,
    apply_generation,
    commands_between,
    fold_district,
    level_at,
    validate_schedule,
)
from services.energy.domain.pv import expected_day_kwh

SITE = "brk-pv-mairie"
FIVE = timedelta(minutes=5)


@pytest.fixture(scope="module")
def expectation(config):
    return PvExpectation(config.pv)


def test_clear_sky_expectation_is_zero_at_night_and_larger_in_summer(network, expectation):
    site = network.pv_sites[SITE]
    assert expectation.at(site, datetime(2024, 6, 21, 1, 0, tzinfo=UTC)).expected_kw == 0
    noon = expectation.at(site, datetime(2024, 6, 21, 12, 10, tzinfo=UTC))
    assert 0.6 * site.peak_power_kw < noon.expected_kw <= site.inverter_power_kw
    summer, winter = (expected_day_kwh(site, date(2024, m, 21), expectation) for m in (6, 12))
    assert 4.5 < summer / site.peak_power_kw < 8 and winter < summer


def readings(site, start, count, fraction, expectation, poa=None):
    out = []
    for i in range(count):
        moment = start + i * FIVE
        expected = expectation.at(site, moment).expected_kw
        out.append(GenerationReading(site.id, moment, expected * fraction, None, poa))
    return out


def test_site_well_below_expectation_at_midday_raises_after_six_readings_and_clears(network, expectation, config):
    site = network.pv_sites[SITE]
    start = datetime(2024, 6, 21, 10, 0, tzinfo=UTC)
    result = apply_generation(SiteState.new(site.id), readings(site, start, 5, 0.3, expectation), site,
                              expectation, config)
    assert result.transitions == []
    result = apply_generation(result.state, readings(site, start + 5 * FIVE, 1, 0.3, expectation), site,
                              expectation, config)
    assert [(t.rule_id, t.state) for t in result.transitions] == [("pv-underperformance", AlertState.RAISED)]
    result = apply_generation(result.state, readings(site, start + 6 * FIVE, 5, 0.95, expectation), site,
                              expectation, config)
    assert [t.state for t in result.transitions] == [AlertState.CLEARED]


def test_no_pv_alert_at_night_or_dawn_even_with_zero_output(network, expectation, config, sun):
    site = network.pv_sites[SITE]
    rise = sun.times(site.lat, site.lon, date(2024, 6, 21)).at("sunrise")
    batch = [GenerationReading(site.id, rise - timedelta(hours=2) + i * FIVE, 0.0) for i in range(40)]
    result = apply_generation(SiteState.new(site.id), batch, site, expectation, config)
    assert result.transitions == []
    assert not any(v.qualifies for v in result.verdicts[:24])  # until ~1 h after sunrise


def test_measured_irradiance_lowers_the_expectation_under_clouds(network, expectation, config):
    site = network.pv_sites[SITE]
    start = datetime(2024, 6, 21, 10, 0, tzinfo=UTC)
    clear_poa = expectation.at(site, start).clear_poa_wm2
    cloudy = readings(site, start, 8, 0.3, expectation, poa=clear_poa * 0.3)
    result = apply_generation(SiteState.new(site.id), cloudy, site, expectation, config)
    assert result.transitions == []


def test_generation_kpis_close_per_hour(network, expectation, config):
    site = network.pv_sites[SITE]
    start = datetime(2024, 6, 21, 9, 0, tzinfo=UTC)
    batch = readings(site, start, 30, 0.9, expectation)
    result = apply_generation(SiteState.new(site.id), batch, site, expectation, config)
    ratios = [k.value for k in result.kpis if k.kpi_id == "pv-performance-ratio"]
    assert ratios and all(0.85 < r < 0.95 for r in ratios)
    assert SiteState.from_dict(result.state.to_dict()) == result.state


NIGHT_PLAN = (ScheduleStep("sunset", 100), ScheduleStep("23:00", 50), ScheduleStep("01:00", 30),
              ScheduleStep("sunrise", 0))


def test_schedule_expands_to_one_command_per_circuit_per_step_with_issuer_and_reason(network, sun):
    schedule = DimmingSchedule("night-plan", "berkane", NIGHT_PLAN, "operator:amina", "energy plan 2024",
                               district="centre-ville")
    start = datetime(2024, 1, 15, 12, 0, tzinfo=UTC)
    commands = commands_between(schedule, network, start, start + timedelta(days=1), sun)
    circuits = network.circuits_in("berkane", "centre-ville")
    assert len(commands) == 4 * len(circuits)
    first = commands[0]
    assert first.trigger == "sunset" and first.issuer == "operator:amina" and first.reason == "energy plan 2024"
    # 23:00 local in January (UTC+1) is 22:00 UTC.
    assert any(c.trigger == "23:00" and c.effective_time == datetime(2024, 1, 15, 22, tzinfo=UTC) for c in commands)
    assert commands == commands_between(schedule, network, start, start + timedelta(days=1), sun)
    circuit = circuits[0]
    assert level_at(schedule, circuit, network, datetime(2024, 1, 15, 23, 30, tzinfo=UTC), sun) == 50
    assert level_at(schedule, circuit, network, datetime(2024, 1, 16, 1, 30, tzinfo=UTC), sun) == 30
    assert level_at(schedule, circuit, network, datetime(2024, 1, 16, 12, 0, tzinfo=UTC), sun) == 0


def test_schedule_validation_names_fields(network):
    bad = DimmingSchedule("", "berkane", (ScheduleStep("25:00", 120),), "", "", district="nowhere")
    fields = [e.split(":")[0] for e in validate_schedule(bad, network)]
    assert fields == ["schedule_id", "issuer", "district", "steps[0].trigger", "steps[0].dimming_pct"]


def test_district_totals_sum_circuits_and_ignore_repeats():
    from services.energy.domain import DistrictState

    start = datetime(2024, 1, 15, 22, tzinfo=UTC)

    def kpi(circuit, value):
        return EnergyKpi("lighting-energy-kwh", "circuit", circuit, "berkane", "centre-ville", "hour", start, value)

    state, out = fold_district(DistrictState("berkane/centre-ville"), [kpi("a", 1.0), kpi("b", 2.0)])
    assert [k.value for k in out] == [3.0]
    state, out = fold_district(state, [kpi("a", 1.0)])
    assert [k.value for k in out] == [3.0]
