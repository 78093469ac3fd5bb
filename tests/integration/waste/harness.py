"""The waste processor in the processor kit (tests/support/processor_kit.py), its input, and its oracle.

Inputs are saw-tooth fill series (containers fill, cross 80 % and 95 %, are emptied) with a fire
and a tipped container among them, dated in the recent past so they lie within the event-time
bounds. The oracle is the pure domain (``apply_readings``) fed the same batches in order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from services.waste.convert import alert_event, batches_by_container
from services.waste.domain.containers import Container, load_containers
from services.waste.domain.detector import Collection, ContainerState, apply_readings
from services.waste.domain.readings import Reading
from services.waste.topics import ALL, CONTAINER_LEVELS
from tests.support.processor_kit import ProcessorKit, Record

KIT = ProcessorKit(
    "waste-processor", "MADINA_WASTE_PROCESSOR_PORT", ALL,
    env={"MADINA_WASTE_TICK_INTERVAL_S": "3600"},  # no clock ticks unless a test asks
)


def casablanca(count: int) -> list[Container]:
    return [c for c in load_containers() if c.city == "casablanca"][:count]


def day_of_readings(
    containers: Sequence[Container], start: datetime, *, hours: int = 24, every: timedelta = timedelta(minutes=30),
    per_batch: int = 2,
) -> list[list[Reading]]:
    """Batches of ``per_batch`` readings per container, in time order: saw-tooth fills (each
    container emptied when it reaches ~100 %, at its own rate), container 0 catching fire at hour
    5, container 1 tipped over from hour 9 to 10, container 2's battery running down."""
    steps = int(hours * 3600 / every.total_seconds())
    series: dict[str, list[Reading]] = {}
    for index, container in enumerate(containers):
        rate = 0.06 + 0.015 * (index % 5)  # fill per step
        fill = 0.05 * (index % 4)
        readings = []
        for step in range(steps):
            at = start + every * step
            fill = fill + rate if fill + rate <= 1.0 else 0.03
            hour = step * every.total_seconds() / 3600
            temperature = 21.0 + (index % 3)
            if index == 0 and 5 <= hour < 6:
                temperature = 75.0
            tilt = 88.0 if index == 1 and 9 <= hour < 10 else 1.0
            battery = max(5.0, 60.0 - 2.5 * hour) if index == 2 else 80.0
            readings.append(Reading(container.id, at, round(fill, 3), temperature, tilt, False, battery))
        series[container.id] = readings
    batches = []
    for begin in range(0, steps, per_batch):
        for container in containers:
            batches.append(series[container.id][begin:begin + per_batch])
    return batches


def records_of(batches: Sequence[Sequence[Reading]]) -> list[Record]:
    """One record per container per batch, as the ingest API publishes them."""
    return [
        (CONTAINER_LEVELS, batch.container_id, batch)
        for readings in batches
        for batch in batches_by_container(readings)
    ]


@dataclass
class Oracle:
    """What the pure domain makes of the same batches."""

    alerts: Counter[tuple[str, int, int]] = field(default_factory=Counter)
    collections: list[Collection] = field(default_factory=list)
    states: dict[str, ContainerState] = field(default_factory=dict)


def oracle(
    batches: Sequence[Sequence[Reading]], containers: Sequence[Container], now: datetime | None = None
) -> Oracle:
    by_id = {c.id: c for c in containers}
    result = Oracle()
    clock = now or datetime.now(UTC)
    for readings in batches:
        for batch in batches_by_container(readings):
            container = by_id[batch.container_id]
            state = result.states.get(container.id) or ContainerState.new(container.id)
            mine = [r for r in readings if r.container_id == container.id]
            step = apply_readings(state, mine, container, now=clock)
            result.states[container.id] = step.state
            result.collections.extend(step.collections)
            for transition in step.transitions:
                event = alert_event(transition, container)
                result.alerts[(event.alert_id, event.revision, int(event.state))] += 1
    return result

