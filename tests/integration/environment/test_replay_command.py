"""``madina environment replay`` over a week of readings on the real broker, under two profiles.

A week of quarter-hourly PM10 and NO2 readings of one station is produced to
``environment.air-quality.v1`` (dated in a week of 2011 chosen per run, so no other test's
readings fall in the replayed period); the command runs in-process against the broker with the
2008 EU values in force and a proposed profile with the 2024 values, and its JSON must equal the
comparison of the pure replay of exactly those readings (the oracle), with the differences the
data was made to cause: days between 45 and 50 µg/m³ alert only under the proposal, and the day
above 50 alerts in both runs but for longer under the proposal.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from madina.bus import EventProducer, ensure_topics
from madina.cli import main
from services.environment.convert import batches_by_station
from services.environment.domain.measurands import Observation, StationKind
from services.environment.domain.profiles import load_profiles, select_rules
from services.environment.domain.replay import compare_runs, replay
from services.environment.domain.stations import load_stations
from services.environment.replay_command import ReplayReport, local_rule_id, report_json
from services.environment.topics import AIR_QUALITY, ALL

STATION = "cas-air-anfa"
IN_FORCE = "eu-2008-50"
# PM10 per local day of the week: 47 and 48 breach only the proposed 45; 60 breaches both.
DAILY_PM10 = (30.0, 47.0, 47.0, 60.0, 30.0, 48.0, 30.0)
READINGS_PER_RECORD = 16
PROPOSED = """
profiles:
  - name: city-2027
    version: 1
    title: The city's proposed 2027 thresholds (the 2030 EU values, three years early)
    source:
      standard: Directive (EU) 2024/2881
      document: Annex I Table 1
      url: https://eur-lex.europa.eu/eli/dir/2024/2881/oj
      year: 2024
    defaults:
      clear_after: 1h
      min_hourly_coverage: 0.75
    rules:
      - id: pm10-24h
        measurand: pm10_ugm3
        window: 24h
        comparison: above
        allowed_exceedances: 18
        levels:
          - {name: limit value, threshold: 45, severity: major}
      - id: no2-1h
        measurand: no2_ugm3
        window: 1h
        comparison: above
        allowed_exceedances: 3
        levels:
          - {name: limit value, threshold: 200, severity: major}
"""


def week_of_readings(unique: str) -> tuple[datetime, list[Observation]]:
    start = datetime(2011, 1, 3, tzinfo=UTC) + timedelta(weeks=int(unique[:4], 16) % 50)
    readings = [
        Observation(STATION, start + timedelta(minutes=15 * q), StationKind.AIR,
                    {"pm10_ugm3": DAILY_PM10[q // 96], "no2_ugm3": 40.0})
        for q in range(7 * 96)
    ]
    return start, readings


async def produce(bootstrap: str, readings: list[Observation]) -> None:
    await ensure_topics(bootstrap, ALL, default_partitions=1)
    async with EventProducer(bootstrap, source="test-replay") as producer:
        for first in range(0, len(readings), READINGS_PER_RECORD):
            [(_, station_id, batch)] = batches_by_station(readings[first:first + READINGS_PER_RECORD])
            await producer.send_and_wait(AIR_QUALITY, station_id, batch)


def test_replay_of_a_week_under_two_profiles_reports_the_oracles_differences(
    kafka_bootstrap: str, unique: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    start, readings = week_of_readings(unique)
    asyncio.run(produce(kafka_bootstrap, readings))
    proposal = tmp_path / "city-2027.yaml"
    proposal.write_text(PROPOSED, encoding="utf-8")
    monkeypatch.setenv("MADINA_KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("MADINA_ENVIRONMENT_PROFILES", json.dumps([IN_FORCE]))
    end = start + timedelta(days=7)

    code = main(["environment", "replay", "--profile", str(proposal), "--json",
                 "--from", start.isoformat(), "--to", end.isoformat().replace("+00:00", "Z")])

    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "environment.air-quality.v1:" in captured.err  # progress goes to stderr, not into the report
    reported = json.loads(captured.out)

    stations = {s.id: s for s in load_stations()}
    in_force = replay(readings, select_rules(load_profiles(), [IN_FORCE]), stations)
    proposed = replay(readings, select_rules(load_profiles([proposal], include_builtin=False), ["city-2027"]), stations)
    oracle = compare_runs(in_force, proposed, rule_key=local_rule_id)
    expected = report_json(ReplayReport(oracle, len(readings), (IN_FORCE,), ("city-2027",), start, end))
    assert reported == expected

    assert reported["observations"] == 7 * 96
    assert reported["only_in_force"] == []
    only_proposed = [(e["rule_id"], e["raised_at"][:10]) for e in reported["only_proposed"]]
    assert only_proposed and all(rule == "city-2027/pm10-24h" for rule, _ in only_proposed)
    [changed] = reported["changed"]
    assert changed["in_force"]["rule_id"] == f"{IN_FORCE}/pm10-24h"
    assert changed["duration_change_s"] > 0  # the stricter value raises earlier or clears later


def test_replay_names_the_bad_profile_field_and_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(PROPOSED.replace("allowed_exceedances: 18", "allowed_exceedances: lots"), encoding="utf-8")

    assert main(["environment", "replay", "--profile", str(bad), "--from", "2026-11-01T00:00:00Z",
                 "--to", "2026-11-08T00:00:00Z"]) == 2
    assert "rule 'pm10-24h' field 'allowed_exceedances'" in capsys.readouterr().err

    assert main(["environment", "replay", "--profile", str(bad), "--from", "last week",
                 "--to", "2026-11-08T00:00:00Z"]) == 2
    assert "--from: 'last week' is not an RFC 3339 time" in capsys.readouterr().err
