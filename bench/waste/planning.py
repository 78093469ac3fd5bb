"""Benchmark of collection planning: VROOM on 500 containers and 5 trucks, against a baseline.

    .venv/bin/python -m bench.waste.planning            # 5 runs, median time
    .venv/bin/python -m bench.waste.planning --quick    # 1 run

Instance (deterministic, seed 14): 500 containers placed in Casablanca's nine districts with the
seed's generator and stream mix, every one due (fill 0.80-1.00), five trucks at the Aïn Sebaâ depot
that take every stream (one routing problem, the hardest shape), with 10 % spare capacity overall.

Reported:

* planning time of :func:`plan_collection` end to end (selection, distance matrix, VROOM, result),
  median of the runs, and the CPU seconds it used (all threads: what a busy machine cannot take
  away, unlike wall time); the target is < 10 s. Loading VROOM (the first plan of a process pays
  it once) is timed apart, before the runs;
* total route distance against a nearest-neighbour baseline (each truck in turn drives to the
  nearest container that still fits, returns when none does), for reference;
* the gap to a proven optimum on an 8-container instance (brute force over all orders).

For reference (measured once, not rerun): VROOM left to converge on this instance (level 2, no
time limit) reaches 207.5 km after 195 s.

Results go to ``bench/results/waste-planning.json``.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from madina.geo import load_cities
from services.waste.domain.containers import Depot, Stream, Truck
from services.waste.domain.planning import (
    DEFAULT_EXPLORATION_LEVEL,
    DEFAULT_TIME_LIMIT,
    ContainerForecast,
    plan_collection,
    route_distance_m,
    street_distance_matrix_m,
)
from services.waste.seed import SEED, district_containers

RESULTS = Path(__file__).resolve().parents[1] / "results" / "waste-planning.json"
CONTAINERS = 500
TRUCKS = 5
DEPOT = Depot("cas-depot-ain-sebaa", "Aïn Sebaâ", "casablanca", 33.6035, -7.5335)
NOW = datetime(2026, 5, 4, 5, 0, tzinfo=UTC)


def instance() -> tuple[list[ContainerForecast], list[Truck]]:
    rng = random.Random(SEED)
    city = load_cities()["casablanca"]
    per_district = -(-CONTAINERS // len(city.districts))
    containers = [c for d in city.districts for c in district_containers(city, d, per_district, rng)][:CONTAINERS]
    forecasts = [ContainerForecast(c, round(rng.uniform(0.8, 1.0), 3), 0.01) for c in containers]
    capacity = int(sum(f.load_l for f in forecasts) * 1.1 / TRUCKS)
    trucks = [Truck(f"truck-{n}", DEPOT.id, tuple(Stream), capacity) for n in range(1, TRUCKS + 1)]
    return forecasts, trucks


def nearest_neighbour_m(forecasts: list[ContainerForecast], trucks: list[Truck]) -> tuple[float, int]:
    """Total distance of the greedy baseline and how many containers it left behind."""
    points = [(DEPOT.lat, DEPOT.lon), *((f.container.lat, f.container.lon) for f in forecasts)]
    matrix = street_distance_matrix_m(points)
    left = set(range(1, len(forecasts) + 1))
    total = 0.0
    for truck in trucks:
        room, here, stops = truck.capacity_l, 0, []
        while True:
            fitting = [j for j in left if forecasts[j - 1].load_l <= room]
            if not fitting:
                break
            here = min(fitting, key=lambda j: matrix[here, j])
            stops.append(here)
            left.discard(here)
            room -= forecasts[here - 1].load_l
        total += route_distance_m(matrix, stops)
    return total, len(left)


def optimum_gap() -> dict[str, float]:
    rng = random.Random(SEED)
    city = load_cities()["casablanca"]
    small = district_containers(city, city.district("ain-sebaa"), 8, rng)
    forecasts = [ContainerForecast(c, 0.9) for c in small]
    trucks = [Truck("t", DEPOT.id, tuple(Stream), 10**6)]
    matrix = street_distance_matrix_m([(DEPOT.lat, DEPOT.lon), *((c.lat, c.lon) for c in small)])
    optimum = min(route_distance_m(matrix, order) for order in itertools.permutations(range(1, 9)))
    plan = plan_collection(DEPOT, trucks, timedelta(hours=24), forecasts, plan_time=NOW)
    return {"optimum_m": optimum, "vroom_m": plan.total_distance_m,
            "gap_percent": 100 * (plan.total_distance_m - optimum) / optimum}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run instead of five")
    parser.add_argument("--runs", type=int, default=None)
    args = parser.parse_args()
    runs = args.runs or (1 if args.quick else 5)
    forecasts, trucks = instance()
    started = time.perf_counter()
    importlib.import_module("vroom")  # what plan_collection imports on first use
    import_s = time.perf_counter() - started
    print(f"{len(forecasts)} containers, {len(trucks)} trucks of {trucks[0].capacity_l} L; "
          f"VROOM exploration level {DEFAULT_EXPLORATION_LEVEL}, time limit {DEFAULT_TIME_LIMIT}", flush=True)
    times, cpu_times, distances = [], [], []
    for run in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        plan = plan_collection(DEPOT, trucks, timedelta(hours=24), forecasts, plan_time=NOW)
        times.append(time.perf_counter() - started)
        cpu_times.append(time.process_time() - started_cpu)
        distances.append(plan.total_distance_m)
        assert len(plan.container_ids) == len(forecasts)
        print(f"  run {run + 1}: {times[-1]:.2f} s ({cpu_times[-1]:.2f} s CPU), {plan.total_distance_m / 1000:.1f} km, "
              f"{len(plan.routes)} routes of {[len(r.container_ids) for r in plan.routes]} stops", flush=True)
    baseline, stranded = nearest_neighbour_m(forecasts, trucks)
    gap = optimum_gap()
    median_distance = statistics.median(distances)
    result = {
        "containers": len(forecasts),
        "trucks": len(trucks),
        "exploration_level": DEFAULT_EXPLORATION_LEVEL,
        "time_limit_s": DEFAULT_TIME_LIMIT.total_seconds(),
        "runs": runs,
        "planning_time_median_s": statistics.median(times),
        "planning_time_max_s": max(times),
        "planning_cpu_median_s": statistics.median(cpu_times),
        "vroom_import_s": import_s,
        "distance_median_km": median_distance / 1000,
        "nearest_neighbour_km": baseline / 1000,
        "nearest_neighbour_stranded": stranded,
        "vroom_vs_baseline_percent": 100 * (median_distance - baseline) / baseline,
        "small_instance_optimum_gap_percent": gap["gap_percent"],
    }
    print()
    print(f"| planning time (median of {runs}) | {result['planning_time_median_s']:.2f} s "
          f"(max {result['planning_time_max_s']:.2f} s, target < 10 s; {result['planning_cpu_median_s']:.2f} s CPU) |")
    print(f"| loading VROOM, once per process | {import_s:.2f} s |")
    print(f"| total distance | {result['distance_median_km']:.1f} km |")
    print(f"| nearest-neighbour baseline | {result['nearest_neighbour_km']:.1f} km "
          f"({stranded} containers it could not fit) |")
    print(f"| VROOM vs baseline | {result['vroom_vs_baseline_percent']:+.1f} % |")
    print(f"| gap to proven optimum, 8 containers | {gap['gap_percent']:.2f} % |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
