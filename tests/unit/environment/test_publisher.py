"""The environment publisher: one record per (kind, station), stamped with that station's newest observation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from services.environment.api.publisher import publish
from services.environment.domain.measurands import Observation, StationKind

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


class RecordingProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, int | None]] = []  # (topic, key, event_time_ms)

    async def send(self, spec: Any, key: str, message: Any, *,
                   event_time_ms: int | None = None) -> asyncio.Future[None]:
        self.sent.append((spec.name, key, event_time_ms))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def test_each_station_and_kind_is_one_record_stamped_with_its_own_newest_observation() -> None:
    minutes = {"a": [3, 9, 1], "b": [7], "c": [2, 5]}  # out of order, interleaved below
    observations = [
        Observation(station, T0 + timedelta(minutes=m), StationKind.AIR, {"pm25_ugm3": 10.0})
        for i in range(3) for station, ms in minutes.items() if i < len(ms) for m in [ms[i]]
    ]
    observations.append(Observation("a", T0 + timedelta(minutes=30), StationKind.NOISE, {"laeq_db": 50.0}))
    producer = RecordingProducer()

    assert asyncio.run(publish(producer, observations)) == len(observations)  # type: ignore[arg-type]

    def ms(minute: int) -> int:
        return int((T0 + timedelta(minutes=minute)).timestamp() * 1000)

    assert sorted(producer.sent) == sorted([
        ("environment.air-quality.v1", "a", ms(9)), ("environment.air-quality.v1", "b", ms(7)),
        ("environment.air-quality.v1", "c", ms(5)), ("environment.noise.v1", "a", ms(30)),
    ])
