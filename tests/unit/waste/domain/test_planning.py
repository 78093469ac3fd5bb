"""Planning: the known optimum is reached, capacity is respected, and what does not fit is an error."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta

import pytest

from services.waste.domain.containers import Container, Depot, Stream, Truck
from services.waste.domain.planning import (
    DETOUR_FACTOR,
    CapacityError,
    ContainerForecast,
    haversine_m,
    plan_collection,
    route_distance_m,
    select_due,
    street_distance_matrix_m,
)

NOW = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
DEPOT = Depot("depot", "Depot", "berkane", 34.9052, -2.3175)
# Eight containers scattered over Berkane, so the optimum is not obvious to the eye.
SPOTS = [
    (34.9215, -2.3205), (34.9125, -2.3330), (34.9150, -2.3040), (34.9300, -2.3330),
    (34.9345, -2.3080), (34.9180, -2.3120), (34.9260, -2.3250), (34.9100, -2.3260),
]


def container(index: int, stream: Stream = Stream.HOUSEHOLD, volume_l: int = 1100) -> Container:
    lat, lon = SPOTS[index]
    return Container(f"c{index}", "berkane", "centre-ville", lat, lon, stream, volume_l, timedelta(hours=1))


def forecast(index: int, fill: float = 0.9, **kwargs: object) -> ContainerForecast:
    return ContainerForecast(container(index, **kwargs), fill, 0.0)  # type: ignore[arg-type]


def brute_force_best(forecasts: list[ContainerForecast], capacities: list[int]) -> float:
    """Optimum over every assignment of containers to trucks and every order within each route."""
    points = [(DEPOT.lat, DEPOT.lon), *((f.container.lat, f.container.lon) for f in forecasts)]
    matrix = street_distance_matrix_m(points)
    best = math.inf
    for assignment in itertools.product(range(len(capacities)), repeat=len(forecasts)):
        groups = [[i + 1 for i, truck in enumerate(assignment) if truck == t] for t in range(len(capacities))]
        if any(sum(forecasts[i - 1].load_l for i in g) > cap for g, cap in zip(groups, capacities, strict=True)):
            continue
        total = 0.0
        for group in groups:
            if group:
                total += min(route_distance_m(matrix, perm) for perm in itertools.permutations(group))
            if total >= best:
                break
        best = min(best, total)
    return best


def test_street_distance_is_haversine_times_detour_factor() -> None:
    a, b = SPOTS[0], SPOTS[1]
    matrix = street_distance_matrix_m([a, b])
    assert matrix[0, 1] == pytest.approx(haversine_m(a, b) * DETOUR_FACTOR, rel=1e-9)
    # One degree of latitude is about 111.2 km.
    assert haversine_m((0.0, 0.0), (1.0, 0.0)) == pytest.approx(111_195, rel=1e-3)


def test_single_truck_reaches_the_brute_force_optimum_over_eight_containers() -> None:
    forecasts = [forecast(i) for i in range(8)]
    optimum = brute_force_best(forecasts, [100_000])
    plan = plan_collection(DEPOT, [Truck("t1", "depot", (Stream.HOUSEHOLD,), 100_000)], timedelta(days=1),
                           forecasts, plan_time=NOW, exploration_level=5, time_limit=None)
    assert sorted(plan.container_ids) == sorted(f.container.id for f in forecasts)
    # VROOM optimises integer metres: allow one metre of rounding per leg.
    assert plan.total_distance_m == pytest.approx(optimum, abs=9)


def test_two_trucks_with_tight_capacity_reach_the_brute_force_optimum() -> None:
    forecasts = [forecast(i) for i in range(7)]  # 990 L each
    capacities = [4 * 990, 4 * 990]
    optimum = brute_force_best(forecasts, capacities)
    trucks = [Truck(f"t{n}", "depot", (Stream.HOUSEHOLD,), cap) for n, cap in enumerate(capacities)]
    plan = plan_collection(DEPOT, trucks, timedelta(days=1), forecasts, plan_time=NOW,
                           exploration_level=5, time_limit=None)
    assert all(route.load_l <= 4 * 990 for route in plan.routes)
    assert len(plan.container_ids) == 7
    assert plan.total_distance_m == pytest.approx(optimum, abs=8)


def test_containers_on_a_line_are_visited_in_order() -> None:
    # Geometric instance with an obvious optimum: points due north of the depot, out and back.
    line = [Container(f"n{k}", "berkane", "centre-ville", DEPOT.lat + 0.002 * k, DEPOT.lon, Stream.GLASS, 2500,
                      timedelta(hours=1)) for k in (3, 1, 4, 2)]
    plan = plan_collection(DEPOT, [Truck("g", "depot", (Stream.GLASS,), 30_000)], timedelta(days=1),
                           [ContainerForecast(c, 0.85) for c in line], plan_time=NOW)
    (route,) = plan.routes
    assert route.container_ids in (("n1", "n2", "n3", "n4"), ("n4", "n3", "n2", "n1"))
    farthest = haversine_m((DEPOT.lat, DEPOT.lon), (DEPOT.lat + 0.008, DEPOT.lon))
    assert route.distance_m == pytest.approx(2 * farthest * DETOUR_FACTOR, rel=1e-6)


def test_only_containers_full_before_the_next_round_are_planned() -> None:
    soon = ContainerForecast(container(0), 0.5, 0.02)   # 0.98 after 24 h
    later = ContainerForecast(container(1), 0.5, 0.005)  # 0.62 after 24 h
    already = ContainerForecast(container(2), 0.85, 0.0)
    assert [f.container.id for f in select_due([soon, later, already], timedelta(hours=24))] == ["c0", "c2"]
    plan = plan_collection(DEPOT, [Truck("t", "depot", (Stream.HOUSEHOLD,), 10_000)], timedelta(hours=24),
                           [soon, later, already], plan_time=NOW)
    assert sorted(plan.container_ids) == ["c0", "c2"]


def test_trucks_only_take_the_streams_they_serve() -> None:
    forecasts = [forecast(0), forecast(1, stream=Stream.GLASS), forecast(2), forecast(3, stream=Stream.GLASS)]
    trucks = [Truck("h", "depot", (Stream.HOUSEHOLD,), 10_000), Truck("g", "depot", (Stream.GLASS,), 10_000)]
    plan = plan_collection(DEPOT, trucks, timedelta(days=1), forecasts, plan_time=NOW)
    routes = {route.truck_id: set(route.container_ids) for route in plan.routes}
    assert routes == {"h": {"c0", "c2"}, "g": {"c1", "c3"}}


def test_capacity_shortfall_is_an_error_naming_what_is_left_over() -> None:
    forecasts = [forecast(i) for i in range(5)]  # 5 x 990 L
    with pytest.raises(CapacityError, match=r"5 containers \(4950 L\).*950 L over") as caught:
        plan_collection(DEPOT, [Truck("t", "depot", (Stream.HOUSEHOLD,), 4000)], timedelta(days=1), forecasts,
                        plan_time=NOW)
    assert caught.value.unassigned_l == 4950


def test_loads_that_fit_in_total_but_not_per_truck_are_an_error_from_the_solver() -> None:
    # 3 x 990 L over two 1,500 L trucks: 2,970 <= 3,000 in total, but one truck can take only one.
    forecasts = [forecast(i) for i in range(3)]
    trucks = [Truck("a", "depot", (Stream.HOUSEHOLD,), 1500), Truck("b", "depot", (Stream.HOUSEHOLD,), 1500)]
    with pytest.raises(CapacityError, match=r"1 containers \(990 L\) cannot be collected") as caught:
        plan_collection(DEPOT, trucks, timedelta(days=1), forecasts, plan_time=NOW)
    assert len(caught.value.unassigned_container_ids) == 1


def test_a_stream_no_truck_serves_is_an_error() -> None:
    with pytest.raises(CapacityError, match="no truck serves paper"):
        plan_collection(DEPOT, [Truck("h", "depot", (Stream.HOUSEHOLD,), 10_000)], timedelta(days=1),
                        [forecast(0, stream=Stream.PAPER)], plan_time=NOW)


def test_nothing_due_gives_an_empty_plan() -> None:
    plan = plan_collection(DEPOT, [Truck("h", "depot", (Stream.HOUSEHOLD,), 10_000)], timedelta(hours=1),
                           [forecast(0, fill=0.1)], plan_time=NOW)
    assert plan.routes == () and plan.total_distance_m == 0
