"""Poison records on every topic operations consumes, over a real broker (TCP).

``alerts.v1`` and ``alerts.actions.v1``: dead-lettered with the reason, the consumer goes on, and
``rebuild`` replays past them. ``kpis.v1`` (compacted): skipped by the reader, never served.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from google.protobuf.message import Message

from madina.bus import ALERT_ACTIONS, ALERTS, KPIS, EventProducer
from madina.bus.codec import standard_headers
from madina.bus.producer import HEADER_DLQ_REASON
from madina.bus.topics import TopicSpec
from madina_proto.alerts.v1 import alerts_pb2
from madina_proto.kpis.v1 import kpis_pb2
from services.operations.api.ingest import rebuild_store
from services.operations.store import AlertStore, migrate
from tests.support.operations import RunningService, alert_event, eventually, new_id, running_service
from tests.support.processes import BrokerProcess

FAR_FUTURE_S = 10**12


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    directory = tmp_path_factory.mktemp("operations-poison")
    broker = BrokerProcess.start(memory=True, default_partitions=2)
    try:
        with running_service(directory, broker.bootstrap, f"sqlite:///{directory / 'operations.db'}") as running:
            yield running
    finally:
        broker.stop()


async def _produce_raw(bootstrap: str, spec: TopicSpec, key: str, message: Message, *, typed: bool = True) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        headers = standard_headers(spec, "poison") if typed else []
        await producer.send_and_wait(spec.name, message.SerializeToString(), key=key.encode(), headers=headers)
    finally:
        await producer.stop()


async def _dead_letter_reasons(bootstrap: str, spec: TopicSpec, keys: set[str]) -> dict[str, str]:
    consumer = AIOKafkaConsumer(
        spec.dead_letter.name, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    found: dict[str, str] = {}
    try:
        async with asyncio.timeout(15):
            while not keys <= set(found):
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for record in records:
                        found[(record.key or b"").decode()] = dict(record.headers)[HEADER_DLQ_REASON].decode()
    finally:
        await consumer.stop()
    return found


async def _get(service: RunningService, path: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    async with service.http() as client:
        reply = await client.get(path)
    return reply.status_code, reply.json()


async def test_poison_alert_events_and_actions_are_dead_lettered_and_the_consumer_goes_on(
    service: RunningService, tmp_path: Path
) -> None:
    bootstrap = service.settings.bootstrap_servers
    beyond = alert_event(new_id("beyond"))
    beyond.event_time.seconds = FAR_FUTURE_S  # once stopped operations on every start
    bad_nanos = alert_event(new_id("nanos"))
    bad_nanos.raise_time.nanos = -1
    not_a_number = alert_event(new_id("nan"), observed=float("nan"))
    off_globe = alert_event(new_id("globe"))
    off_globe.location.latitude_deg = 400.0
    unknown_severity = alert_event(new_id("severity"), severity=77)
    for poison in (beyond, bad_nanos, not_a_number, off_globe, unknown_severity):
        await _produce_raw(bootstrap, ALERTS, poison.alert_id, poison)
    wrong_type = alerts_pb2.AlertAction(action_id="a", alert_id=new_id("wrong-type"),
                                        action_type=alerts_pb2.ALERT_ACTION_TYPE_RESOLVE, actor="x")
    await _produce_raw(bootstrap, ALERTS, wrong_type.alert_id, wrong_type, typed=False)
    action = alerts_pb2.AlertAction(action_id=new_id("action"), alert_id=new_id("acted"),
                                    action_type=alerts_pb2.ALERT_ACTION_TYPE_COMMENT, actor="x", text="hi")
    action.action_time.seconds = -FAR_FUTURE_S
    await _produce_raw(bootstrap, ALERT_ACTIONS, action.alert_id, action)
    good = new_id("good")
    async with EventProducer(bootstrap, source="test") as producer:
        await producer.send_and_wait(ALERTS, good, alert_event(good))

    assert await eventually(lambda: _alert_exists(service, good), timeout_s=20)
    reasons = await _dead_letter_reasons(bootstrap, ALERTS, {
        beyond.alert_id, bad_nanos.alert_id, not_a_number.alert_id, off_globe.alert_id,
        unknown_severity.alert_id, wrong_type.alert_id})
    assert "event_time" in reasons[beyond.alert_id]
    assert "raise_time" in reasons[bad_nanos.alert_id]
    assert "observed_value" in reasons[not_a_number.alert_id]
    assert "latitude" in reasons[off_globe.alert_id]
    assert "severity" in reasons[unknown_severity.alert_id]
    assert "no content-type header" in reasons[wrong_type.alert_id]
    action_reasons = await _dead_letter_reasons(bootstrap, ALERT_ACTIONS, {action.alert_id})
    assert "action_time" in action_reasons[action.alert_id]
    assert (await _get(service, "/healthz"))[0] == 200

    rebuilt_url = f"sqlite:///{tmp_path / 'rebuilt.db'}"
    migrate(rebuilt_url)
    with AlertStore(rebuilt_url) as rebuilt:
        assert await rebuild_store(bootstrap, rebuilt) > 0
        assert rebuilt.get(good) is not None
        assert rebuilt.get(beyond.alert_id) is None


async def _alert_exists(service: RunningService, alert_id: str) -> bool:
    return (await _get(service, f"/api/v1/alerts/{alert_id}"))[0] == 200


async def test_a_kpi_that_cannot_be_served_is_skipped_and_the_last_good_value_stays(
    service: RunningService,
) -> None:
    bootstrap = service.settings.bootstrap_servers
    entity = new_id("station")
    good = kpis_pb2.KpiObserved(domain="environment", kpi_id="aqi", display_name="AQI", value=42.0)
    good.entity.entity_id = entity
    good.observe_time.seconds = 1_700_000_000
    beyond = kpis_pb2.KpiObserved()
    beyond.CopyFrom(good)
    beyond.observe_time.seconds = FAR_FUTURE_S  # once made GET /api/v1/kpis answer 500 for good
    not_a_number = kpis_pb2.KpiObserved()
    not_a_number.CopyFrom(good)
    not_a_number.value = float("inf")
    marker = kpis_pb2.KpiObserved(domain="environment", kpi_id="aqi", value=7.0)
    marker.entity.entity_id = new_id("marker")
    for record in (good, beyond, not_a_number):
        await _produce_raw(bootstrap, KPIS, f"aqi/{entity}", record)
    await _produce_raw(bootstrap, KPIS, f"aqi/{marker.entity.entity_id}", marker)

    async def served() -> dict | None:  # type: ignore[type-arg]
        status, body = await _get(service, "/api/v1/kpis")
        assert status == 200, body
        rows = {(row["entity"] or {}).get("entity_id"): row for row in body["indicators"]}
        return rows if marker.entity.entity_id in rows else None

    rows = await eventually(served, timeout_s=20)
    assert rows[entity]["value"] == 42.0
