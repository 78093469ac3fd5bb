"""Validating and publishing readings, and planning rounds: what HTTP and gRPC share."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime

from madina.bus import EventProducer
from madina.eventtime import EventTimeBounds
from madina.inputs import echo
from services.waste.convert import batches_by_container
from services.waste.domain.containers import Container
from services.waste.domain.readings import Reading, validate_reading
from services.waste.topics import CONTAINER_LEVELS


class ReadingRejected(ValueError):
    """Raised with a message naming the field, e.g. ``readings[3].fill_ratio: 1.2 outside 0..1``."""


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
