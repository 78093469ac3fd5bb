"""The environment simulator: reproducible by seed, realistic scripted incidents, valid observations."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from madina.simulation import HttpPost, SimulationContext
from services.environment.api.http import PATHS
from services.environment.simulator import EnvironmentGenerator

START = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)


def _run(seed: int, city: str = "casablanca", seconds: int = 120) -> list[HttpPost]:
    generator = EnvironmentGenerator(
        SimulationContext(
            city=city, rng=random.Random(seed), speedup=60, started_at=START, options={"environment_http_port": 1}
        )
    )
    deliveries = []
    for second in range(seconds):
        deliveries += generator.next_deliveries(START + timedelta(seconds=second), 5)
    return deliveries  # type: ignore[return-value]


def test_same_seed_gives_the_same_stream_and_another_seed_does_not() -> None:
    assert _run(7) == _run(7)
    assert _run(7) != _run(8)


def test_contamination_episode_and_silent_station_are_scripted() -> None:
    deliveries = _run(1)
    water = [o for d in deliveries if d.path == f"/v1/{PATHS['water']}" for o in d.body["observations"]]  # type: ignore[index]
    assert any(o.get("ecoli_cfu_100ml", 0) > 0 for o in water), "an E. coli sample is part of the script"
    late = [
        o["station_id"] for d in deliveries for o in d.body["observations"] if o["observe_time"] >= "2026-11-22T06:01"
    ]
    early = {
        o["station_id"] for d in deliveries for o in d.body["observations"] if o["observe_time"] < "2026-11-22T06:00:20"
    }
    assert len(early - set(late)) == 1, "exactly one station goes silent"


def test_every_city_has_a_generator() -> None:
    for city in ("berkane", "casablanca"):
        assert _run(1, city=city, seconds=5)
