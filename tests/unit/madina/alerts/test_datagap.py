"""Behaviour of data-gap alerts (madina.alerts.datagap)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from madina.alerts import (
    DATA_GAP_RULE_ID,
    AlertState,
    DataGapPolicy,
    DataGapState,
    Severity,
    check_silence,
    record_observation,
)

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
POLICY = DataGapPolicy(expected_interval=timedelta(seconds=60), gap_factor=3.0)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def heard_at(seconds: int) -> DataGapState:
    state, _ = record_observation(DataGapState.new("environment", "brk-air-centre"), at(seconds))
    return state


def test_source_never_heard_from_is_reported_once_the_limit_has_passed_since_the_first_check():
    state, first = check_silence(DataGapState.new("environment", "brk-air-centre"), at(10_000), POLICY)
    assert first is None and state.watched_since == at(10_000)
    assert check_silence(state, at(10_000) + POLICY.silence_limit, POLICY) == (state, None)

    gap, raised = check_silence(state, at(10_001) + POLICY.silence_limit, POLICY)

    assert raised is not None and raised.state is AlertState.RAISED and gap.episode.active
    assert "since monitoring began" in raised.message


def test_the_first_report_of_a_source_raised_as_never_heard_from_clears_the_gap():
    state, _ = check_silence(DataGapState.new("environment", "brk-air-centre"), at(0), POLICY)
    state, raised = check_silence(state, at(1_000), POLICY)
    assert raised is not None

    state, cleared = record_observation(state, at(1_200))

    assert cleared is not None and cleared.state is AlertState.CLEARED
    assert cleared.observed_value == 1_200.0
    assert DataGapState.from_dict(state.to_dict()) == state


def test_silence_within_limit_raises_nothing():
    state = heard_at(0)
    assert check_silence(state, at(180), POLICY)[1] is None


def test_silence_beyond_limit_raises_data_gap_warning():
    _, transition = check_silence(heard_at(0), at(181), POLICY)
    assert transition is not None
    assert transition.state is AlertState.RAISED
    assert transition.rule_id == DATA_GAP_RULE_ID
    assert transition.severity is Severity.WARNING
    assert transition.observed_value == 181.0 and transition.threshold == 180.0


def test_repeated_checks_during_one_gap_raise_once():
    state, first = check_silence(heard_at(0), at(200), POLICY)
    state, second = check_silence(state, at(4000), POLICY)
    assert first is not None and second is None


def test_data_resuming_clears_gap():
    state, raised = check_silence(heard_at(0), at(600), POLICY)
    state, cleared = record_observation(state, at(660))
    assert raised is not None and cleared is not None
    assert cleared.state is AlertState.CLEARED and cleared.alert_id == raised.alert_id
    assert cleared.revision == 2
    assert not state.episode.active


def test_delayed_observation_clears_at_check_time_to_stay_monotonic():
    state, _ = check_silence(heard_at(0), at(600), POLICY)
    _, cleared = record_observation(state, at(300))
    assert cleared is not None and cleared.event_time == at(600)


def test_straggler_older_than_last_observation_does_not_clear():
    state, _ = check_silence(heard_at(100), at(600), POLICY)
    state, transition = record_observation(state, at(50))
    assert transition is None and state.episode.active


def test_new_gap_after_recovery_gets_new_alert_id():
    state, first = check_silence(heard_at(0), at(600), POLICY)
    state, _ = record_observation(state, at(660))
    _, second = check_silence(state, at(2000), POLICY)
    assert first is not None and second is not None
    assert second.state is AlertState.RAISED and second.alert_id != first.alert_id


def test_explicit_max_silence_overrides_factor():
    policy = DataGapPolicy(expected_interval=timedelta(seconds=60), max_silence=timedelta(minutes=30))
    assert check_silence(heard_at(0), at(1000), policy)[1] is None
    assert check_silence(heard_at(0), at(1801), policy)[1] is not None


def test_gap_state_round_trips_through_dict():
    state, _ = check_silence(heard_at(0), at(600), POLICY)
    assert DataGapState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
