"""Poison records on every topic the environment service consumes, over a real broker (TCP).

The processor dead-letters each with its reason and keeps alerting on the good records after it;
the API's status feed skips what it cannot serve; the API refuses, with a 422, readings dated
where the processor would drop them.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer
from google.protobuf.message import Message

from madina.bus.codec import standard_headers
from madina.bus.producer import HEADER_DLQ_REASON
from madina.bus.topics import TopicSpec
from madina_proto.environment.v1 import observations_pb2, station_pb2
from services.environment.api.http import create_http_app
from services.environment.domain.measurands import StationKind
from services.environment.domain.stations import load_stations
from services.environment.topics import AIR_QUALITY, STATION_STATUS, STATION_TICKS, WATER_QUALITY
from tests.integration.environment.api_fixtures import rfc3339, running_environment_api, serving_http
from tests.integration.environment.processor_harness import (
    create_topics,
    observation,
    produce_observations,
    start_processor,
)
from tests.support.processor_kit import read_all, wait_for_alerts

WATER = "cas-water-ain-chock"
AIR = "cas-air-ain-sebaa"
AIR_AND_NOISE = next(
    s.id for s in load_stations() if {StationKind.AIR, StationKind.NOISE} <= set(s.kinds)
)
FAR_FUTURE_S = 10**12


async def _produce(bootstrap: str, spec: TopicSpec, key: str, message: Message, *, typed: bool = True) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        headers = standard_headers(spec, "poison") if typed else []
        await producer.send_and_wait(spec.name, message.SerializeToString(), key=key.encode(), headers=headers)
    finally:
        await producer.stop()


async def _dead_letters(bootstrap: str, spec: TopicSpec, count: int, timeout_s: float = 30.0) -> list[str]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    reasons: list[str] = []
    while loop.time() < deadline:
        records = await read_all(bootstrap, spec.dead_letter.name)
        reasons = [dict(r.headers)[HEADER_DLQ_REASON].decode() for r in records]
        if len(reasons) >= count:
            break
        await asyncio.sleep(0.5)
    return reasons


def _water_batch(seconds: int, ecoli: float = 0.0) -> observations_pb2.WaterQualityObservedBatch:
    batch = observations_pb2.WaterQualityObservedBatch(station_id=WATER)
    observed = batch.observations.add(station_id=WATER, ecoli_cfu_100ml=ecoli)
    observed.observe_time.seconds = seconds
    return batch


async def test_processor_dead_letters_poison_on_every_input_and_still_alerts_on_good_records(
    broker: str, tmp_path: Path
) -> None:
    await create_topics(broker)
    now = datetime.now(UTC).replace(microsecond=0)
    year_9000 = int(datetime(9000, 1, 1, tzinfo=UTC).timestamp())
    await _produce(broker, WATER_QUALITY, WATER, _water_batch(FAR_FUTURE_S))  # no datetime holds it
    await _produce(broker, WATER_QUALITY, WATER, _water_batch(year_9000))  # would move the clock to 9000
    await _produce(broker, WATER_QUALITY, WATER, _water_batch(int(datetime(1970, 1, 2, tzinfo=UTC).timestamp())))
    noise = observations_pb2.NoiseObservedBatch(station_id=AIR_AND_NOISE)
    noise.observations.add(station_id=AIR_AND_NOISE, laeq_db=1999.0).observe_time.FromDatetime(now)
    await _produce(broker, AIR_QUALITY, AIR_AND_NOISE, noise, typed=False)  # read as PM2.5 1999 once
    for seconds in (FAR_FUTURE_S, int(datetime(8999, 1, 1, tzinfo=UTC).timestamp())):
        tick = station_pb2.StationClockTick(station_id=WATER)
        tick.tick_time.seconds = seconds
        await _produce(broker, STATION_TICKS, WATER, tick)
    await produce_observations(
        broker, [[observation(WATER, now - timedelta(minutes=1), StationKind.WATER, ecoli_cfu_100ml=12.0)]]
    )

    processor = start_processor(broker, tmp_path)
    try:
        events = await wait_for_alerts(broker, 1, timeout_s=60)
        water = await _dead_letters(broker, WATER_QUALITY, 3)
        air = await _dead_letters(broker, AIR_QUALITY, 1)
        ticks = await _dead_letters(broker, STATION_TICKS, 2)
        assert processor.process.poll() is None, processor.log_path.read_text()[-3000:]
    finally:
        processor.stop()

    assert [(e.rule_id, e.source.entity_id) for e in events] == [("who-water-2022/ecoli", WATER)]
    assert len(water) == 3, water
    assert any("observe_time" in r and "outside years 1..9999" in r for r in water), water
    assert any(r.startswith("out_of_bounds") and "in the future" in r for r in water), water
    assert any(r.startswith("out_of_bounds") and "too old" in r for r in water), water
    assert air and "no content-type header" in air[0], air
    assert len(ticks) == 2 and all("tick_time" in r for r in ticks), ticks


async def test_status_feed_skips_a_status_it_cannot_serve_and_the_api_refuses_readings_the_processor_drops(
    broker: str, tmp_path: Path
) -> None:
    poisoned = station_pb2.StationStatusChanged()
    poisoned.status.station.station_id = AIR
    poisoned.status.last_observe_time.seconds = FAR_FUTURE_S
    await create_topics(broker)
    await _produce(broker, STATION_STATUS, AIR, poisoned)
    foreign = station_pb2.StationStatusChanged()
    foreign.status.station.station_id = WATER
    await _produce(broker, STATION_STATUS, AIR, foreign)  # WATER's status under AIR's key

    async with running_environment_api(broker, tmp_path) as api, serving_http(
        create_http_app(api.runtime)
    ) as base_url, httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        reader = {"Authorization": f"Bearer {api.reader_token}"}
        publisher = {"Authorization": f"Bearer {api.publisher_token}"}
        assert api.runtime.statuses == {}
        status = await client.get(f"/v1/stations/{AIR}/status", headers=reader)
        assert status.status_code == 200, status.text
        assert "last_observe_time" not in status.json()

        for moment in ("0001-01-01T00:00:00Z", "1900-01-01T00:00:00Z", "1970-01-01T00:00:00Z",
                       "9000-01-01T00:00:00Z"):
            reply = await client.post("/v1/air-quality", headers=publisher,
                                      json={"station_id": AIR, "observe_time": moment, "pm25_ugm3": 10.0})
            assert reply.status_code == 422, (moment, reply.text)
            assert "observe_time" in reply.text
        recent = await client.post("/v1/air-quality", headers=publisher, json={
            "station_id": AIR, "observe_time": rfc3339(datetime.now(UTC) - timedelta(days=1)), "pm25_ugm3": 10.0})
        assert recent.status_code == 202, recent.text
