"""A persistent session's backlog arrives before the SUBACK: the gateway handles and acknowledges it
while its subscriptions are pending, instead of waiting for them first (which, against a backlog
that took longer than the MQTT timeout to read, reconnected for ever and published nothing)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import aiomqtt
import pytest

from services.devices.domain.registry import DeviceEntry, DeviceRegistry
from services.devices.domain.topics import SUBSCRIPTIONS
from services.devices.gateway.inbox import Inbox
from services.devices.gateway.ingest import DomainData
from services.devices.gateway.main import MqttGateway
from services.devices.settings import DevicesSettings
from tests.unit.devices.test_gateway_lateness import RecordingProducer

CONTAINER = "brk-centre-ville-h001"
DEVICE = "bin-h001"


def backlog(count: int) -> list[aiomqtt.Message]:
    body = {"container_id": CONTAINER, "observe_time": datetime.now(UTC).isoformat(), "fill_ratio": 0.5}
    return [aiomqtt.Message(f"madina/berkane/waste/container-level/{DEVICE}", json.dumps(body).encode(), qos=1,
                            retain=False, mid=mid, properties=None) for mid in range(1, count + 1)]


class SessionWithBacklog:
    """Stands in for aiomqtt.Client on a persistent session: the queued messages reach the inbox on
    connecting, and the SUBACK comes only once they are acknowledged (the slowest a broker can be)."""

    def __init__(self, inbox: Inbox, queued: list[aiomqtt.Message]) -> None:
        self.inbox, self.queued = inbox, queued
        self.acked: list[int] = []
        self.subscribed: list[str] = []
        self.backlog_acked = asyncio.Event()
        self.all_subscribed = asyncio.Event()
        self.lost = asyncio.Event()
        self._client = self  # where the gateway finds paho's ack

    async def __aenter__(self) -> SessionWithBacklog:
        for message in self.queued:
            self.inbox.put_nowait(message)
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        return None

    def ack(self, mid: int, qos: int) -> None:
        self.acked.append(mid)
        if len(self.acked) >= len(self.queued):
            self.backlog_acked.set()

    async def subscribe(self, topic: str, qos: int, **_: Any) -> None:
        await self.backlog_acked.wait()
        self.subscribed.append(topic)
        if len(self.subscribed) == len(SUBSCRIPTIONS):
            self.all_subscribed.set()

    @property
    def messages(self) -> Any:
        async def until_lost() -> Any:
            await self.lost.wait()
            raise aiomqtt.MqttError("connection lost")
            yield  # an async generator, as client.messages is

        return until_lost()


async def test_a_backlog_that_comes_before_the_suback_is_handled_and_acknowledged_in_order() -> None:
    queued = backlog(25)
    registry = DeviceRegistry({DEVICE: DeviceEntry(DEVICE, "waste", "container-level", CONTAINER)}, {})
    producer = RecordingProducer()
    gateway = MqttGateway(DevicesSettings(devices_mqtt_anonymous=True, devices_batch_max=10), registry,
                          producer, DomainData(cities=["berkane"]))  # type: ignore[arg-type]
    sessions: list[SessionWithBacklog] = []

    def connect(inbox: Inbox) -> SessionWithBacklog:
        sessions.append(SessionWithBacklog(inbox, queued))
        return sessions[-1]

    gateway._client = connect  # type: ignore[method-assign,assignment]
    running = asyncio.create_task(gateway._session())
    await asyncio.sleep(0)  # connects
    session = sessions[0]
    await asyncio.wait_for(session.all_subscribed.wait(), 10)  # never, had the gateway waited for the SUBACK first

    assert session.acked == [m.mid for m in queued]
    assert producer.dead == [] and {key for _, key in producer.sent} == {CONTAINER}
    assert session.subscribed == list(SUBSCRIPTIONS)
    assert gateway.connected

    session.lost.set()
    with pytest.raises(aiomqtt.MqttError, match="connection lost"):
        await asyncio.wait_for(running, 5)
