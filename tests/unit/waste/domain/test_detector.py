"""The waste step function: every rule, emptying as a collection, data gaps, JSON state, replay."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from madina.alerts import AlertState, Severity
from services.waste.domain.containers import Container, Stream
from services.waste.domain.detector import (
    RULE_BATTERY,
    RULE_FIRE,
    RULE_FULL,
    RULE_LID,
    RULE_TIPPED,
    ContainerState,
    RejectCode,
    StepResult,
    apply_readings,
    check_data_gap,
)
from services.waste.domain.readings import Reading, validate_reading

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
BIN = Container("brk-centre-ville-h001", "berkane", "centre-ville", 34.92, -2.32, Stream.HOUSEHOLD, 1100,
                timedelta(hours=1))


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def reading(minutes: float, fill: float = 0.3, **channels: object) -> Reading:
    return Reading(BIN.id, at(minutes), fill, **channels)  # type: ignore[arg-type]


def run(readings: list[Reading], state: ContainerState | None = None) -> StepResult:
    return apply_readings(state or ContainerState.new(BIN.id), readings, BIN)


def rules_of(result: StepResult, rule: str) -> list[tuple[AlertState, Severity]]:
    return [(t.state, t.severity) for t in result.transitions if t.rule_id == rule]


# Validation


def test_valid_reading_has_no_problems() -> None:
    assert validate_reading(reading(0, 0.5, temperature_c=21.0, tilt_deg=3.0, lid_open=False,
                                    battery_percent=80.0)) == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"fill_ratio": 1.2}, "fill_ratio"),
        ({"fill_ratio": float("nan")}, "fill_ratio"),
        ({"temperature_c": 400.0}, "temperature_c"),
        ({"tilt_deg": -5.0}, "tilt_deg"),
        ({"battery_percent": 101.0}, "battery_percent"),
        ({"container_id": ""}, "container_id"),
        ({"observe_time": datetime(2026, 3, 2)}, "observe_time"),
    ],
)
def test_each_invalid_field_is_named(changes: dict[str, object], field: str) -> None:
    base = {"container_id": BIN.id, "observe_time": T0, "fill_ratio": 0.5}
    problems = validate_reading(Reading(**{**base, **changes}))  # type: ignore[arg-type]
    assert len(problems) == 1 and problems[0].startswith(f"{field}: ")


def test_readings_far_from_the_clock_are_refused() -> None:
    assert validate_reading(reading(0), now=T0 - timedelta(hours=1))[0].startswith("observe_time: ")
    assert validate_reading(reading(0), now=T0 + timedelta(days=8))[0].startswith("observe_time: ")
    result = apply_readings(ContainerState.new(BIN.id), [reading(0)], BIN, now=T0 + timedelta(days=8))
    assert [r.code for r in result.rejected] == [RejectCode.OUT_OF_BOUNDS]


def test_invalid_foreign_and_stale_readings_are_rejected_with_codes() -> None:
    first = run([reading(60)])
    result = run([reading(0), reading(90, 1.5), Reading("other", at(100), 0.2)], first.state)
    assert sorted(r.code for r in result.rejected) == [RejectCode.INVALID, RejectCode.STALE, RejectCode.WRONG_CONTAINER]
    assert result.status is None and result.state == first.state


# Full, with hysteresis and emptying


def test_full_raises_warning_at_80_and_escalates_to_major_at_95() -> None:
    result = run([reading(0, 0.81), reading(60, 0.82), reading(120, 0.96), reading(180, 0.97)])
    assert rules_of(result, RULE_FULL) == [
        (AlertState.RAISED, Severity.WARNING), (AlertState.ESCALATED, Severity.MAJOR),
    ]


def test_a_single_spike_does_not_raise_full() -> None:
    result = run([reading(0, 0.5), reading(60, 0.52), reading(120, 0.99), reading(180, 0.55)])
    assert rules_of(result, RULE_FULL) == []


def test_a_sloshing_sensor_around_the_threshold_does_not_flap() -> None:
    rng = random.Random(3)
    readings = [reading(15 * k, 0.8 + rng.uniform(-0.07, 0.07)) for k in range(40)]
    result = run(readings)
    assert [s for s, _ in rules_of(result, RULE_FULL)] == [AlertState.RAISED]


def test_full_clears_without_emptying_only_after_the_hold_below_70() -> None:
    raised = run([reading(0, 0.85), reading(10, 0.85), reading(20, 0.85)])
    # The judged fill (median of 3) is first at/below 70 % at minute 40; the hold runs 30 min from there.
    settling = run([reading(30, 0.65), reading(40, 0.65), reading(50, 0.66), reading(69, 0.66)], raised.state)
    assert rules_of(settling, RULE_FULL) == []
    cleared = run([reading(70, 0.66)], settling.state)
    assert rules_of(cleared, RULE_FULL) == [(AlertState.CLEARED, Severity.WARNING)]


def test_emptying_clears_full_at_once_and_is_recorded_as_a_collection() -> None:
    raised = run([reading(0, 0.9), reading(60, 0.92), reading(120, 0.93)])
    emptied = run([reading(180, 0.03)], raised.state)
    assert rules_of(emptied, RULE_FULL) == [(AlertState.CLEARED, Severity.WARNING)]
    (collection,) = emptied.collections
    assert collection.fill_ratio_before == pytest.approx(0.92)
    assert collection.collected_l == pytest.approx((0.92 - 0.03) * 1100, abs=0.1)
    assert (collection.previous_reading_time, collection.detect_time) == (at(120), at(180))
    assert emptied.state.last_emptied_time == at(180)
    assert emptied.state.fill_history == ((at(180), 0.03),)


def test_a_partial_emptying_of_a_low_container_still_counts_but_noise_does_not() -> None:
    assert len(run([reading(0, 0.3), reading(60, 0.31), reading(120, 0.05)]).collections) == 1
    assert run([reading(0, 0.3), reading(60, 0.31), reading(120, 0.22)]).collections == []


def test_fill_rate_restarts_after_emptying() -> None:
    filling = [reading(60 * h, 0.1 + 0.05 * h) for h in range(10)]  # 0.05/h up to 0.55
    refill = [reading(600 + 60 * h, 0.02 + 0.01 * h) for h in range(6)]  # emptied, then 0.01/h
    result = run(filling + refill)
    assert len(result.collections) == 1
    status = result.status
    assert status is not None and status.fill_rate_per_hour == pytest.approx(0.01, abs=1e-9)
    assert status.predicted_full_time == at(600 + 300) + timedelta(hours=(0.8 - 0.07) / 0.01)


# Fire


def test_temperature_over_60_is_critical_fire_risk() -> None:
    result = run([reading(0, temperature_c=25.0), reading(60, temperature_c=61.0)])
    assert rules_of(result, RULE_FIRE) == [(AlertState.RAISED, Severity.CRITICAL)]


def test_a_fast_rise_below_60_is_critical_fire_risk() -> None:
    # 22 -> 38 °C in 20 min: 16 °C at 0.8 °C/min.
    result = run([reading(0, temperature_c=22.0), reading(20, temperature_c=38.0)])
    (transition,) = [t for t in result.transitions if t.rule_id == RULE_FIRE]
    assert transition.severity is Severity.CRITICAL and transition.threshold == 32.0
    assert "0.80 °C/min" in transition.message


def test_sun_warming_is_not_fire_risk() -> None:
    # 20 -> 45 °C over 3 h: 0.14 °C/min.
    result = run([reading(15 * k, temperature_c=20.0 + 25 * k / 12) for k in range(13)])
    assert rules_of(result, RULE_FIRE) == []


def test_fire_risk_clears_after_30_min_at_or_below_50() -> None:
    raised = run([reading(0, temperature_c=70.0)])
    cooling = run([reading(10, temperature_c=48.0), reading(30, temperature_c=40.0)], raised.state)
    assert rules_of(cooling, RULE_FIRE) == []
    cleared = run([reading(41, temperature_c=35.0)], cooling.state)
    assert rules_of(cleared, RULE_FIRE) == [(AlertState.CLEARED, Severity.CRITICAL)]


# Tipped over, lid open, battery


def test_tipped_over_needs_15_minutes_so_an_emptying_lift_does_not_raise() -> None:
    lift = run([reading(0, tilt_deg=2.0), reading(1, tilt_deg=120.0), reading(3, tilt_deg=1.0)])
    assert rules_of(lift, RULE_TIPPED) == []
    tipped = run([reading(0, tilt_deg=90.0), reading(10, tilt_deg=90.0), reading(16, tilt_deg=88.0)])
    assert rules_of(tipped, RULE_TIPPED) == [(AlertState.RAISED, Severity.MAJOR)]
    upright = run([reading(30, tilt_deg=2.0)], tipped.state)
    assert rules_of(upright, RULE_TIPPED) == [(AlertState.CLEARED, Severity.MAJOR)]


def test_lid_open_for_30_minutes_is_minor_and_clears_when_shut() -> None:
    brief = run([reading(0, lid_open=True), reading(5, lid_open=False), reading(40, lid_open=True)])
    assert rules_of(brief, RULE_LID) == []
    left = run([reading(60, lid_open=True), reading(75, lid_open=True)], brief.state)
    assert rules_of(left, RULE_LID) == [(AlertState.RAISED, Severity.MINOR)]
    assert left.transitions[-1].observed_value == 35.0
    shut = run([reading(80, lid_open=False)], left.state)
    assert rules_of(shut, RULE_LID) == [(AlertState.CLEARED, Severity.MINOR)]


def test_low_battery_warns_below_20_escalates_below_10_and_clears_at_25() -> None:
    result = run([reading(0, battery_percent=19.0), reading(60, battery_percent=9.0),
                  reading(120, battery_percent=22.0), reading(180, battery_percent=100.0)])
    assert rules_of(result, RULE_BATTERY) == [
        (AlertState.RAISED, Severity.WARNING), (AlertState.ESCALATED, Severity.MINOR),
        (AlertState.CLEARED, Severity.MINOR),
    ]


# Data gap


def test_a_silent_sensor_raises_data_gap_and_its_next_reading_clears_it() -> None:
    state = run([reading(0)]).state
    state, quiet = check_data_gap(state, at(180), BIN)
    assert quiet is None
    state, gap = check_data_gap(state, at(181), BIN)
    assert gap is not None and gap.rule_id == "data-gap" and gap.state is AlertState.RAISED
    back = run([reading(200)], state)
    assert [(t.rule_id, t.state) for t in back.transitions] == [("data-gap", AlertState.CLEARED)]


def test_a_sensor_never_heard_from_raises_data_gap_after_three_intervals() -> None:
    state, first = check_data_gap(ContainerState.new(BIN.id), T0, BIN)
    assert first is None
    _, gap = check_data_gap(state, at(181), BIN)
    assert gap is not None and "since monitoring began" in gap.message


# State and determinism


def busy_day() -> list[Reading]:
    rng = random.Random(7)
    readings = []
    fill = 0.1
    for k in range(96):  # every 15 min
        fill = 0.04 if k == 60 else min(1.0, fill + 0.015)
        readings.append(reading(15 * k, min(1.0, max(0.0, fill + rng.gauss(0, 0.02))),
                                temperature_c=24.0 + (50.0 if 70 <= k < 74 else 0.0),
                                tilt_deg=2.0, lid_open=k in range(20, 26), battery_percent=30.0 - k * 0.2))
    return readings


def test_state_round_trips_through_json() -> None:
    result = run(busy_day())
    text = json.dumps(result.state.to_dict(), sort_keys=True)
    assert ContainerState.from_dict(json.loads(text)) == result.state


def earlier_form(state: ContainerState) -> dict[str, object]:
    """The state as ``to_dict`` wrote it before the compact form: ISO times, whole episode dicts."""
    from madina.alerts.timeutil import time_to_text

    last = state.last_reading
    assert last is not None
    return {
        "container_id": state.container_id,
        "data_gap": state.data_gap.to_dict(),
        "episodes": {rule: episode.to_dict() for rule, episode in state.episodes.items()},
        "fill_history": [[time_to_text(t), v] for t, v in state.fill_history],
        "recent_temperatures": [[time_to_text(t), v] for t, v in state.recent_temperatures],
        "last_reading": {"observe_time": time_to_text(last.observe_time), "fill_ratio": last.fill_ratio,
                         "temperature_c": last.temperature_c, "tilt_deg": last.tilt_deg,
                         "lid_open": last.lid_open, "battery_percent": last.battery_percent},
        "last_emptied_time": time_to_text(state.last_emptied_time),
        "tilted_since": time_to_text(state.tilted_since),
        "lid_open_since": time_to_text(state.lid_open_since),
    }


def test_state_written_in_the_earlier_form_still_loads_and_the_compact_form_is_under_half_its_size() -> None:
    readings = busy_day()
    state = run(readings[:75]).state  # the fire episode open, lid closed again
    assert {rule for rule, episode in state.episodes.items() if episode.active} >= {RULE_FIRE}
    state = check_data_gap(state, state.last_reading.observe_time + timedelta(hours=4), BIN)[0]  # type: ignore[union-attr]
    assert state.data_gap.episode.active
    compact = state.to_dict()
    assert all(isinstance(t, int) for t, _ in compact["fill_history"])
    assert ContainerState.from_dict(json.loads(json.dumps(earlier_form(state)))) == state
    assert ContainerState.from_dict(json.loads(json.dumps(compact))) == state
    assert len(json.dumps(compact)) < 0.5 * len(json.dumps(earlier_form(state)))
    # And a state loaded from the earlier form goes on exactly as the one that never left memory.
    later = run(readings[75:], state)
    assert run(readings[75:], ContainerState.from_dict(earlier_form(state))) == later


def test_one_batch_gives_what_many_small_batches_give() -> None:
    readings = busy_day()
    whole = run(readings)
    state = ContainerState.new(BIN.id)
    transitions, collections = [], []
    for index in range(0, len(readings), 5):
        part = run(list(reversed(readings[index:index + 5])), ContainerState.from_dict(state.to_dict()))
        state = part.state
        transitions += part.transitions
        collections += part.collections
    assert state == whole.state
    assert transitions == whole.transitions and collections == whole.collections
    assert {t.rule_id for t in whole.transitions} >= {RULE_FULL, RULE_FIRE, RULE_LID, RULE_BATTERY}


def test_noisy_cycles_give_one_collection_per_emptying_and_the_current_cycle_rate() -> None:
    rng = random.Random(11)
    readings, fill, minute = [], 0.05, 0
    rates = [0.03, 0.05, 0.02]  # per hour, one per filling cycle
    emptyings = 0
    for cycle, rate in enumerate(rates):
        for _ in range(30 if cycle < len(rates) - 1 else 20):
            minute += 60 + rng.randint(-15, 15)
            fill = min(1.0, fill + rate * (1 + rng.uniform(-0.3, 0.3)))
            noisy = min(1.0, max(0.0, fill + rng.gauss(0, 0.025)))
            if rng.random() < 0.08:
                noisy = rng.choice([0.98, 1.0])  # a bag across the beam
            readings.append(reading(minute, noisy))
        if cycle < len(rates) - 1:
            minute += 60
            fill = 0.03
            readings.append(reading(minute, fill))
            emptyings += 1
    result = run(readings)
    assert len(result.collections) == emptyings
    assert result.status is not None and result.status.fill_rate_per_hour == pytest.approx(0.02, abs=0.005)
