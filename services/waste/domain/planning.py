"""Collection-round planning: which containers to empty this round, and in what order, by which truck.

:func:`plan_collection` selects the containers predicted to reach ``collect_at_ratio`` (80 %, the
full alert's first level) before the next round, ``horizon`` from now, and routes them with VROOM
(``pyvroom``), a capacitated vehicle-routing solver: every truck leaves the depot and returns to it
once (one trip per round), carries at most its ``capacity_l``, and only takes the streams it
serves (VROOM skills). The objective is total distance.

Distances: no street graph is loaded, so a leg's length along the streets is estimated as the
great-circle (haversine) distance times :data:`DETOUR_FACTOR` = 1.3, the usual circuity of a dense
urban grid (measured ratios of network to straight-line distance cluster around 1.2-1.4 in city
centres). The factor scales every leg alike, so it changes reported lengths, not the chosen order.
Durations for VROOM assume :data:`SPEED_KMH` and :data:`SERVICE_S` per container; the objective is
distance (VROOM's cost matrix), durations only make the reported schedule plausible.

VROOM is a solver library, not transport, so calling it here keeps the domain pure in Madina's
sense (no Kafka, faust, gRPC, HTTP or protobuf). It is a heuristic: ``exploration_level`` and
``time_limit`` bound its search, and a time-limited run may return different (equally valid)
routes on a busier machine.

Two phases. Collection routes are long (about 100 stops per truck on the bench), and VROOM's
vehicle-routing local search converges slowly on routes that long: 195 s on the bench instance
(207.5 km), and stopped after 3 s it is ~10 % above that. Most of that gap is the order *within*
routes, so each route is then re-ordered as a single-vehicle problem (a TSP, which VROOM solves
quickly) and the shorter order kept. The search gets :data:`SEARCH_SHARE` of ``time_limit``
(7 s by default), the re-ordering the rest: on the bench, median 214.5 km in 6.5 s on a loaded
2-core machine, against 262.9 km for a nearest-neighbour baseline.

On instances small enough to prove the optimum by brute force it reaches it
(``tests/unit/waste/domain/test_planning.py``); ``bench.waste.planning`` measures time and
distance against a nearest-neighbour baseline on 500 containers and 5 trucks.

A load that cannot be carried is an error, never a silent partial plan: :class:`CapacityError`
names how many containers and litres are left over (checked per stream before solving, and again
on whatever VROOM leaves unassigned).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

import numpy as np

from services.waste.domain.containers import Container, Depot, Stream, Truck
from services.waste.domain.fillrate import FULL_FILL_RATIO, FillEstimate

DETOUR_FACTOR = 1.3
EARTH_RADIUS_M = 6_371_008.8
SPEED_KMH = 20.0
SERVICE_S = 60
DEFAULT_EXPLORATION_LEVEL = 1
DEFAULT_TIME_LIMIT = timedelta(seconds=7)
SEARCH_SHARE = 0.5
"""Share of ``time_limit`` for the routing search; the rest bounds the per-route re-ordering."""
POLISH_EXPLORATION_LEVEL = 0
_STREAM_SKILL = {stream: index + 1 for index, stream in enumerate(Stream)}


class CapacityError(ValueError):
    """The selected containers do not fit the trucks; names what is left over."""

    def __init__(self, unassigned: Sequence[ContainerForecast], reason: str) -> None:
        self.unassigned_container_ids = tuple(f.container.id for f in unassigned)
        self.unassigned_l = sum(f.load_l for f in unassigned)
        shown = ", ".join(self.unassigned_container_ids[:5])
        more = f" and {len(unassigned) - 5} more" if len(unassigned) > 5 else ""
        super().__init__(
            f"{len(unassigned)} containers ({self.unassigned_l} L) cannot be collected this round: {reason} "
            f"({shown}{more})"
        )


@dataclass(frozen=True)
class ContainerForecast:
    """A container with its fill now (at the plan time) and its fill rate."""

    container: Container
    fill_ratio: float
    rate_per_hour: float = 0.0

    @classmethod
    def from_estimate(cls, container: Container, estimate: FillEstimate, now: datetime) -> ContainerForecast:
        return cls(container, estimate.fill_at(now), estimate.rate_per_hour)

    def fill_after(self, horizon: timedelta) -> float:
        return min(1.0, self.fill_ratio + self.rate_per_hour * horizon.total_seconds() / 3600)

    @property
    def load_l(self) -> int:
        """Litres the truck takes in: the fill now (the round is short next to the horizon)."""
        return math.ceil(min(1.0, max(0.0, self.fill_ratio)) * self.container.volume_l)


@dataclass(frozen=True)
class Route:
    """One truck's round: depot, the containers in order, depot."""

    truck_id: str
    container_ids: tuple[str, ...]
    load_l: int
    distance_m: float
    duration_s: int


@dataclass(frozen=True)
class CollectionPlan:
    depot_id: str
    plan_time: datetime
    horizon: timedelta
    routes: tuple[Route, ...]
    """One per truck that has work, in the order the trucks were given."""

    @property
    def total_distance_m(self) -> float:
        return sum(route.distance_m for route in self.routes)

    @property
    def container_ids(self) -> list[str]:
        return [cid for route in self.routes for cid in route.container_ids]


def haversine_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance in metres between two (lat, lon) points in degrees."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


def street_distance_matrix_m(points: Sequence[tuple[float, float]]) -> np.ndarray:
    """Estimated street distance (haversine x :data:`DETOUR_FACTOR`) between every pair, metres."""
    coords = np.radians(np.asarray(points, dtype=float).reshape(-1, 2))
    lat, lon = coords[:, 0:1], coords[:, 1:2]
    h = np.sin((lat.T - lat) / 2) ** 2 + np.cos(lat) * np.cos(lat.T) * np.sin((lon.T - lon) / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))) * DETOUR_FACTOR


def route_distance_m(matrix: np.ndarray, stops: Sequence[int]) -> float:
    """Length of depot (index 0) -> stops -> depot in ``matrix``."""
    path = [0, *stops, 0]
    return float(sum(matrix[a, b] for a, b in pairwise(path)))


def catchment(depot: Depot, depots: Sequence[Depot], trucks: Sequence[Truck],
              containers: Iterable[Container]) -> list[Container]:
    """The containers ``depot``'s rounds collect: those of its city whose nearest depot with a truck
    for their stream is this one.

    Every container belongs to exactly one depot, so two depots of a city never send trucks to the
    same container. A stream no depot of the city can carry goes to the nearest depot anyway, where
    planning refuses it with a clear CapacityError instead of dropping it unseen. Ties go to the
    smaller depot id, so the split never depends on the order of the fleet file.
    """
    city_depots = [d for d in depots if d.city == depot.city]
    streams_at = {d.id: {stream for truck in trucks if truck.depot == d.id for stream in truck.streams}
                  for d in city_depots}

    def home(container: Container) -> str:
        able = [d for d in city_depots if container.stream in streams_at[d.id]] or city_depots
        return min(able, key=lambda d: (haversine_m((d.lat, d.lon), (container.lat, container.lon)), d.id)).id

    return [c for c in containers if c.city == depot.city and home(c) == depot.id]


def select_due(
    forecasts: Sequence[ContainerForecast], horizon: timedelta, collect_at_ratio: float = FULL_FILL_RATIO
) -> list[ContainerForecast]:
    """The containers that will have reached ``collect_at_ratio`` before the next round."""
    return [f for f in forecasts if f.fill_after(horizon) >= collect_at_ratio]


def plan_collection(
    depot: Depot,
    trucks: Sequence[Truck],
    horizon: timedelta,
    forecasts: Sequence[ContainerForecast],
    *,
    plan_time: datetime,
    collect_at_ratio: float = FULL_FILL_RATIO,
    exploration_level: int = DEFAULT_EXPLORATION_LEVEL,
    time_limit: timedelta | None = DEFAULT_TIME_LIMIT,
    threads: int = 2,
) -> CollectionPlan:
    """Plan this round from ``depot``: select the due containers and route them over ``trucks``.

    Raises :class:`CapacityError` if the due containers cannot all be carried (per stream or as
    left unassigned by VROOM), ValueError for inputs no plan can be made from.
    """
    if not trucks:
        raise ValueError("trucks: at least one truck is required")
    if not 0 <= exploration_level <= 5:
        raise ValueError("exploration_level: must be 0..5")
    due = select_due(forecasts, horizon, collect_at_ratio)
    if not due:
        return CollectionPlan(depot.id, plan_time, horizon, ())
    _check_stream_capacity(due, trucks)

    points = [(depot.lat, depot.lon), *((f.container.lat, f.container.lon) for f in due)]
    distances = street_distance_matrix_m(points)
    costs = np.rint(distances).astype(np.int64)
    durations = np.rint(distances / (SPEED_KMH / 3.6)).astype(np.int64)
    vroom = _vroom()
    problem = vroom.Input()
    problem.set_durations_matrix("truck", durations)
    problem.set_costs_matrix("truck", costs)
    for index, truck in enumerate(trucks, start=1):
        problem.add_vehicle(vroom.Vehicle(
            id=index, start=0, end=0, profile="truck", capacity=[truck.capacity_l],
            skills={_STREAM_SKILL[s] for s in truck.streams},
        ))
    for index, forecast in enumerate(due, start=1):
        problem.add_job(vroom.Job(
            id=index, location=index, pickup=[forecast.load_l], default_service=SERVICE_S,
            skills={_STREAM_SKILL[forecast.container.stream]},
        ))
    started = time.monotonic()
    search_limit = time_limit * SEARCH_SHARE if time_limit is not None else None
    solution = problem.solve(exploration_level=exploration_level, nb_threads=threads, timeout=search_limit).to_dict()

    unassigned = [due[job["id"] - 1] for job in solution.get("unassigned", [])]
    if unassigned:
        raise CapacityError(unassigned, "the solver found no truck with room for them")
    by_vehicle = {route["vehicle"]: route for route in solution.get("routes", [])}
    routes: list[Route] = []
    for index, truck in enumerate(trucks, start=1):
        left = len(trucks) - index + 1
        polish_limit = None
        if time_limit is not None:
            remaining = time_limit.total_seconds() - (time.monotonic() - started)
            polish_limit = timedelta(seconds=max(0.1, remaining / left))
        route = by_vehicle.get(index)
        if route is None:
            continue
        stops = [step["id"] for step in route["steps"] if step["type"] == "job"]
        if not stops:
            continue
        stops = _polish(distances, stops, threads, polish_limit)
        routes.append(Route(
            truck_id=truck.id,
            container_ids=tuple(due[stop - 1].container.id for stop in stops),
            load_l=sum(due[stop - 1].load_l for stop in stops),
            distance_m=route_distance_m(distances, stops),
            duration_s=round(route_distance_m(distances, stops) / (SPEED_KMH / 3.6)) + SERVICE_S * len(stops),
        ))
    return CollectionPlan(depot.id, plan_time, horizon, tuple(routes))


def _vroom() -> Any:
    # Imported on first use: loading VROOM takes ~2 s, paid otherwise by every process that
    # imports the waste domain (the API, both processors, the MQTT gateway) and never plans.
    import vroom

    return vroom


def _polish(distances: np.ndarray, stops: list[int], threads: int, limit: timedelta | None) -> list[int]:
    """``stops`` re-ordered by VROOM as a TSP from and back to the depot, if that is shorter."""
    if len(stops) < 4:
        return stops
    nodes = [0, *stops]
    sub = np.rint(distances[np.ix_(nodes, nodes)]).astype(np.int64)
    vroom = _vroom()
    problem = vroom.Input()
    problem.set_durations_matrix("truck", sub)
    problem.add_vehicle(vroom.Vehicle(id=1, start=0, end=0, profile="truck"))
    for index in range(1, len(nodes)):
        problem.add_job(vroom.Job(id=index, location=index))
    solution = problem.solve(exploration_level=POLISH_EXPLORATION_LEVEL, nb_threads=threads, timeout=limit).to_dict()
    if solution.get("unassigned") or len(solution.get("routes", [])) != 1:
        return stops
    order = [nodes[step["id"]] for step in solution["routes"][0]["steps"] if step["type"] == "job"]
    if sorted(order) != sorted(stops):
        return stops
    return order if route_distance_m(distances, order) < route_distance_m(distances, stops) else stops


def _check_stream_capacity(due: Sequence[ContainerForecast], trucks: Sequence[Truck]) -> None:
    """Fail early, naming the stream, when no assignment could ever work."""
    for stream in Stream:
        wanted = [f for f in due if f.container.stream is stream]
        if not wanted:
            continue
        serving = [t for t in trucks if stream in t.streams]
        if not serving:
            raise CapacityError(wanted, f"no truck serves {stream.value}")
        capacity = sum(t.capacity_l for t in serving)
        demand = sum(f.load_l for f in wanted)
        if demand > capacity:
            # The smallest set of containers whose removal would fit is not knowable without solving;
            # report the stream's excess instead of guessing which ones.
            raise CapacityError(
                wanted,
                f"{stream.value} needs {demand} L but its trucks carry {capacity} L ({demand - capacity} L over)",
            )
