"""``madina environment replay`` over a week of readings on the real broker, against the alerts raised.

A week of quarter-hourly PM10 and NO2 readings of one station is produced to
``environment.air-quality.v1`` (dated in a week of 2011-2020 chosen per run, so no other test's
readings or alerts fall in the replayed period), together with what a live run under the 2008 EU
values publishes on ``alerts.v1`` for it: the pure evaluator applied record by record, as the
processor applies them, each transition signed by the platform's producer (one delivered twice),
plus a data-gap alert and a forged alert signed with another key. No processor runs: the command
needs only the topics.

The command runs in-process with a proposed profile with the 2024 values, and its JSON must equal
the comparison the pure code makes of exactly those readings (the oracle), with the differences
the data was made to cause: days between 45 and 50 µg/m³ alert only under the proposal, and the
day above 50 alerts on both sides but for longer under the proposal. Against the alerts raised,
the data-gap alert is left out and the forgery is skipped while the signing key is set (without
a key nothing is checked, and it shows); ``--against current`` compares with a second replay.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from madina.alerts import AlertState, Severity
from madina.bus import ALERTS, EventProducer, ensure_topics
from madina.bus.alert_events import timestamp
from madina.bus.codec import standard_headers
from madina.bus.signing import RecordSigner, configured_signer
from madina.cli import main
from madina_proto.alerts.v1 import alerts_pb2
from madina_proto.common.v1 import common_pb2
from services.environment.convert import alert_event, batches_by_station
from services.environment.domain.evaluator import StationState, apply_observations
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
    start = datetime(2011, 1, 3, tzinfo=UTC) + timedelta(weeks=int(unique[:4], 16) % 500)
    readings = [
        Observation(STATION, start + timedelta(minutes=15 * q), StationKind.AIR,
                    {"pm10_ugm3": DAILY_PM10[q // 96], "no2_ugm3": 40.0})
        for q in range(7 * 96)
    ]
    return start, readings


def live_run_alerts(readings: list[Observation]) -> list[alerts_pb2.AlertEvent]:
    """What the processor under the profile in force publishes for ``readings``, one record's batch at a time."""
    station = {s.id: s for s in load_stations()}[STATION]
    rules = select_rules(load_profiles(), [IN_FORCE])
    state = StationState.new(STATION)
    events: list[alerts_pb2.AlertEvent] = []
    for first in range(0, len(readings), READINGS_PER_RECORD):
        batch = readings[first:first + READINGS_PER_RECORD]
        state, transitions, _, _ = apply_observations(state, batch, rules, station)
        events.extend(alert_event(transition, station) for transition in transitions)
    return events


def data_gap_alert(like: alerts_pb2.AlertEvent) -> alerts_pb2.AlertEvent:
    gap = alerts_pb2.AlertEvent()
    gap.CopyFrom(like)
    gap.alert_id, gap.category, gap.rule_id = uuid.uuid4().hex, "data-gap", "data-gap"
    return gap


def forged_alert(start: datetime) -> alerts_pb2.AlertEvent:
    """A two-hour PM10 episode on the first day, when no profile alerts (30 µg/m³); only its clear is forged."""
    raised, cleared = start + timedelta(hours=6), start + timedelta(hours=8)
    return alerts_pb2.AlertEvent(
        alert_id=uuid.uuid4().hex, revision=2, domain="environment", category="air-quality",
        rule_id=f"{IN_FORCE}/pm10-24h",
        source=common_pb2.EntityRef(domain="environment", kind="air", entity_id=STATION),
        severity=int(Severity.MAJOR), state=int(AlertState.CLEARED), observed_value=99.0, threshold_value=50.0,  # type: ignore[arg-type]
        unit="ug/m3", raise_time=timestamp(raised), clear_time=timestamp(cleared), event_time=timestamp(cleared),
        message="forged",
    )


async def produce(bootstrap: str, readings: list[Observation], alerts: list[alerts_pb2.AlertEvent]) -> None:
    """The readings, and the alerts signed by this process's producer (its key, if one is set)."""
    await ensure_topics(bootstrap, ALL, default_partitions=1)
    async with EventProducer(bootstrap, source="test-replay") as producer:
        for first in range(0, len(readings), READINGS_PER_RECORD):
            [(_, station_id, batch)] = batches_by_station(readings[first:first + READINGS_PER_RECORD])
            await producer.send_and_wait(AIR_QUALITY, station_id, batch)
        for event in alerts:
            await producer.send_and_wait(ALERTS, event.alert_id, event)


async def forge(bootstrap: str, event: alerts_pb2.AlertEvent) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        key, value = event.alert_id.encode(), event.SerializeToString()
        headers = standard_headers(ALERTS, "forger") + RecordSigner(b"f" * 32).headers(ALERTS.name, key, value)
        await producer.send_and_wait(ALERTS.name, value, key=key, headers=headers)
    finally:
        await producer.stop()


@dataclass(frozen=True)
class StoredWeek:
    start: datetime
    end: datetime
    readings: list[Observation]
    published: list[alerts_pb2.AlertEvent]
    forged: alerts_pb2.AlertEvent
    key_file: Path
    proposal: Path


@pytest.fixture(scope="module")
def week(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> StoredWeek:
    """One week on the topics for the module's tests: their periods must not overlap, so one produce."""
    directory = tmp_path_factory.mktemp("replay")
    start, readings = week_of_readings(uuid.uuid4().hex)
    published = live_run_alerts(readings)
    key_file = directory / "alert-signing.key"
    key_file.write_text("k" * 64)
    proposal = directory / "city-2027.yaml"
    proposal.write_text(PROPOSED, encoding="utf-8")
    forged = forged_alert(start)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MADINA_ALERT_SIGNING_KEY_FILE", str(key_file))
        configured_signer.cache_clear()
        try:
            sent = [*published, published[0], data_gap_alert(published[0])]  # the first one twice: at least once
            asyncio.run(produce(kafka_bootstrap, readings, sent))
        finally:
            configured_signer.cache_clear()
    asyncio.run(forge(kafka_bootstrap, forged))
    return StoredWeek(start, start + timedelta(days=7), readings, published, forged, key_file, proposal)


@pytest.fixture
def replay_env(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("MADINA_KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("MADINA_ENVIRONMENT_PROFILES", json.dumps([IN_FORCE]))
    monkeypatch.delenv("MADINA_ALERT_SIGNING_KEY_FILE", raising=False)
    configured_signer.cache_clear()
    yield
    configured_signer.cache_clear()


def run_replay(week: StoredWeek, capsys: pytest.CaptureFixture[str], *options: str) -> dict[str, Any]:
    code = main(["environment", "replay", "--profile", str(week.proposal), "--json", *options,
                 "--from", week.start.isoformat(), "--to", week.end.isoformat().replace("+00:00", "Z")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "environment.air-quality.v1:" in captured.err  # progress goes to stderr, not into the report
    return json.loads(captured.out)  # type: ignore[no-any-return]


def oracle(week: StoredWeek, against: str) -> dict[str, Any]:
    """The report the pure code makes of exactly the week's readings: a live run's alerts are a replay's episodes."""
    stations = {s.id: s for s in load_stations()}
    in_force = replay(week.readings, select_rules(load_profiles(), [IN_FORCE]), stations)
    proposed = replay(week.readings, select_rules(load_profiles([week.proposal], include_builtin=False),
                                                  ["city-2027"]), stations)
    comparison = compare_runs(in_force, proposed, rule_key=local_rule_id)
    return report_json(ReplayReport(comparison, len(week.readings), (IN_FORCE,), ("city-2027",), week.start,
                                    week.end, against))


def test_replay_against_the_alerts_raised_reports_the_oracles_differences_and_skips_forgeries(
    week: StoredWeek, replay_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MADINA_ALERT_SIGNING_KEY_FILE", str(week.key_file))
    configured_signer.cache_clear()

    reported = run_replay(week, capsys)

    assert reported == oracle(week, "raised")
    assert reported["against"] == "raised" and reported["profiles_raised"] == [IN_FORCE]
    raised_ids = {e.alert_id for e in week.published if e.state == AlertState.RAISED}
    assert raised_ids
    sides = [*reported["only_raised"], *(pair["raised"] for pair in reported["changed"] + reported["unchanged"])]
    assert sorted(e["alert_id"] for e in sides) == sorted(raised_ids)  # the published ids, once each, no gap alert
    only_proposed = [(e["rule_id"], e["raised_at"][:10]) for e in reported["only_proposed"]]
    assert only_proposed and all(rule == "city-2027/pm10-24h" for rule, _ in only_proposed)
    [changed] = reported["changed"]
    assert changed["raised"]["rule_id"] == f"{IN_FORCE}/pm10-24h"
    assert changed["duration_change_s"] > 0  # the stricter value raises earlier or clears later
    [pm10] = [c for c in reported["per_station_rule"] if c["rule"] == "pm10-24h"]
    assert pm10 == {"station_id": STATION, "rule": "pm10-24h", "raised": 1, "proposed": 1 + len(only_proposed),
                    "unchanged": 0, "changed": 1, "only_raised": 0, "only_proposed": len(only_proposed)}

    monkeypatch.delenv("MADINA_ALERT_SIGNING_KEY_FILE")
    configured_signer.cache_clear()
    unchecked = run_replay(week, capsys, "--against", "raised")
    [forged] = unchecked["only_raised"]
    assert forged["alert_id"] == week.forged.alert_id and forged["duration_s"] == 2 * 3600
    assert unchecked["changed"] == reported["changed"] and unchecked["only_proposed"] == reported["only_proposed"]


def test_replay_against_the_profiles_in_force_reports_the_oracles_differences(
    week: StoredWeek, replay_env: None, capsys: pytest.CaptureFixture[str],
) -> None:
    reported = run_replay(week, capsys, "--against", "current")

    assert reported == oracle(week, "current")
    assert reported["observations"] == 7 * 96
    assert reported["only_in_force"] == []
    assert reported["profiles_in_force"] == [IN_FORCE]
    only_proposed = [(e["rule_id"], e["raised_at"][:10]) for e in reported["only_proposed"]]
    assert only_proposed and all(rule == "city-2027/pm10-24h" for rule, _ in only_proposed)
    [changed] = reported["changed"]
    assert changed["in_force"]["rule_id"] == f"{IN_FORCE}/pm10-24h"
    assert changed["duration_change_s"] > 0


def test_replay_names_the_bad_profile_field_and_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(PROPOSED.replace("allowed_exceedances: 18", "allowed_exceedances: lots"), encoding="utf-8")

    assert main(["environment", "replay", "--profile", str(bad), "--from", "2026-11-01T00:00:00Z",
                 "--to", "2026-11-08T00:00:00Z"]) == 2
    assert "rule 'pm10-24h' field 'allowed_exceedances'" in capsys.readouterr().err

    assert main(["environment", "replay", "--profile", str(bad), "--from", "last week",
                 "--to", "2026-11-08T00:00:00Z"]) == 2
    assert "--from: 'last week' is not an RFC 3339 time" in capsys.readouterr().err
