"""The environment processor as a real faust worker over the embedded broker (TCP).

Each test gets its own broker process: the processor's topics and consumer group are fixed names.
The dead-letter and kill -9 tests also run on Apache Kafka, with nothing changed but the address.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from madina.alerts import AlertState
from madina.bus.producer import HEADER_DLQ_REASON
from madina_proto.alerts.v1 import alerts_pb2
from services.environment.domain.evaluator import StationState, apply_observations
from services.environment.domain.measurands import StationKind
from services.environment.domain.profiles import load_profiles, select_rules
from services.environment.domain.stations import load_stations
from services.environment.settings import EnvironmentSettings
from services.environment.topics import AIR_QUALITY, WATER_QUALITY
from tests.integration.environment.processor_harness import (
    PARTITIONS,
    ProcessorProcess,
    alert_events,
    create_topics,
    observation,
    produce_observations,
    produce_raw,
    read_all,
    settled_alerts,
    wait_for_alerts,
)

WATER = "cas-water-ain-chock"
AIR = "cas-air-ain-sebaa"


def _states(events: list[alerts_pb2.AlertEvent]) -> list[tuple[str, str, int]]:
    return [(alerts_pb2.AlertState.Name(e.state), alerts_pb2.Severity.Name(e.severity), e.revision) for e in events]


async def test_scripted_turbidity_episode_raises_escalates_clears_and_starts_a_new_episode(
    broker: str, tmp_path: Path
) -> None:
    await create_topics(broker)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)
    script = [  # (minutes after t0, turbidity NTU)
        (0, 0.5),  # fine
        (10, 3.0),  # above 1 NTU: RAISED warning
        (20, 7.5),  # above 5 NTU: ESCALATED major
        (30, 4.0),  # still breaching, within the 15 min update interval: nothing
        (40, 0.95),  # below the threshold but above the clear level (0.9): nothing
        (50, 0.5),  # below the clear level: the 2 h hold starts
        (110, 0.5),
        (140, 0.5),  # held 1 h 30 min: not yet
        (175, 0.5),  # held 2 h 05 min: CLEARED
        (185, 2.0),  # a new breach after clearing: a new episode
    ]
    await produce_observations(
        broker,
        [
            [observation(WATER, t0 + timedelta(minutes=minutes), StationKind.WATER, turbidity_ntu=value)]
            for minutes, value in script
        ],
    )
    processor = ProcessorProcess.start(broker, tmp_path)
    try:
        events = await settled_alerts(broker, 4, timeout_s=60, settle_s=2)
    finally:
        processor.stop()

    assert _states(events) == [
        ("ALERT_STATE_RAISED", "SEVERITY_WARNING", 1),
        ("ALERT_STATE_ESCALATED", "SEVERITY_MAJOR", 2),
        ("ALERT_STATE_CLEARED", "SEVERITY_MAJOR", 3),
        ("ALERT_STATE_RAISED", "SEVERITY_WARNING", 1),
    ]
    first, escalated, cleared, second = events
    assert first.alert_id == escalated.alert_id == cleared.alert_id != second.alert_id
    assert first.rule_id == "who-water-2022/turbidity" and first.domain == "environment"
    assert first.source.entity_id == WATER and first.source.kind == "station"
    assert escalated.observed_value == 7.5 and escalated.threshold_value == 5.0 and escalated.unit == "NTU"
    assert cleared.clear_time.ToDatetime(tzinfo=UTC) == t0 + timedelta(minutes=175)
    assert first.raise_time.ToDatetime(tzinfo=UTC) == t0 + timedelta(minutes=10)
    assert first.district.district_id and first.standard_reference.startswith("WHO Guidelines for Drinking-water")


ON_BOTH_BROKERS = pytest.mark.parametrize("broker", ["embedded", "apache-kafka"], indirect=True)


@ON_BOTH_BROKERS
async def test_malformed_records_go_to_the_dlq_with_a_reason_and_good_ones_still_raise_alerts(
    broker: str, tmp_path: Path
) -> None:
    await create_topics(broker)
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    await produce_raw(broker, AIR_QUALITY.name, AIR.encode(), b"\x12\xff\xfe this is not protobuf")
    await produce_observations(
        broker,
        [
            [observation("cas-air-atlantis", now, StationKind.AIR, pm25_ugm3=10.0)],  # no such station
            [observation(AIR, now, StationKind.AIR, pm25_ugm3=-5.0)],  # implausible: refused by the evaluator
            [observation(WATER, now + timedelta(minutes=1), StationKind.WATER, ecoli_cfu_100ml=12.0)],  # breach
        ],
    )
    processor = ProcessorProcess.start(broker, tmp_path)
    try:
        events = await wait_for_alerts(broker, 1, timeout_s=60)
        dead = await read_all(broker, AIR_QUALITY.dead_letter.name)
        for _ in range(20):
            if len(dead) >= 3:
                break
            await asyncio.sleep(0.5)
            dead = await read_all(broker, AIR_QUALITY.dead_letter.name)
    finally:
        processor.stop()

    assert [(e.rule_id, alerts_pb2.Severity.Name(e.severity)) for e in events] == [
        ("who-water-2022/ecoli", "SEVERITY_CRITICAL")
    ]
    reasons = sorted(dict(record.headers)[HEADER_DLQ_REASON].decode() for record in dead)
    assert len(reasons) == 3, reasons
    assert any("AirQualityObservedBatch" in reason for reason in reasons)
    assert any("unknown station 'cas-air-atlantis'" in reason for reason in reasons)
    assert any(reason.startswith("invalid") and "pm25_ugm3" in reason for reason in reasons)
    assert any(record.value == b"\x12\xff\xfe this is not protobuf" for record in dead)
    assert not await read_all(broker, WATER_QUALITY.dead_letter.name)


def _episodic_stream(t0: datetime) -> list[list]:  # type: ignore[type-arg]
    """Water turbidity and noise square waves: several full episodes per station."""
    stations = [s for s in load_stations() if s.city == "casablanca"]
    water = [s.id for s in stations if StationKind.WATER in s.kinds]
    noisy = [s.id for s in stations if "laeq_db" in s.measurands]
    records = []
    for step in range(240):
        at = t0 + timedelta(minutes=10 * step)
        high = (step // 18) % 2 == 0  # 3 h high, 3 h low
        for station_id in water:
            records.append(
                [observation(station_id, at, StationKind.WATER, turbidity_ntu=6.0 + step % 3 if high else 0.3)]
            )
        for station_id in noisy:
            records.append(
                [
                    observation(station_id, at, StationKind.NOISE, laeq_db=74.0 if high else 50.0),
                    observation(
                        station_id,
                        at + timedelta(minutes=5),
                        StationKind.NOISE,
                        laeq_db=73.0 if high else 51.0,
                    ),
                ]
            )
    return records


def assert_exactly_once(events: list[alerts_pb2.AlertEvent], expected: Counter[tuple[str, int, int]]) -> None:
    published = Counter((e.alert_id, e.revision, e.state) for e in events)
    doubled = {key: n for key, n in published.items() if n > 1}
    assert not doubled, f"revisions published twice: {list(doubled)[:5]}"
    assert published == expected, (
        f"missing {list((expected - published).elements())[:5]}, extra {list((published - expected).elements())[:5]}"
    )


def _expected_transitions(records: list[list]) -> Counter[tuple[str, int, int]]:  # type: ignore[type-arg]
    """The oracle: the pure evaluator fed the same records, one station at a time."""
    settings_profiles = EnvironmentSettings.model_fields["environment_profiles"].default
    rules = select_rules(load_profiles(), settings_profiles)
    stations = {s.id: s for s in load_stations()}
    states: dict[str, StationState] = {}
    expected: Counter[tuple[str, int, int]] = Counter()
    for batch in records:
        station_id = batch[0].station_id
        state = states.get(station_id) or StationState.new(station_id)
        result = apply_observations(state, batch, rules, stations[station_id])
        states[station_id] = result.state
        for transition in result.transitions:
            expected[(transition.alert_id, transition.revision, int(transition.state))] += 1
    return expected


@ON_BOTH_BROKERS
async def test_kill_9_mid_stream_then_restart_publishes_every_alert_revision_exactly_once(
    broker: str, tmp_path: Path
) -> None:
    await create_topics(broker)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    records = _episodic_stream(t0)
    expected = _expected_transitions(records)
    assert sum(1 for (_, _, state) in expected if state == int(AlertState.CLEARED)) >= 6, (
        "the stream must clear episodes"
    )

    chunks = [records[i : i + len(records) // 8 + 1] for i in range(0, len(records), len(records) // 8 + 1)]
    processor = ProcessorProcess.start(broker, tmp_path, name="first")
    for chunk in chunks[:4]:
        await produce_observations(broker, chunk)
    await wait_for_alerts(broker, 1, timeout_s=60)
    await asyncio.sleep(0.3)
    processor.kill()  # mid-stream: offsets, changelog and alerts are cut wherever they are
    published_before_kill = len(await alert_events(broker))

    for chunk in chunks[4:]:
        await produce_observations(broker, chunk)
    processor = ProcessorProcess.start(broker, tmp_path, name="second")
    try:
        total = sum(expected.values())
        events = await settled_alerts(broker, total, timeout_s=120, settle_s=3)
    finally:
        processor.stop()

    assert_exactly_once(events, expected)
    assert 0 < published_before_kill < total


async def test_two_workers_the_busy_one_killed_mid_stream_the_survivor_publishes_every_revision_exactly_once(
    broker: str, tmp_path: Path
) -> None:
    """Partitions and their station states move to the survivor (which held them as standbys):
    it must re-read alerts.v1 and publish what the dead worker's outboxes hold, nothing twice."""
    await create_topics(broker)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    records = _episodic_stream(t0)
    expected = _expected_transitions(records)
    total = sum(expected.values())
    workers = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        workers.append(ProcessorProcess.start(broker, tmp_path / name, name=name))
    try:
        await _wait_until_both_work(broker, *workers)
        half = len(records) // 2
        await produce_observations(broker, records[:half])
        await wait_for_alerts(broker, sum(_expected_transitions(records[:half]).values()) // 3, timeout_s=60)
        # The stations may all hash to one partition: kill the worker that is doing the work.
        busy = max(workers, key=lambda worker: worker.log_path.read_text().count('"message": "apply"'))
        busy.kill()  # offsets, changelogs and alerts are cut wherever they are
        survivor = next(worker for worker in workers if worker is not busy)
        # Produced only now, so the survivor has work even if the first half was done by the kill.
        await produce_observations(broker, records[half:])
        events = await settled_alerts(broker, total, timeout_s=120, settle_s=3)
    finally:
        for worker in workers:
            worker.stop()

    assert_exactly_once(events, expected)
    assert '"message": "apply"' in survivor.log_path.read_text(), "the survivor never took over any work"


async def _wait_until_both_work(broker: str, *workers: ProcessorProcess) -> None:
    """Until each worker's latest take-over (logged after every rebalance) covers its own partitions."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while loop.time() < deadline:
        owned = [_last_sweep_partitions(worker) for worker in workers]
        if all(owned) and sorted(p for partitions in owned for p in partitions) == list(range(PARTITIONS)):
            return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"the workers did not share the partitions: {owned}")


def _last_sweep_partitions(worker: ProcessorProcess) -> list[int]:
    sweeps = [line for line in worker.log_path.read_text().splitlines() if '"outboxes swept"' in line]
    return list(json.loads(sweeps[-1])["partitions"]) if sweeps else []


async def test_silent_station_raises_a_data_gap_alert_that_clears_when_data_resumes(
    broker: str, tmp_path: Path
) -> None:
    await create_topics(broker)
    now = datetime.now(UTC).replace(microsecond=0)
    # The air station reports every 60 s; 20 minutes of silence is far beyond 3 missed reports.
    await produce_observations(
        broker, [[observation(AIR, now - timedelta(minutes=20), StationKind.AIR, pm25_ugm3=5.0)]]
    )
    processor = ProcessorProcess.start(broker, tmp_path, tick_interval_s=1.0)
    try:
        raised = [e for e in await wait_for_alerts(broker, 1, timeout_s=60) if e.rule_id.endswith("data-gap")]
        assert raised and raised[0].state == alerts_pb2.ALERT_STATE_RAISED
        assert raised[0].source.entity_id == AIR and raised[0].category == "data-gap"
        await produce_observations(broker, [[observation(AIR, datetime.now(UTC), StationKind.AIR, pm25_ugm3=5.0)]])
        events = await wait_for_alerts(broker, 2, timeout_s=60)
    finally:
        processor.stop()
    gap = [e for e in events if e.alert_id == raised[0].alert_id]
    assert [alerts_pb2.AlertState.Name(e.state) for e in gap] == ["ALERT_STATE_RAISED", "ALERT_STATE_CLEARED"]


async def test_a_station_that_never_reports_raises_a_data_gap_that_its_first_report_clears(
    broker: str, tmp_path: Path
) -> None:
    await create_topics(broker)
    stations_file = tmp_path / "stations.yaml"
    stations_file.write_text(yaml.safe_dump({"stations": [{
        "id": "test-air-never", "name": "Installed, never connected", "city": "casablanca",
        "district": "ain-sebaa", "location": [33.6, -7.53], "kinds": ["air"], "measurands": ["pm25_ugm3"],
        "reporting_interval": "2s",  # data-gap after 3 missed reports: 6 s
    }]}))
    processor = ProcessorProcess.start(broker, tmp_path, tick_interval_s=1.0,
                                       extra_env={"MADINA_ENVIRONMENT_STATIONS_FILE": str(stations_file)})
    try:
        raised = await wait_for_alerts(broker, 1, timeout_s=60)
        assert [(e.rule_id, e.state) for e in raised] == [("data-gap", alerts_pb2.ALERT_STATE_RAISED)]
        assert raised[0].source.entity_id == "test-air-never"
        assert "since monitoring began" in raised[0].message
        await produce_observations(
            broker, [[observation("test-air-never", datetime.now(UTC), StationKind.AIR, pm25_ugm3=5.0)]]
        )
        events = await wait_for_alerts(broker, 2, timeout_s=60)
    finally:
        processor.stop()
    assert [alerts_pb2.AlertState.Name(e.state) for e in events] == ["ALERT_STATE_RAISED", "ALERT_STATE_CLEARED"]
    assert events[0].alert_id == events[1].alert_id
