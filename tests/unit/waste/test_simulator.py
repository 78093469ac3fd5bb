"""The waste simulator: reproducible by seed, readings the API accepts, and its scripted and its
now-and-then incidents raise the alerts they stand for when the pure domain reads them."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from madina.eventtime import EventTimeBounds
from madina.simulation import HttpPost, SimulationContext
from services.waste.api.http import ReadingIn
from services.waste.api.publisher import check_reading
from services.waste.domain.containers import load_containers
from services.waste.domain.detector import ContainerState, apply_readings
from services.waste.simulator import INCIDENT_EVERY_S, INCIDENT_S, WasteGenerator, create

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
    """The readings posted (the generator also asks for collection rounds)."""
    return [ReadingIn.model_validate(item)
            for d in deliveries if d.path == "/v1/readings" for item in d.body["readings"]]


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


def test_now_and_then_another_container_catches_fire_or_tips_over_and_is_dealt_with() -> None:
    generator = WasteGenerator(SimulationContext(
        city="berkane", rng=random.Random(1), speedup=60, started_at=START, options={"waste_http_port": 1},
    ), CONTAINERS)
    drawn: dict[str, tuple[str, float]] = {}
    deliveries: list[Any] = []
    end = 3 * INCIDENT_EVERY_S + INCIDENT_S + 300
    for second in range(0, int(end), 5):  # a reading per container every ~40 s, as at the default rate
        deliveries += generator.next_deliveries(START + timedelta(seconds=second), 40)
        drawn.update(generator.incidents)
    assert sorted(began for _, began in drawn.values()) == [INCIDENT_EVERY_S * n for n in (1, 2, 3, 4)]
    assert not drawn.keys() & {generator.burning, generator.tipped}
    over = {cid: incident for cid, incident in drawn.items() if incident[1] + INCIDENT_S + 60 < end}
    assert {kind for kind, _ in over.values()} == {"fire", "tipped"}, over  # seed 1 draws both
    containers = {c.id: c for c in CONTAINERS}
    per_container: dict[str, list[Any]] = defaultdict(list)
    for reading in _readings(deliveries):
        per_container[reading.container_id].append(reading.reading())
    for container_id, (kind, began) in over.items():
        readings = per_container[container_id]
        result = apply_readings(ContainerState.new(container_id), readings, containers[container_id])
        assert {"fire": "fire-risk", "tipped": "tipped-over"}[kind] in {t.rule_id for t in result.transitions}
        after = [r for r in readings if r.observe_time > START + timedelta(seconds=began + INCIDENT_S)]
        assert after and all(r.temperature_c < 40 and r.tilt_deg < 10 for r in after), "the crew dealt with it"


def test_the_simulator_reads_the_citys_own_containers_and_fleet_as_the_api_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "containers.yaml").write_text("containers:\n" + "".join(
        f"- {{id: own-h{n}, city: berkane, district: centre-ville, location: [34.9{n}, -2.33], stream: household,"
        f" volume_l: 1100, reporting_interval: 1h}}\n" for n in range(1, 6)))
    (tmp_path / "fleet.yaml").write_text(
        "depots:\n- {id: own-depot, name: Own depot, city: berkane, location: [34.90, -2.30]}\n"
        "trucks:\n- {id: own-truck, depot: own-depot, streams: [household], capacity_l: 10000}\n")
    monkeypatch.setenv("MADINA_WASTE_CONTAINERS_FILE", str(tmp_path / "containers.yaml"))
    monkeypatch.setenv("MADINA_WASTE_FLEET_FILE", str(tmp_path / "fleet.yaml"))
    generator = create(SimulationContext(
        city="berkane", rng=random.Random(1), speedup=60, started_at=START, options={"waste_http_port": 1}))
    own = {f"own-h{n}" for n in range(1, 6)}
    assert {sensor.container.id for sensor in generator.sensors} == own
    assert set(generator.depots) == {"own-depot"}
    deliveries: list[Any] = [d for s in range(3) for d in generator.next_deliveries(START + timedelta(seconds=s), 5)]
    assert {reading.container_id for reading in _readings(deliveries)} == own
