"""The waste processor as a real faust worker over a real broker (embedded, and Apache Kafka for
the kill -9 test). Each test gets its own broker: the processor's topics and group have fixed names."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from madina.bus.producer import HEADER_DLQ_REASON
from madina.bus.topics import KPIS
from madina_proto.alerts.v1 import alerts_pb2
from madina_proto.waste.v1 import container_pb2
from services.waste.convert import reading_to_pb
from services.waste.domain.readings import Reading
from services.waste.topics import COLLECTIONS, CONTAINER_LEVELS, CONTAINER_STATUS
from tests.integration.waste.harness import KIT, casablanca, day_of_readings, oracle, records_of
from tests.support.processor_kit import (
    alert_events,
    assert_exactly_once,
    produce,
    produce_raw,
    read_all,
    settled_alerts,
    wait_for_alerts,
)

ON_BOTH_BROKERS = pytest.mark.parametrize("broker", ["embedded", "apache-kafka"], indirect=True)


def _start(hours_ago: float) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(hours=hours_ago)


async def _until(check, timeout_s: float = 30.0):  # type: ignore[no-untyped-def]
    """``await check()`` until it returns something truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        result = await check()
        if result or loop.time() > deadline:
            return result
        await asyncio.sleep(0.5)


async def test_a_simulated_day_publishes_exactly_the_alerts_collections_and_statuses_of_the_pure_domain(
    broker: str, tmp_path: Path
) -> None:
    containers = casablanca(6)
    batches = day_of_readings(containers, _start(25))
    expected = oracle(batches, containers)
    assert {alerts_pb2.AlertState.Name(state) for _, _, state in expected.alerts} >= {
        "ALERT_STATE_RAISED", "ALERT_STATE_ESCALATED", "ALERT_STATE_CLEARED"}
    await KIT.create_topics(broker)
    await produce(broker, records_of(batches))
    processor = KIT.start(broker, tmp_path)
    try:
        events = await settled_alerts(broker, sum(expected.alerts.values()), timeout_s=60, settle_s=2)
        collections = await _until(lambda: _at_least(broker, COLLECTIONS.name, len(expected.collections)))
        statuses = await read_all(broker, CONTAINER_STATUS.name)
        kpis = await read_all(broker, KPIS.name)
    finally:
        processor.stop()

    assert_exactly_once(events, expected.alerts)
    assert {e.rule_id for e in events} >= {"container-full", "fire-risk", "tipped-over", "low-battery"}
    seen = sorted((c.container_id, c.detect_time.ToDatetime(tzinfo=UTC)) for c in collections)
    assert seen == sorted((c.container_id, c.detect_time) for c in expected.collections)
    newest = {}
    for record in statuses:
        newest[record.key.decode()] = container_pb2.ContainerStatusChanged.FromString(record.value).status
    for container in containers:
        status = newest[container.id]
        state = expected.states[container.id]
        assert state.last_reading is not None
        assert status.last_observe_time.ToDatetime(tzinfo=UTC) == state.last_reading.observe_time
        estimate = state.fill_estimate()
        assert status.HasField("fill_ratio_per_hour") == (estimate is not None)
        if estimate is not None:
            assert status.fill_ratio_per_hour == pytest.approx(estimate.rate_per_hour)
    assert {r.key.decode() for r in kpis} >= {f"container-fill/{c.id}" for c in containers}


async def _at_least(broker: str, topic: str, count: int) -> list[container_pb2.ContainerCollected]:
    records = [container_pb2.ContainerCollected.FromString(r.value) for r in await read_all(broker, topic)]
    return records if len(records) >= count else []


@ON_BOTH_BROKERS
async def test_kill_9_mid_stream_then_restart_publishes_every_alert_revision_exactly_once(
    broker: str, tmp_path: Path
) -> None:
    containers = casablanca(12)
    batches = day_of_readings(containers, _start(26), hours=24, per_batch=2)
    await KIT.kill_9_mid_stream(broker, tmp_path, records_of(batches), oracle(batches, containers).alerts)


async def test_bad_records_and_readings_are_dead_lettered_while_the_rest_raises_alerts(
    broker: str, tmp_path: Path
) -> None:
    good, other = casablanca(2)
    at = _start(1)
    fine = [Reading(good.id, at + timedelta(minutes=i), 0.9 + i / 100) for i in range(3)]
    bad_reading = Reading(good.id, at + timedelta(minutes=3), 1.5)
    await KIT.create_topics(broker)
    await produce_raw(broker, CONTAINER_LEVELS.name, good.id.encode(), b"\x12\xff\xfe not protobuf")
    unknown = container_pb2.ContainerLevelObservedBatch(
        container_id="cas-atlantis-h001", readings=[reading_to_pb(Reading("cas-atlantis-h001", at, 0.5))])
    foreign = container_pb2.ContainerLevelObservedBatch(  # a reading of another container inside the batch
        container_id=good.id, readings=[reading_to_pb(Reading(other.id, at, 0.5))])
    mixed = container_pb2.ContainerLevelObservedBatch(
        container_id=good.id, readings=[reading_to_pb(r) for r in (*fine, bad_reading)])
    await produce(broker, [
        (CONTAINER_LEVELS, "cas-atlantis-h001", unknown),
        (CONTAINER_LEVELS, good.id, foreign),
        (CONTAINER_LEVELS, other.id, mixed),  # keyed by another container than the batch's
        (CONTAINER_LEVELS, good.id, mixed),
    ])
    processor = KIT.start(broker, tmp_path)
    try:
        events = await wait_for_alerts(broker, 1, timeout_s=60)
        dead = await _until(lambda: _dead_letters(broker, 5))
    finally:
        processor.stop()

    assert [(e.rule_id, e.source.entity_id, alerts_pb2.Severity.Name(e.severity)) for e in events] == [
        ("container-full", good.id, "SEVERITY_WARNING")]
    reasons = sorted(dict(r.headers)[HEADER_DLQ_REASON].decode() for r in dead)
    assert len(reasons) == 5, reasons
    assert any("unknown container" in reason for reason in reasons)
    assert any("does not match" in reason for reason in reasons)  # key is not the batch's container
    assert any("in a batch of" in reason for reason in reasons)  # foreign reading
    assert any(reason.startswith("invalid: fill_ratio: 1.5") for reason in reasons)
    parked = [container_pb2.ContainerLevelObservedBatch.FromString(r.value) for r in dead
              if dict(r.headers)[HEADER_DLQ_REASON].decode().startswith("invalid")]
    assert [[m.fill_ratio for m in b.readings] for b in parked] == [[1.5]]  # only the bad reading


async def _dead_letters(broker: str, count: int) -> list:  # type: ignore[type-arg]
    records = await read_all(broker, CONTAINER_LEVELS.dead_letter.name)
    return records if len(records) >= count else []


async def test_a_silent_container_raises_data_gap_on_the_clock_tick_and_its_next_reading_clears_it(
    broker: str, tmp_path: Path
) -> None:
    container = casablanca(1)[0]
    long_ago = _start(5)  # silent for 5 h; it reports every hour
    await KIT.create_topics(broker)
    await produce(broker, records_of([[Reading(container.id, long_ago, 0.2)]]))
    processor = KIT.start(broker, tmp_path, extra_env={"MADINA_WASTE_TICK_INTERVAL_S": "1",
                                                       "MADINA_CITIES": '["casablanca"]'})
    try:
        raised = await _until(lambda: _data_gaps(broker, container.id, 1))
        await produce(broker, records_of([[Reading(container.id, _start(0), 0.25)]]))
        both = await _until(lambda: _data_gaps(broker, container.id, 2))
    finally:
        processor.stop()
    assert raised and [alerts_pb2.AlertState.Name(e.state) for e in both] == [
        "ALERT_STATE_RAISED", "ALERT_STATE_CLEARED"]
    assert Counter(e.rule_id for e in both) == Counter({"data-gap": 2})


async def _data_gaps(broker: str, container_id: str, count: int) -> list[alerts_pb2.AlertEvent]:
    events = [e for e in await alert_events(broker) if e.source.entity_id == container_id]
    return events if len(events) >= count else []
