"""ExactlyOnceAlerts' send path (madina.streams): an alert goes straight to the app's producer with
its standard and signing headers, once per (alert id, revision), is staged in the outbox and
forgotten there only once acknowledged; a failed send stays in the outbox and is logged. And the
assignment it sweeps outboxes for is read again whenever faust replaced it. A fake producer and
assignor stand in for faust's; no broker."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from faust.types import TP

from madina.bus.codec import HEADER_CONTENT_TYPE, HEADER_EVENT_TIME, HEADER_SOURCE, decode, header
from madina.bus.signing import HEADER_SIGNATURE, RecordSigner, configured_signer
from madina.bus.topics import ALERTS
from madina.streams import ExactlyOnceAlerts
from madina_proto.alerts.v1 import alerts_pb2


class HeldProducer:
    """Records every send; each send's future resolves when the test says so."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes, Any]] = []
        self.futures: list[asyncio.Future[Any]] = []

    async def send(self, topic: str, key: bytes, value: bytes, partition: int | None, timestamp: float | None,
                   headers: Any) -> asyncio.Future[Any]:
        self.sent.append((topic, key, value, headers))
        self.futures.append(asyncio.get_running_loop().create_future())
        return self.futures[-1]


class FakeApp:
    def __init__(self) -> None:
        self.producer = HeldProducer()
        self.assignor: Any = None

    def timer(self, interval: float) -> Any:
        return lambda function: function


def alert(alert_id: str, revision: int) -> alerts_pb2.AlertEvent:
    event = alerts_pb2.AlertEvent(alert_id=alert_id, revision=revision, domain="waste", message=f"r{revision}")
    event.event_time.FromMilliseconds(1_700_000_000_123)
    return event


def exactly_once(app: FakeApp) -> ExactlyOnceAlerts:
    return ExactlyOnceAlerts(app, {}, domain="waste", source="waste-processor", bootstrap="unused:9092",  # type: ignore[arg-type]
                             input_topics=(), outbox_of=lambda value: None, partitions_of=lambda value: set())


async def test_an_alert_goes_to_the_producer_once_with_its_headers_and_leaves_the_outbox_once_acknowledged() -> None:
    app = FakeApp()
    alerts = exactly_once(app)
    outbox: dict[str, str] = {}
    await alerts.publish(outbox, [alert("a", 1), alert("a", 1)])  # a replayed revision is not sent again

    [(topic, key, value, headers)] = app.producer.sent
    assert (topic, key) == (ALERTS.name, b"a")
    assert decode(ALERTS, value, headers, require_type=True) == alert("a", 1)
    assert header(headers, HEADER_SOURCE) == b"waste-processor"
    assert header(headers, HEADER_EVENT_TIME) == b"1700000000123"
    assert header(headers, HEADER_CONTENT_TYPE) == ALERTS.content_type.encode()
    assert list(outbox) == ["a#1"]

    await alerts.publish(outbox, [])
    assert list(outbox) == ["a#1"], "not acknowledged yet: a crash now must still find it in the stored state"
    app.producer.futures[0].set_result(None)
    await asyncio.sleep(0)
    await alerts.publish(outbox, [])
    assert outbox == {}


async def test_a_failed_send_stays_in_the_outbox_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    app = FakeApp()
    alerts = exactly_once(app)
    outbox: dict[str, str] = {}
    await alerts.publish(outbox, [alert("a", 1), alert("b", 1)])
    app.producer.futures[0].set_exception(RuntimeError("broker gone"))
    app.producer.futures[1].cancel()
    with caplog.at_level(logging.ERROR, logger="madina.streams"):
        await asyncio.sleep(0)
    await alerts.publish(outbox, [])

    assert sorted(outbox) == ["a#1", "b#1"]
    failures = [(record.alert_id, record.error) for record in caplog.records  # type: ignore[attr-defined]
                if record.getMessage() == "alert send failed; left in the outbox"]
    assert failures == [("a", "RuntimeError('broker gone')"), ("b", "cancelled")]


async def test_an_alert_carries_the_platform_signature_when_a_key_is_configured(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    key_file = tmp_path / "signing.key"
    key_file.write_bytes(b"k" * 32)
    monkeypatch.setenv("MADINA_ALERT_SIGNING_KEY_FILE", str(key_file))
    configured_signer.cache_clear()
    try:
        app = FakeApp()
        await exactly_once(app).publish({}, [alert("a", 1)])
        [(topic, key, value, headers)] = app.producer.sent
        assert header(headers, HEADER_SIGNATURE) == RecordSigner(b"k" * 32).signature(topic, key, value)
        assert decode(ALERTS, value, headers, key) == alert("a", 1)
    finally:
        configured_signer.cache_clear()


class Assignor:
    """faust's assignor as the runner reads it: an assignment object replaced at each assignment."""

    def __init__(self) -> None:
        self._assignment: object = object()
        self.actives: set[TP] = set()
        self.reads = 0

    def assign(self, *actives: TP) -> None:
        self._assignment, self.actives = object(), set(actives)

    def assigned_actives(self) -> set[TP]:
        self.reads += 1
        return set(self.actives)


async def test_a_new_assignment_of_the_inputs_is_seen_at_the_next_record_and_only_then_read_again() -> None:
    app = FakeApp()
    app.assignor = assignor = Assignor()
    alerts = ExactlyOnceAlerts(app, {}, domain="waste", source="waste-processor", bootstrap="unused:9092",  # type: ignore[arg-type]
                               input_topics=("in",), outbox_of=lambda value: None, partitions_of=lambda value: set())
    assignor.assign(TP("in", 0), TP("in", 1), TP("other", 0))
    assert alerts._active_assignment() == {TP("in", 0), TP("in", 1)}
    assert alerts._active_assignment() == {TP("in", 0), TP("in", 1)}
    assert assignor.reads == 1
    assignor.assign(TP("in", 1))
    assert alerts._active_assignment() == {TP("in", 1)}
