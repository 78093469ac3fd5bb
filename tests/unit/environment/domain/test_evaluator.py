"""The pure station evaluator: batches of observations in, alerts, AQI and rejections out."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from madina.alerts import AlertState, AlertTransition, Severity
from services.environment.domain.evaluator import (
    RejectCode,
    StationState,
    apply_observations,
    check_data_gaps,
)
from services.environment.domain.measurands import Observation, StationKind
from services.environment.domain.profiles import Rule, load_profiles, select_rules
from services.environment.domain.stations import Station, load_stations

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)

# A 1-minute window makes the judged value equal to the latest sample, so the script reads plainly.
SCRIPTED_PROFILE = """
profiles:
  - name: scripted
    version: 1
    title: Test profile
    source: {standard: Test, document: Test rules, url: https://example.org, year: 2025}
    rules:
      - id: pm25-1m
        measurand: pm25_ugm3
        window: 1m
        comparison: above
        clear_level: 30
        clear_after: 30m
        update_interval: null
        levels:
          - {name: limit, threshold: 35, severity: major}
          - {name: alert, threshold: 75, severity: critical}
      - id: pm25-24h-covered
        measurand: pm25_ugm3
        window: 24h
        comparison: above
        min_coverage: 0.75
        levels:
          - {threshold: 1, severity: info}
"""


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


@pytest.fixture(scope="module")
def stations() -> dict[str, Station]:
    return {station.id: station for station in load_stations()}


@pytest.fixture(scope="module")
def builtin_rules() -> tuple[Rule, ...]:
    return select_rules(load_profiles(), ["eu-2008-50", "who-water-2022", "who-noise-2018"])


@pytest.fixture(scope="module")
def scripted_rules(tmp_path_factory) -> tuple[Rule, ...]:
    path: Path = tmp_path_factory.mktemp("profiles") / "scripted.yaml"
    path.write_text(SCRIPTED_PROFILE, encoding="utf-8")
    return select_rules(load_profiles([path]), ["scripted"])


def air(station: Station, at: datetime, **values: float) -> Observation:
    return Observation(station.id, at, StationKind.AIR, values)


def run_script(station, rules, script, state=None):
    """Feed one observation per record, as the processor would, collecting all transitions."""
    state = state or StationState.new(station.id)
    transitions: list[AlertTransition] = []
    for minute, value in script:
        state, emitted, _, rejected = apply_observations(
            state, [air(station, minutes(minute), pm25_ugm3=value)], rules, station
        )
        assert rejected == []
        transitions.extend(t for t in emitted if t.rule_id == "scripted/pm25-1m")
    return state, transitions


def test_scripted_episode_follows_hysteresis(stations, scripted_rules):
    station = stations["cas-air-anfa"]
    script = [
        (0, 20.0),  # quiet
        (1, 40.0),  # above 35 -> RAISED major
        (2, 80.0),  # above 75 -> ESCALATED critical
        (3, 33.0),  # below threshold, above clear level -> nothing
        (4, 33.0),
        (5, 25.0),  # below clear level: hold starts
        (20, 25.0),  # held 15 min < 30 -> nothing
        (35, 24.0),  # held 30 min -> CLEARED
        (40, 50.0),  # re-breach -> new episode
    ]
    _, transitions = run_script(station, scripted_rules, script)
    assert [(t.state, t.severity, t.event_time) for t in transitions] == [
        (AlertState.RAISED, Severity.MAJOR, minutes(1)),
        (AlertState.ESCALATED, Severity.CRITICAL, minutes(2)),
        (AlertState.CLEARED, Severity.CRITICAL, minutes(35)),
        (AlertState.RAISED, Severity.MAJOR, minutes(40)),
    ]
    raised, escalated, cleared, reraised = transitions
    assert raised.alert_id == escalated.alert_id == cleared.alert_id != reraised.alert_id
    assert [t.revision for t in transitions] == [1, 2, 3, 1]
    assert raised.threshold == 35 and escalated.threshold == 75
    assert cleared.clear_time == minutes(35)
    assert raised.details.district_id == "anfa"
    assert raised.details.category == "air-quality"
    assert raised.details.unit == "µg/m³"
    assert "example.org" in raised.details.standard_reference
    assert "above limit" in raised.message


def test_rebreach_during_clear_hold_keeps_the_episode(stations, scripted_rules):
    station = stations["cas-air-anfa"]
    script = [(0, 40.0), (1, 20.0), (20, 20.0), (21, 36.0), (22, 20.0), (45, 20.0), (52, 20.0)]
    _, transitions = run_script(station, scripted_rules, script)
    assert [t.state for t in transitions] == [AlertState.RAISED, AlertState.CLEARED]
    assert transitions[1].event_time == minutes(52)


def test_min_coverage_keeps_short_data_from_breaching(stations, scripted_rules):
    station = stations["cas-air-anfa"]
    state = StationState.new(station.id)
    batch = [air(station, minutes(m), pm25_ugm3=50.0) for m in range(120)]
    _, transitions, _, _ = apply_observations(state, batch, scripted_rules, station)
    assert all(t.rule_id != "scripted/pm25-24h-covered" for t in transitions)


def test_sustained_rule_waits_for_three_consecutive_hours(stations, builtin_rules):
    station = stations["cas-air-sidi-bernoussi"]
    state = StationState.new(station.id)
    alerts = []
    for minute in range(0, 4 * 60):
        state, transitions, _, _ = apply_observations(
            state, [air(station, minutes(minute), no2_ugm3=450.0)], builtin_rules, station
        )
        alerts += [(minute, t) for t in transitions if t.rule_id == "eu-2008-50/no2-alert"]
    (minute, raised), *updates = alerts
    assert all(t.state is AlertState.UPDATED for _, t in updates)
    assert raised.state is AlertState.RAISED and raised.severity is Severity.CRITICAL
    assert minute == 120  # 1 h mean above 400 continuously from minute 0 to 120: three hours of data
    assert "for 2h" in raised.message


def test_ecoli_in_a_single_sample_is_critical(stations, builtin_rules):
    station = stations["brk-water-hay-hassani"]
    sample = Observation(station.id, T0, StationKind.WATER, {"ph": 7.4, "ecoli_cfu_100ml": 2.0})
    _, transitions, aqi, _ = apply_observations(
        StationState.new(station.id), [sample], builtin_rules, station
    )
    [alert] = transitions
    assert alert.rule_id == "who-water-2022/ecoli" and alert.severity is Severity.CRITICAL
    assert alert.details.category == "water-quality"
    assert aqi is None


def test_noise_rule_uses_energetic_hourly_mean(stations, builtin_rules):
    station = stations["brk-noise-al-massira"]
    batch = [
        Observation(station.id, minutes(m), StationKind.NOISE, {"laeq_db": 80.0 if m % 2 else 40.0})
        for m in range(10)
    ]
    _, transitions, _, _ = apply_observations(StationState.new(station.id), batch, builtin_rules, station)
    assert transitions and transitions[0].rule_id == "who-noise-2018/laeq-1h"
    # ~77 dB energetic mean: above the 70 dB level; an arithmetic 60 dB would not alert at all.
    assert transitions[-1].severity is Severity.MINOR
    assert transitions[-1].observed_value == pytest.approx(76.99, abs=0.01)


def test_aqi_is_returned_for_air_batches(stations, builtin_rules):
    station = stations["cas-air-ain-sebaa"]
    batch = [air(station, minutes(m), pm25_ugm3=40.0, pm10_ugm3=60.0, o3_ugm3=80.0) for m in range(5)]
    state, _, aqi, _ = apply_observations(StationState.new(station.id), batch, builtin_rules, station)
    assert aqi is not None and aqi.dominant_pollutant == "pm25_ugm3" and aqi.aqi == 112
    assert state.last_aqi == aqi


def test_late_invalid_and_foreign_observations_are_rejected_with_codes(stations, builtin_rules):
    station = stations["cas-air-anfa"]
    state, *_ = apply_observations(
        StationState.new(station.id), [air(station, minutes(60), pm25_ugm3=10.0)], builtin_rules, station
    )
    late = air(station, minutes(45), pm25_ugm3=10.0)
    bad = air(station, minutes(61), pm25_ugm3=-5.0)
    foreign = Observation("cas-air-maarif", minutes(61), StationKind.AIR, {"pm25_ugm3": 10.0})
    noise = Observation(station.id, minutes(61), StationKind.NOISE, {"laeq_db": 50.0})
    ok = air(station, minutes(55), pm25_ugm3=12.0)
    _, _, _, rejected = apply_observations(state, [late, bad, foreign, noise, ok], builtin_rules, station)
    assert [(r.observation, r.code) for r in rejected] == [
        (bad, RejectCode.INVALID),
        (foreign, RejectCode.WRONG_STATION),
        (noise, RejectCode.INVALID),
        (late, RejectCode.LATE),
    ]
    assert "pm25_ugm3" in next(r.detail for r in rejected if r.observation is bad)


def test_input_state_is_not_modified(stations, scripted_rules):
    station = stations["cas-air-anfa"]
    state = StationState.new(station.id)
    before = state.to_dict()
    apply_observations(state, [air(station, T0, pm25_ugm3=90.0)], scripted_rules, station)
    assert state.to_dict() == before


def _mixed_batch(station: Station) -> list[Observation]:
    rng = random.Random(7)
    return [
        air(station, minutes(m), pm25_ugm3=rng.uniform(5, 120), no2_ugm3=rng.uniform(20, 500), so2_ugm3=10.0)
        for m in range(0, 240, 3)
    ]


def test_same_input_twice_gives_identical_outputs(stations, builtin_rules, scripted_rules):
    station = stations["cas-air-sidi-bernoussi"]
    rules = builtin_rules + scripted_rules
    first = apply_observations(StationState.new(station.id), _mixed_batch(station), rules, station)
    second = apply_observations(StationState.new(station.id), _mixed_batch(station), rules, station)
    assert first.transitions == second.transitions and first.transitions
    assert first.state.to_dict() == second.state.to_dict()
    assert first.aqi == second.aqi


def test_order_inside_a_batch_does_not_matter(stations, scripted_rules):
    station = stations["cas-air-sidi-bernoussi"]
    batch = _mixed_batch(station)
    shuffled = batch[:]
    random.Random(1).shuffle(shuffled)
    a = apply_observations(StationState.new(station.id), batch, scripted_rules, station)
    b = apply_observations(StationState.new(station.id), shuffled, scripted_rules, station)
    assert a.transitions == b.transitions


def test_one_batch_equals_many_single_record_batches(stations, builtin_rules, scripted_rules):
    station = stations["cas-air-sidi-bernoussi"]
    rules = builtin_rules + scripted_rules
    batch = _mixed_batch(station)
    whole = apply_observations(StationState.new(station.id), batch, rules, station)
    state, transitions = StationState.new(station.id), []
    for observation in batch:
        state, emitted, _, _ = apply_observations(state, [observation], rules, station)
        transitions += emitted
    assert transitions == whole.transitions


def test_state_round_trip_through_json_continues_identically(stations, builtin_rules, scripted_rules):
    station = stations["cas-air-sidi-bernoussi"]
    rules = builtin_rules + scripted_rules
    batch = _mixed_batch(station)
    state, *_ = apply_observations(StationState.new(station.id), batch[:40], rules, station)
    restored = StationState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert restored == state
    direct = apply_observations(state, batch[40:], rules, station)
    via_json = apply_observations(restored, batch[40:], rules, station)
    assert direct.transitions == via_json.transitions
    assert direct.state == via_json.state


def test_state_stays_small_after_days_of_data(stations, builtin_rules):
    station = stations["cas-air-ain-sebaa"]
    values = {
        "pm25_ugm3": 20.0,
        "pm10_ugm3": 40.0,
        "no2_ugm3": 30.0,
        "o3_ugm3": 60.0,
        "so2_ugm3": 5.0,
        "co_mgm3": 0.4,
    }
    batch = [Observation(station.id, minutes(m), StationKind.AIR, values) for m in range(0, 2 * 24 * 60)]
    state, *_ = apply_observations(StationState.new(station.id), batch, builtin_rules, station)
    assert len(json.dumps(state.to_dict())) < 40_000


def test_data_gap_raises_on_silence_and_clears_when_data_returns(stations, builtin_rules):
    station = stations["brk-air-centre"]
    state, *_ = apply_observations(
        StationState.new(station.id), [air(station, T0, pm25_ugm3=5.0)], builtin_rules, station
    )
    state, nothing = check_data_gaps(state, minutes(3), station)
    assert nothing is None
    state, raised = check_data_gaps(state, minutes(10), station)
    assert raised is not None and raised.state is AlertState.RAISED
    assert raised.rule_id == "data-gap" and raised.details.category == "data-gap"
    state, again = check_data_gaps(state, minutes(20), station)
    assert again is None
    state, transitions, _, _ = apply_observations(
        state, [air(station, minutes(21), pm25_ugm3=5.0)], builtin_rules, station
    )
    [cleared] = transitions
    assert cleared.state is AlertState.CLEARED and cleared.alert_id == raised.alert_id


def test_withdrawn_rule_clears_its_open_alert(stations, scripted_rules):
    station = stations["cas-air-anfa"]
    state, [raised], _, _ = apply_observations(
        StationState.new(station.id), [air(station, T0, pm25_ugm3=50.0)], scripted_rules[:1], station
    )
    _, transitions, _, _ = apply_observations(state, [air(station, minutes(1), pm25_ugm3=50.0)], (), station)
    [cleared] = transitions
    assert cleared.state is AlertState.CLEARED and cleared.alert_id == raised.alert_id
    assert "withdrawn" in cleared.message


def test_json_round_trip_between_every_batch_changes_no_output_on_a_long_random_stream(
    stations, builtin_rules, scripted_rules
):
    """A crash-replay restores state from JSON before each record; nothing may differ, to the bit."""
    station = stations["cas-air-ain-sebaa"]
    rules = builtin_rules + scripted_rules
    rng = random.Random(20261122)
    batches: list[list[Observation]] = []
    moment = T0
    for batch_number in range(300):
        batch = []
        for _ in range(rng.randint(1, 12)):
            moment += timedelta(seconds=rng.choice([5, 30, 60, 60, 60, 240, 3 * 3600]))
            late = timedelta(seconds=rng.randint(0, 1200)) if rng.random() < 0.15 else timedelta(0)
            scale = 6.0 if batch_number % 50 > 35 else 1.0  # bursts breach, quiet spells clear
            values = {m: rng.uniform(0, 60) * scale for m in station.measurands if rng.random() < 0.8}
            if values:
                batch.append(air(station, moment - late, **values))
        batches.append(batch)

    def run(round_trip: bool) -> tuple[list, dict]:
        state, outputs = StationState.new(station.id), []
        for batch in batches:
            if round_trip:
                state = StationState.from_dict(json.loads(json.dumps(state.to_dict())))
            state, transitions, aqi, rejected = apply_observations(state, batch, rules, station)
            outputs.append((transitions, aqi, [(r.observation, r.code) for r in rejected]))
        return outputs, state.to_dict()

    direct, direct_state = run(round_trip=False)
    restored, restored_state = run(round_trip=True)
    assert any(transitions for transitions, _, _ in direct)
    assert any(rejected for _, _, rejected in direct)
    assert direct == restored
    assert direct_state == restored_state
