"""Folding the alert revisions read back from alerts.v1 into episodes, and counting a comparison."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from madina.alerts import AlertState, AlertTransition, Severity
from services.environment.domain.evaluator import StationState, apply_observations
from services.environment.domain.profiles import load_profiles, select_rules
from services.environment.domain.raised import AlertRevision, raised_episodes
from services.environment.domain.replay import compare_runs, per_station_rule, replay
from services.environment.domain.stations import load_stations
from tests.unit.environment.domain.test_replay import MONDAY, PROFILES, week_of_observations

STATION = "cas-air-anfa"
WEEK_END = MONDAY + timedelta(days=7)


def revision_of(transition: AlertTransition) -> AlertRevision:
    return AlertRevision(
        alert_id=transition.alert_id, revision=transition.revision, domain=transition.domain,
        category=transition.details.category, station_id=transition.source_id, rule_id=transition.rule_id,
        state=transition.state, severity=transition.severity, raise_time=transition.raise_time,
        clear_time=transition.clear_time, event_time=transition.event_time,
    )


@pytest.fixture(scope="module")
def strict_run(tmp_path_factory):
    """What the processor publishes for the test week under ``city@1``, and the replay of the same week."""
    path: Path = tmp_path_factory.mktemp("profiles") / "city.yaml"
    path.write_text(PROFILES, encoding="utf-8")
    rules = select_rules(load_profiles([path], include_builtin=False), ["city@1"])
    station = {s.id: s for s in load_stations()}[STATION]
    observations = week_of_observations(STATION)
    published = apply_observations(StationState.new(STATION), observations, rules, station).transitions
    return [revision_of(t) for t in published], replay(observations, rules, {STATION: station})


def episode(revisions: list[AlertRevision], start: datetime = MONDAY, end: datetime = WEEK_END, **kwargs):
    [only] = raised_episodes(revisions, start, end, **kwargs)
    return only


def test_published_revisions_fold_into_the_episodes_a_replay_of_the_same_profile_finds(strict_run):
    revisions, replayed = strict_run
    assert len(revisions) > len(replayed.episodes) == 3  # updates and clears besides the raises

    raised = raised_episodes(revisions, MONDAY, WEEK_END, open_until=replayed.end)

    assert raised == replayed.episodes
    assert compare_runs(raised, replayed).identical


def test_duplicated_and_shuffled_revisions_fold_alike(strict_run):
    revisions, replayed = strict_run
    delivered = revisions + revisions[::2]  # at least once
    random.Random(16).shuffle(delivered)
    assert raised_episodes(delivered, MONDAY, WEEK_END, open_until=replayed.end) == replayed.episodes


def test_an_episode_whose_raise_left_the_topic_keeps_its_raise_time_and_peak(strict_run):
    revisions, replayed = strict_run
    first = replayed.episodes[0]
    later = [r for r in revisions if not (r.alert_id == first.alert_id and r.state is AlertState.RAISED)]
    assert raised_episodes(later, MONDAY, WEEK_END, open_until=replayed.end) == replayed.episodes


def test_only_episodes_active_in_the_period_are_kept(strict_run):
    revisions, replayed = strict_run
    monday, wednesday, friday = replayed.episodes
    assert monday.cleared_at is not None
    after_monday = monday.cleared_at
    assert [e.alert_id for e in raised_episodes(revisions, after_monday, WEEK_END)] == [
        wednesday.alert_id, friday.alert_id]
    assert [e.alert_id for e in raised_episodes(revisions, MONDAY, friday.raised_at)] == [
        monday.alert_id, wednesday.alert_id]
    inside_monday = monday.raised_at + timedelta(minutes=30)
    assert episode(revisions, inside_monday, inside_monday + timedelta(minutes=1)).alert_id == monday.alert_id


def test_an_episode_cleared_after_the_period_is_reported_open_until_the_replay_end(strict_run):
    revisions, replayed = strict_run
    monday = replayed.episodes[0]
    end = monday.raised_at + timedelta(hours=1)
    replay_end = end - timedelta(minutes=10)

    clipped = episode(revisions, MONDAY, end, open_until=replay_end)

    assert clipped.cleared_at is None
    assert clipped.duration == replay_end - monday.raised_at
    assert episode(revisions, MONDAY, end).duration == timedelta(hours=1)  # no replay end: the period's


def test_data_gap_and_other_domains_alerts_are_left_out():
    at = datetime(2025, 3, 3, 12, tzinfo=UTC)
    threshold = AlertRevision("a1", 1, "environment", "air-quality", STATION, "city/pm25-1h", AlertState.RAISED,
                              Severity.MAJOR, at, None, at)
    gap = replace(threshold, alert_id="a2", category="data-gap", rule_id="data-gap")
    lights = replace(threshold, alert_id="a3", domain="energy", rule_id="lamp-out")

    assert [e.alert_id for e in raised_episodes([threshold, gap, lights], MONDAY, WEEK_END)] == ["a1"]


def test_peak_is_the_highest_severity_of_any_revision_and_clear_time_comes_from_the_clear():
    at = datetime(2025, 3, 3, 12, tzinfo=UTC)
    raised = AlertRevision("a1", 1, "environment", "air-quality", STATION, "city/pm25-1h", AlertState.RAISED,
                           Severity.MAJOR, at, None, at)
    escalated = replace(raised, revision=2, state=AlertState.ESCALATED, severity=Severity.CRITICAL,
                        event_time=at + timedelta(hours=1))
    cleared = replace(raised, revision=3, state=AlertState.CLEARED, severity=Severity.CRITICAL,
                      clear_time=at + timedelta(hours=2), event_time=at + timedelta(hours=3))

    folded = episode([cleared, raised, escalated])

    assert folded.peak_severity is Severity.CRITICAL
    assert folded.cleared_at == at + timedelta(hours=2) and folded.duration == timedelta(hours=2)


def test_counts_per_station_and_rule_add_up_the_comparison(strict_run):
    _, replayed = strict_run
    _, wednesday, friday = replayed.episodes
    moved = replace(wednesday, alert_id="w", raised_at=wednesday.raised_at + timedelta(minutes=10),
                    duration=wednesday.duration - timedelta(minutes=10))
    elsewhere = replace(friday, alert_id="x", station_id="cas-air-other")
    proposal = (moved, friday, elsewhere)

    counts = per_station_rule(compare_runs(replayed, proposal), rule_key=lambda r: r.split("/", 1)[1])

    assert [(c.station_id, c.rule, c.first, c.second, c.unchanged, c.changed, c.only_in_first, c.only_in_second)
            for c in counts] == [
        ("cas-air-anfa", "pm25-1h", 3, 2, 1, 1, 1, 0),
        ("cas-air-other", "pm25-1h", 0, 1, 0, 0, 0, 1),
    ]
