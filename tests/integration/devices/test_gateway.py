"""The MQTT gateway end to end: a real Mosquitto, a real MQTT client, the gateway process, a Kafka broker.

The tests share one Mosquitto, one embedded broker and one gateway (a gateway takes ~15 s to
import the domains on a loaded machine); they run in file order, the last one kills the gateway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from madina.bus.producer import HEADER_DLQ_REASON
from madina.devservers.mosquitto import MosquittoServer
from madina_proto.mobility.v1.events_pb2 import ParkingOccupancyObserved
from services.devices.topics import HEADER_MQTT_TOPIC
from services.environment.domain.windows import DEFAULT_ALLOWED_LATENESS
from services.mobility.topics import PARKING_OCCUPANCY
from services.waste.topics import CONTAINER_LEVELS
from tests.integration.devices.conftest import DEVICE_USER, GATEWAY_USER
from tests.integration.devices.gateway_kit import (
    AIR_TOPIC,
    CHIRPSTACK_TOPIC,
    DLQ,
    PARKING_TOPIC,
    TTS_TOPIC,
    Gateway,
    air_observations,
    air_reading,
    chirpstack_lpp_uplink,
    container_readings,
    parking_count,
    publish,
    records,
    seed_station_newest,
    start_gateway,
    tts_fill_uplink,
    wait_for_records,
)
from tests.support.processes import BrokerProcess

AIR_QUALITY = "environment.air-quality.v1"
AIR_STATION = "brk-air-al-quds"
STATION_NEWEST = datetime.now(UTC)  # every air reading below is newer or within the allowed lateness, but one


@pytest.fixture(scope="module")
def shared_broker() -> Iterator[str]:
    """The embedded broker of tests/integration/conftest.py's ``broker``, kept for the module."""
    process = BrokerProcess.start(memory=True, default_partitions=2)
    try:
        yield process.bootstrap
    finally:
        process.stop()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, mosquitto: MosquittoServer,
            shared_broker: str) -> Iterator[Gateway]:
    # The station's newest observation as the environment status feed reports it: the gateway reads
    # it at start-up, so a reading more than the allowed lateness behind it is dead-lettered.
    asyncio.run(seed_station_newest(shared_broker, AIR_STATION, STATION_NEWEST))
    started = start_gateway(tmp_path_factory.mktemp("gateway"), mosquitto, GATEWAY_USER, shared_broker,
                            protocol="5")
    try:
        yield started
    finally:
        started.process.stop()


def test_direct_chirpstack_and_tts_messages_reach_their_domains_topics_and_bad_ones_are_dead_lettered(
    gateway: Gateway, mosquitto: MosquittoServer, shared_broker: str
) -> None:
    broker = shared_broker
    status, health = gateway.health()
    assert (status, health["mqtt"], health["status_feed"]) == (200, "ok", "ok")  # the seeded station status read
    messages = [
        (AIR_TOPIC, air_reading(12.5)),
        (CHIRPSTACK_TOPIC, chirpstack_lpp_uplink(0.42, 21.5, 87)),
        (AIR_TOPIC, air_reading(9999.0)),  # out of the measurand's range: the domain's own check refuses it
        (TTS_TOPIC, tts_fill_uplink(75, -3.5, 60, lid_open=True)),
        ("madina/berkane/waste/container-level/ghost-sensor", b"{}"),  # not in the registry
        (CHIRPSTACK_TOPIC, b'{"data": "not base64!"}'),
        (AIR_TOPIC, air_reading(14.0, offset_s=1)),
        (PARKING_TOPIC, parking_count(97)),
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

    parking = asyncio.run(wait_for_records(broker, PARKING_OCCUPANCY.name, 1))
    assert [ParkingOccupancyObserved.FromString(r.value).occupied_spaces_count for r in parking] == [97]

    dead = asyncio.run(wait_for_records(broker, DLQ, 3))
    reasons = {dict(r.headers)[HEADER_DLQ_REASON].decode(): r for r in dead}
    assert len(dead) == 3, sorted(reasons)
    out_of_range = next(r for reason, r in reasons.items() if reason.startswith("invalid value"))
    assert "pm25_ugm3" in dict(out_of_range.headers)[HEADER_DLQ_REASON].decode()
    assert b'"pm25_ugm3": 9999.0' in out_of_range.value  # the original bytes
    assert dict(out_of_range.headers)[HEADER_MQTT_TOPIC] == AIR_TOPIC.encode()
    assert any(reason.startswith("device refused: unknown device 'ghost-sensor'") for reason in reasons)
    assert any(reason.startswith("malformed message: data: not valid base64") for reason in reasons)


def test_a_reading_late_behind_the_stations_newest_observation_is_dead_lettered_with_the_lateness_reason(
    gateway: Gateway, mosquitto: MosquittoServer, shared_broker: str
) -> None:
    late_by_s = (datetime.now(UTC) - STATION_NEWEST + DEFAULT_ALLOWED_LATENESS + timedelta(minutes=5)).total_seconds()
    asyncio.run(publish(mosquitto, DEVICE_USER, [(AIR_TOPIC, air_reading(31.5, offset_s=late_by_s)),
                                                 (AIR_TOPIC, air_reading(32.5))]))

    # The in-time reading after it is on the topic, so the gateway has judged the late one too.
    air = air_observations(asyncio.run(_wait_for_air(shared_broker, 32.5)))
    dead = [r for r in asyncio.run(records(shared_broker, DLQ)) if b'"pm25_ugm3": 31.5' in r.value]

    assert 31.5 not in {o.pm25_ugm3 for o in air}
    assert [dict(r.headers)[HEADER_MQTT_TOPIC] for r in dead] == [AIR_TOPIC.encode()]
    reason = dict(dead[0].headers)[HEADER_DLQ_REASON].decode()
    assert reason.startswith("invalid value: observe_time:") and "the station's newest observation" in reason, reason


async def _wait_for_air(broker: str, pm25: float, timeout_s: float = 30.0) -> list[Any]:
    async with asyncio.timeout(timeout_s):
        while True:
            found = await records(broker, AIR_QUALITY)
            if pm25 in {o.pm25_ugm3 for o in air_observations(found)}:
                return found
            await asyncio.sleep(0.3)


def test_gateway_survives_a_broker_restart_and_a_kill_9_mid_stream_without_losing_a_reading(
    tmp_path: Path, gateway: Gateway, mosquitto: MosquittoServer, shared_broker: str
) -> None:
    """The persistent session keeps what the killed gateway had not acknowledged, and what arrived
    while it was gone, for its successor, which speaks MQTT 3.1.1 (clean_session=False) where the
    first spoke 5 (clean_start=False, session expiry): both versions, one session."""
    broker = shared_broker
    values = [round(5 + i * 0.25, 2) for i in range(400)]  # one distinct pm2.5 per reading
    try:
        asyncio.run(publish(mosquitto, DEVICE_USER, [(AIR_TOPIC, air_reading(v, offset_s=i)) for i, v in
                                                     enumerate(values[:20])]))
        assert set(values[:20]) <= asyncio.run(_wait_for_values(broker, set(values[:20])))

        mosquitto.stop()
        asyncio.run(eventually(lambda: gateway.health()[0] == 503))
        assert gateway.health()[1]["mqtt"].startswith("disconnected")
        mosquitto.restart()
        asyncio.run(eventually(lambda: gateway.health()[0] == 200))

        async def stream_and_kill() -> None:
            messages = [(AIR_TOPIC, air_reading(v, offset_s=i)) for i, v in enumerate(values[20:], start=20)]
            publishing = asyncio.create_task(publish(mosquitto, DEVICE_USER, messages, pause_s=0.01))
            await eventually(lambda: _count_air(broker) >= 60, timeout_s=60)
            gateway.process.kill()  # kill -9 while readings stream in
            assert not publishing.done(), "the stream ended before the kill: nothing was in flight"
            await publishing

        asyncio.run(stream_and_kill())
    finally:
        gateway.process.stop()
    second = start_gateway(tmp_path / "second", mosquitto, GATEWAY_USER, broker, protocol="3.1.1")
    try:
        found = asyncio.run(_wait_for_values(broker, set(values)))
        assert set(values) <= found, f"lost {len(set(values) - found)} readings"
    finally:
        second.process.stop()


def _count_air(broker: str) -> int:
    return len(air_observations(asyncio.run(wait_for_records(broker, AIR_QUALITY, 0))))


async def _wait_for_values(broker: str, wanted: set[float], timeout_s: float = 40.0) -> set[float]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    found: set[float] = set()
    while loop.time() < deadline and not wanted <= found:
        found = {o.pm25_ugm3 for o in air_observations(await wait_for_records(broker, AIR_QUALITY, 0))}
        await asyncio.sleep(0.3)
    return found


async def eventually(check, timeout_s: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await asyncio.to_thread(check):
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)
