"""The environment processor as a real faust worker over the embedded broker (TCP).

Each test gets its own broker process: the processor's topics and consumer group are fixed names.
The dead-letter and kill -9 tests also run on Apache Kafka, with nothing changed but the address.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from madina.alerts import AlertState
from madina.bus.producer import HEADER_DLQ_REASON
from madina_proto.alerts.v1 import alerts_pb2
from services.environment.domain.measurands import StationKind
from services.environment.topics import AIR_QUALITY, WATER_QUALITY
from tests.integration.environment.processor_harness import (
    KIT,
    create_topics,
    episodic_stream,
    expected_transitions,
    observation,
    observation_records,
    produce_observations,
    start_processor,
)
from tests.support.processor_kit import produce_raw, read_all, settled_alerts, wait_for_alerts

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
    processor = start_processor(broker, tmp_path)
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
    processor = start_processor(broker, tmp_path)
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


@ON_BOTH_BROKERS
async def test_kill_9_mid_stream_then_restart_publishes_every_alert_revision_exactly_once(
    broker: str, tmp_path: Path
) -> None:
    batches = episodic_stream(datetime.now(UTC).replace(microsecond=0) - timedelta(days=3))
    expected = expected_transitions(batches)
    assert sum(1 for (_, _, state) in expected if state == int(AlertState.CLEARED)) >= 6, (
        "the stream must clear episodes"
    )
    await KIT.kill_9_mid_stream(broker, tmp_path, observation_records(batches), expected)


async def test_two_workers_the_busy_one_killed_mid_stream_the_survivor_publishes_every_revision_exactly_once(
    broker: str, tmp_path: Path
) -> None:
    """Partitions and their station states move to the survivor (which held them as standbys):
    it must re-read alerts.v1 and publish what the dead worker's outboxes hold, nothing twice."""
    batches = episodic_stream(datetime.now(UTC).replace(microsecond=0) - timedelta(days=3))
    await KIT.kill_busy_worker(broker, tmp_path, observation_records(batches), expected_transitions(batches),
                               expected_transitions(batches[: len(batches) // 2]))


async def test_silent_station_raises_a_data_gap_alert_that_clears_when_data_resumes(
    broker: str, tmp_path: Path
) -> None:
    await create_topics(broker)
    now = datetime.now(UTC).replace(microsecond=0)
    # The air station reports every 60 s; 20 minutes of silence is far beyond 3 missed reports.
    await produce_observations(
        broker, [[observation(AIR, now - timedelta(minutes=20), StationKind.AIR, pm25_ugm3=5.0)]]
    )
    processor = start_processor(broker, tmp_path, tick_interval_s=1.0)
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
    processor = start_processor(broker, tmp_path, tick_interval_s=1.0,
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
