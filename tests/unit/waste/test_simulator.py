"""The waste simulator: reproducible by seed, readings the API accepts, and its scripted incidents
raise the alerts they stand for when the pure domain reads them."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

from madina.eventtime import EventTimeBounds
from madina.simulation import HttpPost, SimulationContext
from services.waste.api.http import ReadingIn
from services.waste.api.publisher import check_reading
from services.waste.domain.containers import load_containers
from services.waste.domain.detector import ContainerState, apply_readings
from services.waste.simulator import WasteGenerator

START = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
CONTAINERS = load_containers()


def _run(seed: int, seconds: int, speedup: float = 60, budget: int = 8) -> tuple[WasteGenerator, list[HttpPost]]:
    generator = WasteGenerator(SimulationContext(
        city="berkane", rng=random.Random(seed), speedup=speedup, started_at=START, options={"waste_http_port": 1},
    ), CONTAINERS)
    deliveries: list[Any] = []
    for second in range(seconds):
        deliveries += generator.next_deliveries(START + timedelta(seconds=second), budget)
    return generator, deliveries


def _readings(deliveries: list[HttpPost]) -> list[ReadingIn]:
    return [ReadingIn.model_validate(item) for d in deliveries for item in d.body["readings"]]


def test_same_seed_gives_the_same_stream_and_another_seed_does_not() -> None:
    assert _run(7, 30)[1] == _run(7, 30)[1]
    assert _run(7, 30)[1] != _run(8, 30)[1]


def test_every_reading_passes_the_ingest_checks_and_rounds_empty_full_containers() -> None:
    _, deliveries = _run(3, 240, speedup=720)  # two days of filling in four minutes: rounds pass
    readings = _readings(deliveries)
    containers = {c.id: c for c in CONTAINERS}
    for reading in readings:
        check_reading(reading.reading(), containers, "", START + timedelta(minutes=5), EventTimeBounds())
    by_container: dict[str, list[float]] = defaultdict(list)
    for reading in readings:
        by_container[reading.container_id].append(reading.fill_ratio)
    emptied = [cid for cid, fills in by_container.items() if any(b < a - 0.4 for a, b in pairwise(fills))]
    assert emptied, "a collection round empties containers"


def test_the_scripted_fire_tipped_container_and_dying_battery_raise_their_alerts() -> None:
    generator, deliveries = _run(1, 1200)  # tipped-over needs 15 min of tilted readings
    containers = {c.id: c for c in CONTAINERS}
    per_container: dict[str, list[Any]] = defaultdict(list)
    for reading in _readings(deliveries):
        per_container[reading.container_id].append(reading.reading())
    raised = {}
    for container_id in (generator.burning, generator.tipped, generator.dying):
        result = apply_readings(ContainerState.new(container_id), per_container[container_id], containers[container_id])
        raised[container_id] = {t.rule_id for t in result.transitions}
    assert "fire-risk" in raised[generator.burning]
    assert "tipped-over" in raised[generator.tipped]
    assert "low-battery" in raised[generator.dying]
