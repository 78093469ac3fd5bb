"""A gateway killed -9 mid-stream: QoS 1 redelivers what it had not acknowledged, and the waste
processor downstream still publishes each alert revision exactly once.

A reading whose Kafka record was acknowledged but whose PUBACK was lost with the gateway comes
again and is produced again: the topic may hold it twice. The oracle is therefore the processor's
own pure step fed the topic's records as they are, duplicates included; the processor's alerts
must equal that exactly, none doubled.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from madina.devservers.mosquitto import MosquittoServer
from services.waste.processor.app import waste_processor
from services.waste.settings import WasteProcessorSettings
from services.waste.topics import CONTAINER_LEVELS
from tests.integration.devices.conftest import DEVICE_USER, GATEWAY_USER
from tests.integration.devices.gateway_kit import (
    TTS_TOPIC,
    container_readings,
    publish,
    records,
    start_gateway,
    tts_fill_uplink,
)
from tests.integration.waste.harness import KIT
from tests.support.processor_kit import assert_exactly_once, expected_from_step, settled_alerts

CONTAINER = "brk-centre-ville-h002"  # the TTS device's container in the shipped registry
# Fill cycles: raised at 80 % (median of 3), escalated at 95 %, cleared by the emptying.
CYCLE = (10, 30, 50, 70, 82, 86, 90, 96, 97, 98, 5)


async def test_alerts_stay_single_when_the_gateway_is_killed_mid_stream_and_qos1_redelivers(
    broker: str, mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    await KIT.create_topics(broker)
    processor = KIT.start(broker, tmp_path / "processor")
    gateway = start_gateway(tmp_path / "first", mosquitto, GATEWAY_USER, broker, protocol="5")
    second = None
    try:
        fills = [CYCLE[i % len(CYCLE)] for i in range(len(CYCLE) * 24)]
        messages = [(TTS_TOPIC, tts_fill_uplink(fill, 21.0, 80, False)) for fill in fills]
        publishing = asyncio.create_task(publish(mosquitto, DEVICE_USER, messages, pause_s=0.01))
        await _until(lambda found: len(found) >= 60, broker)
        gateway.process.kill()  # kill -9 while readings stream in
        assert not publishing.done(), "the stream ended before the kill: nothing was in flight"
        await publishing
        second = start_gateway(tmp_path / "second", mosquitto, GATEWAY_USER, broker, protocol="5")
        readings = await _until(lambda found: len({r.observe_time.ToNanoseconds() for r in found}) >= len(fills),
                                broker)
        assert len({r.observe_time.ToNanoseconds() for r in readings}) == len(fills), "a reading was lost"

        on_topic = await records(broker, CONTAINER_LEVELS.name)
        batches = [(CONTAINER_LEVELS, record.key.decode(), CONTAINER_LEVELS.message_type.FromString(record.value))
                   for record in sorted(on_topic, key=lambda record: record.offset)]
        expected = expected_from_step(waste_processor(WasteProcessorSettings()), batches, datetime.now(UTC))
        assert sum(expected.values()) >= 24 * 3, expected  # each cycle: raised, escalated, cleared
        events = await settled_alerts(broker, sum(expected.values()), timeout_s=90, settle_s=3)
    finally:
        for process in (gateway.process, *([second.process] if second else [])):
            process.stop()
        processor.stop()
    assert_exactly_once([e for e in events if e.source.entity_id == CONTAINER], expected)


async def _until(check, broker: str, timeout_s: float = 60.0):  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        found = container_readings(await records(broker, CONTAINER_LEVELS.name))
        if check(found) or loop.time() > deadline:
            return found
        await asyncio.sleep(0.3)
