"""A processor that died after writing a station's state but before its alert was acknowledged.

The processor writes a station's state without waiting for the alerts it publishes; the state
carries them in an outbox (madina.bus.alert_events.AlertOutbox). Here the crash is staged
exactly: the state on the changelog holds an alert revision that alerts.v1 lacks, as a kill -9
between the two writes leaves it. The next processor must publish that revision, once, without
any new input, and must not publish again what the topic already has.
"""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaProducer

from madina_proto.alerts.v1 import alerts_pb2
from services.environment.domain.measurands import StationKind
from services.environment.processor.app import APP_ID
from tests.integration.environment.processor_harness import (
    create_topics,
    observation,
    produce_observations,
    start_processor,
)
from tests.support.processor_kit import alert_events, read_all, settled_alerts, wait_for_alerts

WATER = "cas-water-ain-chock"
CHANGELOG = f"{APP_ID}-station-state-changelog"


async def _latest_state(bootstrap: str, station_id: str) -> tuple[int, bytes, dict]:  # type: ignore[type-arg]
    records = [r for r in await read_all(bootstrap, CHANGELOG) if r.key and json.loads(r.key) == station_id]
    assert records, f"no state for {station_id} on {CHANGELOG}"
    latest = max(records, key=lambda r: r.offset)
    return latest.partition, latest.key, json.loads(latest.value)


async def _write_state(bootstrap: str, partition: int, key: bytes, state: dict) -> None:  # type: ignore[type-arg]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(CHANGELOG, json.dumps(state).encode(), key=key, partition=partition)
    finally:
        await producer.stop()


def _revisions(events: list[alerts_pb2.AlertEvent]) -> list[tuple[str, int]]:
    return sorted((e.alert_id, e.revision) for e in events)


async def test_an_outboxed_alert_missing_from_the_topic_is_published_once_by_the_next_processor(
    broker: str, tmp_path: Path
) -> None:
    await create_topics(broker)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)
    await produce_observations(broker, [
        [observation(WATER, t0 + timedelta(minutes=minutes), StationKind.WATER, turbidity_ntu=value)]
        for minutes, value in ((0, 0.5), (10, 3.0), (20, 7.5))  # fine, RAISED r1, ESCALATED r2
    ])
    processor = start_processor(broker, tmp_path, name="first")
    try:
        published = await wait_for_alerts(broker, 2, timeout_s=60)
    finally:
        processor.stop()
    assert [(e.state, e.revision) for e in published] == [
        (alerts_pb2.ALERT_STATE_RAISED, 1), (alerts_pb2.ALERT_STATE_ESCALATED, 2)]
    # A SIGTERM ends the held batch (states written, records acknowledged) instead of waiting for
    # acknowledgements until killed.
    assert processor.process.returncode == 0 and "wait_empty" not in processor.log_path.read_text()

    # The crash: a state that staged revision 3 of the episode, which never reached alerts.v1.
    partition, key, state = await _latest_state(broker, WATER)
    lost = alerts_pb2.AlertEvent()
    lost.CopyFrom(published[1])
    lost.revision = 3
    lost.state = alerts_pb2.ALERT_STATE_CLEARED
    lost.message = "cleared while the processor died"
    escalated = published[1]
    state["outbox"] = {
        f"{escalated.alert_id}#2": base64.b64encode(escalated.SerializeToString()).decode(),  # on the topic
        f"{lost.alert_id}#3": base64.b64encode(lost.SerializeToString()).decode(),  # lost
    }
    await _write_state(broker, partition, key, state)

    processor = start_processor(broker, tmp_path, name="second")  # no new input at all
    try:
        events = await settled_alerts(broker, 3, timeout_s=30, settle_s=2)
    finally:
        processor.stop()
    assert _revisions(events) == [(lost.alert_id, 1), (lost.alert_id, 2), (lost.alert_id, 3)]
    recovered = next(e for e in events if e.revision == 3)
    assert recovered == lost
    assert '"republished_alerts": 1' in (tmp_path / "second.log").read_text()

    # Its outbox still names revision 3 (no record has rewritten the state): the topic has it now.
    processor = start_processor(broker, tmp_path, name="third")
    try:
        await asyncio.sleep(3)
        events = await alert_events(broker)
    finally:
        processor.stop()
    assert _revisions(events) == [(lost.alert_id, 1), (lost.alert_id, 2), (lost.alert_id, 3)]
