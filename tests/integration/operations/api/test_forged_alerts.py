"""Forged alert events, on the embedded broker and on Apache Kafka.

A record on ``alerts.v1`` with a real alert id and a huge revision, unsigned or signed with
another key, is dead-lettered with the reason, as is an unsigned "resolve" on
``alerts.actions.v1``; the real next revision still reaches operations, ``rebuild`` replays past
the forgery, and a processor's ledger re-read from the topic does not count it (so the processor
would still publish its real revisions).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from madina.bus import ALERT_ACTIONS, ALERTS, EventProducer
from madina.bus.alert_events import AlertLedger
from madina.bus.codec import standard_headers
from madina.bus.producer import HEADER_DLQ_REASON
from madina.bus.signing import RecordSigner, configured_signer
from madina.bus.topics import TopicSpec
from madina_proto.alerts.v1 import alerts_pb2
from services.operations.api.ingest import rebuild_store
from services.operations.store import AlertStore, migrate
from tests.support.operations import RunningService, alert_event, eventually, new_id, running_service

FORGED_REVISION = 1_000_000


@pytest.fixture
def signing_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """This process (test and in-process operations service alike) signs and checks with a key."""
    key_file = tmp_path / "alert-signing.key"
    key_file.write_text("k" * 64)
    monkeypatch.setenv("MADINA_ALERT_SIGNING_KEY_FILE", str(key_file))
    configured_signer.cache_clear()
    yield key_file
    configured_signer.cache_clear()


@pytest.fixture(params=["embedded", "apache-kafka"])
def bootstrap(request: pytest.FixtureRequest) -> str:
    """The session's broker of each kind (records are told apart by their unique alert id)."""
    if request.param == "apache-kafka":
        return request.getfixturevalue("apache_kafka").bootstrap  # type: ignore[no-any-return]
    return request.getfixturevalue("kafka_bootstrap")  # type: ignore[no-any-return]


@pytest.fixture
def service(bootstrap: str, signing_key: Path, tmp_path: Path) -> Iterator[RunningService]:
    with running_service(tmp_path, bootstrap, f"sqlite:///{tmp_path / 'operations.db'}") as running:
        yield running


async def _forge(
    bootstrap: str, message: alerts_pb2.AlertEvent | alerts_pb2.AlertAction, signer: RecordSigner | None,
    spec: TopicSpec = ALERTS,
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        key, value = message.alert_id.encode(), message.SerializeToString()
        headers = standard_headers(spec, "forger")
        if signer is not None:
            headers += signer.headers(spec.name, key, value)
        await producer.send_and_wait(spec.name, value, key=key, headers=headers)
    finally:
        await producer.stop()


async def _dead_letter_reasons(
    bootstrap: str, alert_id: str, count: int, spec: TopicSpec = ALERTS
) -> list[str]:
    consumer = AIOKafkaConsumer(
        spec.dead_letter.name, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    reasons: list[str] = []
    try:
        async with asyncio.timeout(20):
            while len(reasons) < count:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    reasons += [dict(record.headers)[HEADER_DLQ_REASON].decode() for record in records
                                if record.key == alert_id.encode()]
    finally:
        await consumer.stop()
    return reasons


async def _alert(service: RunningService, alert_id: str) -> dict[str, Any] | None:
    async with service.http() as client:
        reply = await client.get(f"/api/v1/alerts/{alert_id}")
    return reply.json()["alert"] if reply.status_code == 200 else None  # type: ignore[no-any-return]


async def _revision(service: RunningService, alert_id: str) -> int | None:
    alert = await _alert(service, alert_id)
    return int(alert["revision"]) if alert is not None else None


async def test_forged_revisions_are_dead_lettered_and_real_revisions_keep_flowing(
    service: RunningService, tmp_path: Path
) -> None:
    bootstrap = service.settings.bootstrap_servers
    alert_id = new_id("forged")
    async with EventProducer(bootstrap, source="environment-processor") as producer:
        await producer.send_and_wait(ALERTS, alert_id, alert_event(alert_id, revision=1))
        assert await eventually(lambda: _revision(service, alert_id), timeout_s=20) == 1

        forged = alert_event(alert_id, revision=FORGED_REVISION, state=alerts_pb2.ALERT_STATE_CLEARED)
        await _forge(bootstrap, forged, signer=None)
        await _forge(bootstrap, forged, signer=RecordSigner(b"an attacker's guess at the key, 32+ bytes"))
        forged_resolve = alerts_pb2.AlertAction(
            action_id=new_id("forged-resolve"), alert_id=alert_id, action_type=alerts_pb2.ALERT_ACTION_TYPE_RESOLVE,
            actor="operator")
        forged_resolve.action_time.GetCurrentTime()
        await _forge(bootstrap, forged_resolve, signer=None, spec=ALERT_ACTIONS)
        await producer.send_and_wait(ALERTS, alert_id, alert_event(alert_id, revision=2))

    async def real_revision_two() -> bool:
        return await _revision(service, alert_id) == 2

    assert await eventually(real_revision_two, timeout_s=20)
    reasons = await _dead_letter_reasons(bootstrap, alert_id, 2)
    assert sorted(reasons) == [
        "signature does not match the record on alerts.v1: forged or altered",
        "unsigned record on alerts.v1: only the platform's producers may publish there",
    ]
    assert await _dead_letter_reasons(bootstrap, alert_id, 1, ALERT_ACTIONS) == [
        "unsigned record on alerts.actions.v1: only the platform's producers may publish there"]
    alert = await _alert(service, alert_id)
    assert alert is not None and alert["status"] != "resolved" and alert["active"]
    async with service.http() as client:  # the operator's own actions are signed by operations
        ack = await client.post(f"/api/v1/alerts/{alert_id}/ack", json={})
    assert ack.status_code == 200, ack.text
    assert ack.json()["alert"]["status"] == "active_acknowledged"

    ledger = AlertLedger("environment")
    await ledger.load(bootstrap, timeout_s=30)
    assert ledger.revisions()[alert_id] == 2
    assert not ledger.already_published(alert_id, 3)

    rebuilt_url = f"sqlite:///{tmp_path / 'rebuilt.db'}"
    migrate(rebuilt_url)
    with AlertStore(rebuilt_url) as rebuilt:
        await rebuild_store(bootstrap, rebuilt)
        detail = rebuilt.get(alert_id)
        assert detail is not None and detail.alert.revision == 2
