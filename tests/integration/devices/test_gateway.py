"""The MQTT gateway end to end: a real Mosquitto, a real MQTT client, the gateway process, a Kafka broker."""

from __future__ import annotations

import asyncio
from pathlib import Path

from madina.bus.producer import HEADER_DLQ_REASON
from madina.devservers.mosquitto import MosquittoServer
from services.devices.topics import HEADER_MQTT_TOPIC
from services.waste.topics import CONTAINER_LEVELS
from tests.integration.devices.conftest import DEVICE_USER, GATEWAY_USER
from tests.integration.devices.gateway_kit import (
    AIR_TOPIC,
    CHIRPSTACK_TOPIC,
    DLQ,
    TTS_TOPIC,
    air_observations,
    air_reading,
    chirpstack_lpp_uplink,
    container_readings,
    publish,
    start_gateway,
    tts_fill_uplink,
    wait_for_records,
)

AIR_QUALITY = "environment.air-quality.v1"


def test_direct_chirpstack_and_tts_messages_reach_their_domains_topics_and_bad_ones_are_dead_lettered(
    tmp_path: Path, mosquitto: MosquittoServer, broker: str
) -> None:
    gateway = start_gateway(tmp_path, mosquitto, GATEWAY_USER, broker, protocol="5")
    try:
        assert gateway.health()[1]["mqtt"] == "ok"
        messages = [
            (AIR_TOPIC, air_reading(12.5)),
            (CHIRPSTACK_TOPIC, chirpstack_lpp_uplink(0.42, 21.5, 87)),
            (AIR_TOPIC, air_reading(9999.0)),  # out of the measurand's range: the domain's own check refuses it
            (TTS_TOPIC, tts_fill_uplink(75, -3.5, 60, lid_open=True)),
            ("madina/berkane/waste/container-level/ghost-sensor", b"{}"),  # not in the registry
            (CHIRPSTACK_TOPIC, b'{"data": "not base64!"}'),
            (AIR_TOPIC, air_reading(14.0, offset_s=1)),
        ]
        asyncio.run(publish(mosquitto, DEVICE_USER, messages))

        air = air_observations(asyncio.run(wait_for_records(broker, AIR_QUALITY, 2)))
        assert sorted(o.pm25_ugm3 for o in air) == [12.5, 14.0]
        assert {o.station_id for o in air} == {"brk-air-al-quds"}

        readings = container_readings(asyncio.run(wait_for_records(broker, CONTAINER_LEVELS.name, 2)))
        by_container = {r.container_id: r for r in readings}
        assert sorted(by_container) == ["brk-centre-ville-h001", "brk-centre-ville-h002"]
        lpp = by_container["brk-centre-ville-h001"]
        assert (lpp.fill_ratio, lpp.temperature_c, lpp.battery_percent) == (0.42, 21.5, 87.0)
        frame = by_container["brk-centre-ville-h002"]
        assert (frame.fill_ratio, frame.temperature_c, frame.battery_percent, frame.lid_open) == (
            0.75, -3.5, 60.0, True)

        dead = asyncio.run(wait_for_records(broker, DLQ, 3))
        reasons = {dict(r.headers)[HEADER_DLQ_REASON].decode(): r for r in dead}
        assert len(dead) == 3, sorted(reasons)
        out_of_range = next(r for reason, r in reasons.items() if reason.startswith("invalid value"))
        assert "pm25_ugm3" in dict(out_of_range.headers)[HEADER_DLQ_REASON].decode()
        assert b'"pm25_ugm3": 9999.0' in out_of_range.value  # the original bytes
        assert dict(out_of_range.headers)[HEADER_MQTT_TOPIC] == AIR_TOPIC.encode()
        assert any(reason.startswith("device refused: unknown device 'ghost-sensor'") for reason in reasons)
        assert any(reason.startswith("malformed message: data: not valid base64") for reason in reasons)
    finally:
        gateway.process.stop()
