"""Validating and publishing readings, and planning rounds: what HTTP and gRPC share."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from madina.bus import EventProducer
from madina.eventtime import EventTimeBounds
from madina.http import parse_items
from madina.inputs import UtcTime, echo
from services.waste.convert import batches_by_container
from services.waste.domain.containers import Container
from services.waste.domain.readings import (
    BATTERY_PERCENT_RANGE,
    TEMPERATURE_C_RANGE,
    TILT_DEG_RANGE,
    Reading,
    validate_reading,
)
from services.waste.topics import CONTAINER_LEVELS


class ReadingRejected(ValueError):
    """Raised with a message naming the field, e.g. ``readings[3].fill_ratio: 1.2 outside 0..1``."""


# The ingest contract: one JSON reading (the HTTP body's and an MQTT message's shape).
def _number(low: float, high: float, description: str) -> Any:
    return Field(default=None, ge=low, le=high, allow_inf_nan=False, strict=True, description=description)


class ReadingIn(BaseModel):
    """One report of one container's fill sensor."""

    model_config = ConfigDict(extra="forbid", title="ContainerReading")

    container_id: str = Field(min_length=1, max_length=64, description="Container (and sensor) identifier.")
    observe_time: UtcTime = Field(description="When it was measured, RFC 3339 with offset.")
    fill_ratio: float = Field(ge=0, le=1, allow_inf_nan=False, strict=True, description="0 empty to 1 full.")
    temperature_c: float | None = _number(*TEMPERATURE_C_RANGE, "Temperature inside, degrees Celsius.")
    tilt_deg: float | None = _number(*TILT_DEG_RANGE, "Angle from upright, degrees.")
    lid_open: bool | None = Field(default=None, strict=True, description="Whether the lid is open.")
    battery_percent: float | None = _number(*BATTERY_PERCENT_RANGE, "Sensor battery charge, percent.")

    def reading(self) -> Reading:
        return Reading(**self.model_dump())


def parse_readings(
    body: Any, containers: Mapping[str, Container], max_batch: int, now: datetime, bounds: EventTimeBounds
) -> list[Reading]:
    """One ``ContainerReading`` or ``{"readings": [...]}``, checked; InvalidInput or ReadingRejected names the field."""
    readings = []
    for where, item in parse_items(body, ReadingIn, "readings", max_batch):
        reading = item.reading()
        check_reading(reading, containers, where, now, bounds)
        readings.append(reading)
    return readings


def check_reading(
    reading: Reading, containers: Mapping[str, Container], where: str, now: datetime, bounds: EventTimeBounds
) -> None:
    """ReadingRejected naming the field; the rule is the processor's own (validate_reading)."""
    prefix = f"{where}." if where else ""
    if reading.container_id not in containers:
        raise ReadingRejected(f"{prefix}container_id: unknown container {echo(reading.container_id)}")
    problems = validate_reading(reading, now, bounds)
    if problems:
        raise ReadingRejected("; ".join(f"{prefix}{problem}" for problem in problems))


async def publish(producer: EventProducer, readings: Sequence[Reading]) -> int:
    """One record per container (acks=all); returns once every record is acknowledged."""
    newest: dict[str, datetime] = {}  # one pass: a large batch stays linear
    for r in readings:
        newest[r.container_id] = max(newest.get(r.container_id, r.observe_time), r.observe_time)
    futures = []
    for batch in batches_by_container(readings):
        event_time_ms = int(newest[batch.container_id].timestamp() * 1000)
        futures.append(await producer.send(CONTAINER_LEVELS, batch.container_id, batch, event_time_ms=event_time_ms))
    await asyncio.gather(*futures)
    return len(readings)
