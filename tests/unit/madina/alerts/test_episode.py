"""Behaviour of the shared episode state machine (madina.alerts.episode)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from madina.alerts import (
    AlertDetails,
    AlertState,
    AlertTransition,
    EpisodePolicy,
    EpisodeState,
    Evaluation,
    Severity,
    alert_id,
    force_clear,
    quiet_step,
    step,
    touch,
)

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
POLICY = EpisodePolicy(clear_after=timedelta(minutes=30), update_interval=timedelta(minutes=15))


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def breach(at: datetime, value: float, severity: Severity = Severity.MAJOR, threshold: float = 50.0):
    return Evaluation(event_time=at, severity=severity, observed_value=value, threshold=threshold)


def quiet(at: datetime, value: float, below_clear_level: bool = True):
    return Evaluation(event_time=at, severity=None, observed_value=value, below_clear_level=below_clear_level)


def fresh() -> EpisodeState:
    return EpisodeState(domain="environment", source_id="cas-air-anfa", rule_id="who-2021/pm25-24h")


def run(evaluations, state=None, policy=POLICY):
    state = state or fresh()
    transitions: list[AlertTransition] = []
    for evaluation in evaluations:
        state, transition = step(state, evaluation, policy)
        if transition is not None:
            transitions.append(transition)
    return state, transitions


def test_first_breach_raises_revision_one_with_deterministic_id():
    state, [raised] = run([breach(T0, 60.0)])
    assert raised.state is AlertState.RAISED
    assert raised.revision == 1
    assert raised.alert_id == alert_id("environment", "cas-air-anfa", "who-2021/pm25-24h", T0)
    assert raised.raise_time == T0 and raised.clear_time is None
    assert state.active


def test_no_breach_while_idle_emits_nothing():
    state, transitions = run([quiet(T0, 3.0), quiet(minutes(1), 4.0)])
    assert transitions == [] and not state.active


def test_breach_while_active_does_not_raise_a_second_alert():
    _, transitions = run([breach(minutes(m), 60.0 + m) for m in range(10)])
    assert [t.state for t in transitions] == [AlertState.RAISED]


def test_continuous_breach_updates_at_most_once_per_update_interval():
    _, transitions = run([breach(minutes(m), 60.0 + m) for m in range(0, 46)])
    assert [t.state for t in transitions] == [
        AlertState.RAISED,
        AlertState.UPDATED,
        AlertState.UPDATED,
        AlertState.UPDATED,
    ]
    assert [t.event_time for t in transitions] == [T0, minutes(15), minutes(30), minutes(45)]


def test_update_requires_minimum_relative_change_when_configured():
    policy = EpisodePolicy(update_interval=timedelta(0), update_min_change=0.1)
    _, transitions = run(
        [breach(T0, 100.0), breach(minutes(1), 105.0), breach(minutes(2), 111.0)], policy=policy
    )
    assert [(t.state, t.observed_value) for t in transitions] == [
        (AlertState.RAISED, 100.0),
        (AlertState.UPDATED, 111.0),
    ]


def test_update_interval_none_disables_updates():
    policy = EpisodePolicy(update_interval=None)
    _, transitions = run([breach(minutes(m), 60.0) for m in range(0, 120, 10)], policy=policy)
    assert len(transitions) == 1


def test_escalation_increments_revision_and_carries_new_threshold():
    _, transitions = run(
        [breach(T0, 40.0, Severity.MINOR, 37.5), breach(minutes(1), 80.0, Severity.CRITICAL, 75.0)]
    )
    escalated = transitions[1]
    assert escalated.state is AlertState.ESCALATED
    assert escalated.revision == 2
    assert escalated.severity is Severity.CRITICAL and escalated.threshold == 75.0
    assert escalated.alert_id == transitions[0].alert_id


def test_severity_never_de_escalates_within_episode():
    _, transitions = run(
        [breach(T0, 80.0, Severity.CRITICAL, 75.0), breach(minutes(20), 40.0, Severity.MINOR, 37.5)]
    )
    updated = transitions[1]
    assert updated.state is AlertState.UPDATED
    assert updated.severity is Severity.CRITICAL and updated.threshold == 75.0
    assert updated.observed_value == 40.0


def test_between_clear_level_and_threshold_does_not_clear():
    _, transitions = run([breach(T0, 60.0)] + [quiet(minutes(m), 48.0, False) for m in range(1, 120)])
    assert [t.state for t in transitions] == [AlertState.RAISED]


def test_clear_only_after_hold_below_clear_level():
    _, transitions = run([breach(T0, 60.0)] + [quiet(minutes(m), 10.0) for m in range(1, 32)])
    assert [t.state for t in transitions] == [AlertState.RAISED, AlertState.CLEARED]
    cleared = transitions[1]
    assert cleared.event_time == minutes(31)  # hold began at minute 1, needs 30 minutes
    assert cleared.clear_time == minutes(31)
    assert cleared.revision == 2
    assert cleared.severity is Severity.MAJOR


def test_zero_clear_after_clears_on_first_evaluation_below_clear_level():
    _, transitions = run([breach(T0, 60.0), quiet(minutes(1), 1.0)], policy=EpisodePolicy())
    assert transitions[-1].state is AlertState.CLEARED


def test_rebreach_during_hold_keeps_episode_and_restarts_hold():
    evaluations = (
        [breach(T0, 60.0)]
        + [quiet(minutes(m), 10.0) for m in range(1, 21)]
        + [breach(minutes(21), 55.0)]
        + [quiet(minutes(m), 10.0) for m in range(22, 52)]
    )
    state, transitions = run(evaluations)
    assert [t.state for t in transitions] == [AlertState.RAISED, AlertState.UPDATED]
    assert len({t.alert_id for t in transitions}) == 1
    assert state.active
    state, [cleared] = run([quiet(minutes(52), 10.0)], state=state)
    assert cleared.state is AlertState.CLEARED and cleared.alert_id == transitions[0].alert_id


def test_value_back_above_clear_level_restarts_hold():
    evaluations = (
        [breach(T0, 60.0)]
        + [quiet(minutes(m), 10.0) for m in range(1, 25)]
        + [quiet(minutes(25), 48.0, below_clear_level=False)]
        + [quiet(minutes(m), 10.0) for m in range(26, 50)]
    )
    _, transitions = run(evaluations)
    assert [t.state for t in transitions] == [AlertState.RAISED]


def test_new_breach_after_clear_is_new_episode_with_new_id():
    _, transitions = run(
        [breach(T0, 60.0), quiet(minutes(1), 1.0), quiet(minutes(40), 1.0), breach(minutes(50), 70.0)]
    )
    first, cleared, second = transitions
    assert cleared.state is AlertState.CLEARED
    assert second.state is AlertState.RAISED and second.revision == 1
    assert second.alert_id != first.alert_id
    assert second.raise_time == minutes(50)


def test_out_of_order_evaluation_neither_clears_nor_reraises():
    state, transitions = run([breach(minutes(10), 60.0), quiet(minutes(60), 1.0)])
    assert [t.state for t in transitions] == [AlertState.RAISED]
    late_quiet, none1 = step(state, quiet(minutes(5), 1.0), EpisodePolicy())
    assert none1 is None and late_quiet == state
    cleared_state, [cleared] = run([quiet(minutes(90), 1.0)], state=state)
    late_breach, none2 = step(cleared_state, breach(minutes(20), 90.0), POLICY)
    assert cleared.state is AlertState.CLEARED
    assert none2 is None and not late_breach.active


def test_force_clear_closes_open_episode_immediately():
    state, _ = run([breach(T0, 60.0)])
    idle, transition = force_clear(state, minutes(1), 60.0, "rule withdrawn")
    assert transition is not None and transition.state is AlertState.CLEARED
    assert not idle.active
    assert force_clear(idle, minutes(2), 0.0, "again") == (idle, None)


def test_state_round_trips_through_dict():
    state, _ = run([breach(T0, 60.0), quiet(minutes(1), 1.0)])
    data = json.loads(json.dumps(state.to_dict()))
    assert EpisodeState.from_dict(data) == state
    assert EpisodeState.from_dict(fresh().to_dict()) == fresh()


def test_transition_round_trips_through_dict():
    details = AlertDetails(category="air-quality", district_id="anfa", labels={"circuit": "C12"})
    _, [raised] = run([Evaluation(T0, Severity.MAJOR, 60.0, 50.0, details=details)])
    data = json.loads(json.dumps(raised.to_dict()))
    assert AlertTransition.from_dict(data) == raised


def test_same_evaluations_give_identical_transitions():
    evaluations = [
        breach(T0, 60.0),
        breach(minutes(16), 90.0, Severity.CRITICAL, 75.0),
        quiet(minutes(60), 1.0),
    ]
    assert run(evaluations)[1] == run(evaluations)[1]


def test_severity_values_match_proto_enum_numbers():
    assert [int(s) for s in Severity] == [1, 2, 3, 4, 5]
    assert [int(s) for s in AlertState] == [1, 2, 3, 4]
    assert Severity.parse("Major") is Severity.MAJOR
    with pytest.raises(ValueError, match="unknown severity"):
        Severity.parse("severe")


def test_naive_event_time_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        Evaluation(event_time=datetime(2025, 1, 1), severity=None, observed_value=0.0)


def test_alert_id_is_stable_and_separates_fields():
    assert alert_id("d", "a-b", "c", T0) == alert_id("d", "a-b", "c", T0.astimezone())
    assert alert_id("d", "a-b", "c", T0) != alert_id("d", "a", "b-c", T0)
    assert len(alert_id("d", "s", "r", T0)) == 32


def test_touch_equals_stepping_through_quiet_evaluations_of_an_idle_episode():
    _, transitions = run([breach(minutes(0), 80.0), quiet(minutes(1), 10.0), quiet(minutes(40), 10.0)])
    cleared_idle, _ = run([breach(minutes(0), 80.0), quiet(minutes(1), 10.0), quiet(minutes(40), 10.0)])
    assert transitions[-1].state is AlertState.CLEARED
    for start in (fresh(), cleared_idle):
        quiet_steps = [quiet(minutes(50 + n), 5.0 + n, below_clear_level=n % 2 == 0) for n in range(5)]
        stepped, emitted = run(quiet_steps, state=start)
        assert emitted == []
        assert touch(start, minutes(54)) == stepped
        assert touch(stepped, minutes(10)) is stepped  # older than the last evaluation: ignored


def test_touch_refuses_an_active_episode():
    state, _ = run([breach(minutes(0), 80.0)])
    with pytest.raises(ValueError, match="active"):
        touch(state, minutes(1))


def test_quiet_step_is_none_exactly_when_step_emits_and_otherwise_gives_steps_state():
    rng = random.Random(7)
    policy = EpisodePolicy(
        clear_after=timedelta(minutes=20), update_interval=timedelta(minutes=15), update_min_change=0.05
    )
    state, emitted = fresh(), 0
    for n in range(3000):
        at = minutes(n - rng.choice([0, 0, 0, 0, 3]))  # a few out-of-order evaluations
        severity = rng.choice([None, None, None, Severity.MINOR, Severity.MAJOR, Severity.CRITICAL])
        value = rng.uniform(0, 100)
        evaluation = Evaluation(
            event_time=at,
            severity=severity,
            observed_value=value,
            threshold=50.0 if severity is not None else None,
            below_clear_level=rng.random() < 0.7,
        )
        quiet = quiet_step(state, at, severity, value, evaluation.below_clear_level, policy)
        state, transition = step(state, evaluation, policy)
        if transition is None:
            assert quiet == state
        else:
            assert quiet is None
            emitted += 1
    assert emitted > 100
