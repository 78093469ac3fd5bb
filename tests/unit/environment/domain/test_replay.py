"""Replay of a week of observations under two profile versions, and the comparison of the runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from madina.alerts import Severity
from services.environment.domain.measurands import Observation, StationKind
from services.environment.domain.profiles import load_profiles, select_rules
from services.environment.domain.replay import compare_runs, replay
from services.environment.domain.stations import load_stations

# The same rule in two versions of one profile: version 2 raises the limit from 35 to 50.
PROFILES = """
profiles:
  - name: city
    version: 1
    title: City PM2.5 rule, first version
    source: {standard: Test, document: Test rules, url: https://example.org, year: 2025}
    rules:
      - id: pm25-1h
        measurand: pm25_ugm3
        window: 1h
        comparison: above
        clear_after: 1h
        update_interval: null
        levels:
          - {threshold: 35, severity: major}
          - {threshold: 80, severity: critical}
  - name: city
    version: 2
    title: City PM2.5 rule, relaxed
    source: {standard: Test, document: Test rules, url: https://example.org, year: 2025}
    rules:
      - id: pm25-1h
        measurand: pm25_ugm3
        window: 1h
        comparison: above
        clear_after: 1h
        update_interval: null
        levels:
          - {threshold: 50, severity: major}
          - {threshold: 80, severity: critical}
"""

MONDAY = datetime(2025, 3, 3, tzinfo=UTC)
# Hour of day -> PM2.5 on the days that have an episode; 20 µg/m³ at every other time.
PEAKS = {
    0: {10: 40.0, 11: 40.0, 12: 40.0},  # Monday: above 35 only
    2: {10: 40.0, 11: 60.0, 12: 60.0, 13: 60.0, 14: 40.0},  # Wednesday: above 35, and above 50 inside
    4: {10: 40.0, 11: 40.0},  # Friday: above 35 only
}


def week_of_observations(station_id: str) -> list[Observation]:
    observations = []
    for step in range(7 * 24 * 6):  # every 10 minutes
        at = MONDAY + timedelta(minutes=10 * step)
        day = (at - MONDAY).days
        value = PEAKS.get(day, {}).get(at.hour, 20.0)
        observations.append(Observation(station_id, at, StationKind.AIR, {"pm25_ugm3": value}))
    return observations


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    path: Path = tmp_path_factory.mktemp("profiles") / "city.yaml"
    path.write_text(PROFILES, encoding="utf-8")
    profiles = load_profiles([path], include_builtin=False)
    stations = {s.id: s for s in load_stations()}
    return profiles, stations


def test_week_under_two_profile_versions_gives_the_expected_difference(setup):
    profiles, stations = setup
    observations = week_of_observations("cas-air-anfa")
    strict = replay(observations, select_rules(profiles, ["city@1"]), stations)
    relaxed = replay(observations, select_rules(profiles, ["city@2"]), stations)

    assert [e.raised_at.date().isoformat() for e in strict.episodes] == ["2025-03-03", "2025-03-05", "2025-03-07"]
    assert [e.raised_at.date().isoformat() for e in relaxed.episodes] == ["2025-03-05"]
    assert all(e.cleared_at is not None for e in strict.episodes + relaxed.episodes)
    assert {e.peak_severity for e in strict.episodes} == {Severity.MAJOR}

    diff = compare_runs(strict, relaxed)
    assert [e.raised_at.date().isoformat() for e in diff.only_in_first] == ["2025-03-03", "2025-03-07"]
    assert diff.only_in_second == ()
    [changed] = diff.changed
    assert changed.before.raised_at < changed.after.raised_at
    assert changed.after.cleared_at is not None and changed.before.cleared_at is not None
    assert changed.after.cleared_at < changed.before.cleared_at
    assert changed.duration_change < timedelta(0)
    assert changed.before.alert_id != changed.after.alert_id
    assert not diff.identical


def test_episode_records_carry_id_rule_times_duration_and_peak(setup):
    profiles, stations = setup
    result = replay(week_of_observations("cas-air-anfa"), select_rules(profiles, ["city@2"]), stations)
    [episode] = result.episodes
    assert episode.rule_id == "city/pm25-1h" and episode.station_id == "cas-air-anfa"
    assert episode.cleared_at is not None
    assert episode.duration == episode.cleared_at - episode.raised_at
    assert timedelta(hours=3) < episode.duration < timedelta(hours=5)
    assert len(episode.alert_id) == 32
    assert result.rejected == 0 and result.end == MONDAY + timedelta(days=7) - timedelta(minutes=10)


def test_replay_is_deterministic_and_order_free(setup):
    profiles, stations = setup
    rules = select_rules(profiles, ["city@1"])
    observations = week_of_observations("cas-air-anfa")
    first = replay(observations, rules, stations)
    second = replay(list(reversed(observations)), rules, stations)
    assert first == second
    assert compare_runs(first, second).identical


def test_open_episode_lasts_to_the_end_of_the_replay(setup):
    profiles, stations = setup
    start = MONDAY
    observations = [
        Observation("cas-air-anfa", start + timedelta(minutes=10 * i), StationKind.AIR, {"pm25_ugm3": 90.0})
        for i in range(12)
    ]
    observations.append(Observation("nowhere", start, StationKind.AIR, {"pm25_ugm3": 1.0}))
    result = replay(observations, select_rules(profiles, ["city@1"]), stations)
    [episode] = result.episodes
    assert episode.cleared_at is None and episode.peak_severity is Severity.CRITICAL
    assert episode.raised_at + episode.duration == result.end
    assert result.rejected == 1


def test_profiles_of_different_names_compare_by_rule_key(setup):
    profiles, stations = setup
    observations = week_of_observations("cas-air-anfa")
    first = replay(observations, select_rules(profiles, ["city@1"]), stations)
    renamed = tuple(
        type(e)(**{**e.__dict__, "rule_id": "other/" + e.rule_id.split("/", 1)[1]}) for e in first.episodes
    )
    assert len(compare_runs(first, renamed).only_in_first) == 3
    assert compare_runs(first, renamed, rule_key=lambda r: r.split("/", 1)[1]).identical
