"""The consumer: alerts and actions from the bus into the store, dead letters, and rebuilding.

Each dialect gets a fresh broker process and a fresh store for this module, since topic names are
fixed; tests use their own alert ids so they never see each other's alerts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from madina.bus import ALERT_ACTIONS, ALERTS, EventProducer
from madina.bus.producer import HEADER_DLQ_REASON
from madina_proto.alerts.v1 import alerts_pb2
from services.operations.api.ingest import rebuild_store
from services.operations.domain import AlertFilter
from services.operations.store import AlertStore, migrate
from tests.support.operations import (
    RunningService,
    alert_event,
    eventually,
    new_id,
    postgres_schema_url,
    running_service,
)
from tests.support.processes import BrokerProcess


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    directory = tmp_path_factory.mktemp(f"operations-consumer-{request.param}")
    with postgres_schema_url() as postgres:
        if request.param == "sqlite":
            url = f"sqlite:///{directory / 'operations.db'}"
        elif postgres is None:
            pytest.skip("PostgreSQL tests skipped: MADINA_TEST_POSTGRES_URL is not set or unreachable")
        else:
            url = postgres
        broker = BrokerProcess.start(memory=True, default_partitions=2)
        try:
            with running_service(directory, broker.bootstrap, url) as running:
                running.bootstrap = broker.bootstrap  # type: ignore[attr-defined]
                yield running
        finally:
            broker.stop()


async def _alert(service: RunningService, alert_id: str) -> dict | None:
    async with service.http() as client:
        reply = await client.get(f"/api/v1/alerts/{alert_id}")
    return reply.json() if reply.status_code == 200 else None


async def test_same_event_twice_makes_one_alert_with_one_history_entry(service: RunningService) -> None:
    alert_id = new_id()
    event = alert_event(alert_id)
    async with EventProducer(service.settings.bootstrap_servers, source="test") as producer:
        await producer.send_and_wait(ALERTS, alert_id, event)
        # Same key, so same partition: once revision 2 is in, both copies of revision 1 were read.
        await producer.send_and_wait(ALERTS, alert_id, alert_event(alert_id, revision=2))
    detail = await eventually(lambda: _revision_two(service, alert_id))
    assert [entry["kind"] for entry in detail["history"]] == ["event", "event"]
    assert [entry["detail"]["revision"] for entry in detail["history"]] == [1, 2]


async def _revision_two(service: RunningService, alert_id: str) -> dict | None:
    detail = await _alert(service, alert_id)
    return detail if detail and detail["alert"]["revision"] == 2 else None


async def test_garbage_goes_to_dead_letter_with_reason_and_next_event_still_applies(
    service: RunningService,
) -> None:
    bad_key = new_id("garbage")
    good_id = new_id()
    raw = AIOKafkaProducer(bootstrap_servers=service.settings.bootstrap_servers)
    await raw.start()
    try:
        await raw.send_and_wait(ALERTS.name, b"\xff\xfe not protobuf", key=bad_key.encode())
        # Decodes, but breaks the contract: revision 0 and no times.
        invalid = alerts_pb2.AlertEvent(alert_id=new_id("invalid"), revision=0)
        await raw.send_and_wait(ALERTS.name, invalid.SerializeToString(), key=invalid.alert_id.encode())
    finally:
        await raw.stop()
    async with EventProducer(service.settings.bootstrap_servers, source="test") as producer:
        await producer.send_and_wait(ALERTS, good_id, alert_event(good_id))

    assert (await eventually(lambda: _alert(service, good_id)))["alert"]["alert_id"] == good_id
    reasons = await _dead_letters(service.settings.bootstrap_servers, {bad_key, invalid.alert_id})
    assert "not a valid madina.alerts.v1.AlertEvent" in reasons[bad_key]
    assert "has no event or raise time" in reasons[invalid.alert_id]
    assert await _alert(service, invalid.alert_id) is None


async def _dead_letters(bootstrap: str, keys: set[str], timeout_s: float = 10.0) -> dict[str, str]:
    consumer = AIOKafkaConsumer(
        ALERTS.dead_letter.name,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: dict[str, str] = {}
    try:
        async with asyncio.timeout(timeout_s):
            while not keys <= set(found):
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        key = (record.key or b"").decode()
                        headers = dict(record.headers)
                        found[key] = headers.get(HEADER_DLQ_REASON, b"").decode()
    finally:
        await consumer.stop()
    return found


async def test_actions_for_the_alert_apply_through_the_bus(service: RunningService) -> None:
    alert_id = new_id()
    async with EventProducer(service.settings.bootstrap_servers, source="test") as producer:
        await producer.send_and_wait(ALERTS, alert_id, alert_event(alert_id))
    await eventually(lambda: _alert(service, alert_id))
    async with service.http() as client:
        reply = await client.post(f"/api/v1/alerts/{alert_id}/ack", json={})
    assert reply.status_code == 200, reply.text
    assert reply.json()["alert"]["status"] == "active_acknowledged"
    assert reply.json()["alert"]["acknowledged_by"] == "operator"


async def test_rebuild_from_topics_equals_live_store(
    service: RunningService, tmp_path_factory: pytest.TempPathFactory
) -> None:
    alert_id = new_id()
    async with EventProducer(service.settings.bootstrap_servers, source="test") as producer:
        await producer.send_and_wait(ALERTS, alert_id, alert_event(alert_id))
        await producer.send_and_wait(
            ALERTS,
            alert_id,
            alert_event(
                alert_id,
                revision=2,
                observed=60.0,
                severity=alerts_pb2.SEVERITY_CRITICAL,
                state=alerts_pb2.ALERT_STATE_ESCALATED,
            ),
        )
    await eventually(lambda: _revision_two(service, alert_id))
    async with service.http() as client:
        assert (
            await client.post(f"/api/v1/alerts/{alert_id}/comment", json={"text": "crew sent"})
        ).status_code == 200
        assert (
            await client.post(f"/api/v1/alerts/{alert_id}/resolve", json={"note": "fixed"})
        ).status_code == 200
    live = AlertStore(service.settings.database_url)
    url = f"sqlite:///{tmp_path_factory.mktemp('rebuild') / 'rebuilt.db'}"
    migrate(url)
    rebuilt = AlertStore(url)
    try:
        changes = await rebuild_store(service.settings.bootstrap_servers, rebuilt)
        assert changes > 0
        assert _all_alerts(rebuilt) == _all_alerts(live)
        assert rebuilt.get(alert_id).alert.resolved_by == "operator"  # type: ignore[union-attr]
        with pytest.raises(ValueError, match="empty store"):
            await rebuild_store(service.settings.bootstrap_servers, rebuilt)
    finally:
        live.close()
        rebuilt.close()


def _all_alerts(store: AlertStore) -> dict[str, object]:
    alerts: dict[str, object] = {}
    token = ""
    while True:
        page = store.list_alerts(AlertFilter(), limit=500, page_token=token)
        alerts.update({alert.alert_id: alert for alert in page.alerts})
        token = page.next_page_token
        if not token:
            return alerts


async def test_action_topic_record_is_the_audit_trail(service: RunningService) -> None:
    alert_id = new_id()
    async with EventProducer(service.settings.bootstrap_servers, source="test") as producer:
        await producer.send_and_wait(ALERTS, alert_id, alert_event(alert_id))
    await eventually(lambda: _alert(service, alert_id))
    async with service.http() as client:
        reply = await client.post(f"/api/v1/alerts/{alert_id}/assign", json={"assignee": "casa-env-oncall"})
    action_id = reply.json()["action_id"]
    consumer = AIOKafkaConsumer(
        ALERT_ACTIONS.name,
        bootstrap_servers=service.settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        async with asyncio.timeout(10):
            while True:
                batches = await consumer.getmany(timeout_ms=500)
                actions = [alerts_pb2.AlertAction.FromString(r.value) for rs in batches.values() for r in rs]
                mine = [a for a in actions if a.action_id == action_id]
                if mine:
                    break
    finally:
        await consumer.stop()
    assert mine[0].alert_id == alert_id
    assert mine[0].actor == "operator"
    assert mine[0].assignee == "casa-env-oncall"
    assert mine[0].action_type == alerts_pb2.ALERT_ACTION_TYPE_ASSIGN
