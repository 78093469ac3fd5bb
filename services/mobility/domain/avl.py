"""Raw AVL positions -> the trip run they belong to, where along it, and its delay there.

A position is projected onto its trip's path: the shape when the feed has one, else the straight
line through the stops. Stops are placed on that path by projecting each one forward from the
previous (so a loop that passes a street twice keeps its order). The delay is the position's
time minus the scheduled time at that point, interpolated between the last passed stop's
departure and the next stop's arrival (a vehicle standing at a stop is on time until its
scheduled departure). It is reported at the last passed stop.

A position naming only its route is matched to the route's active run whose schedule puts a
vehicle nearest to where it is (smallest absolute delay) among runs whose path it is on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from services.mobility.domain.geometry import Path
from services.mobility.domain.gtfs import Schedule, StopTime, Trip
from services.mobility.domain.realtime import VehiclePosition
from services.mobility.domain.servicedays import ScheduledRun, TripKey, resolve_start_date, run_of, runs_active

AT_STOP_M = 25.0


@dataclass(frozen=True)
class TripPath:
    """A trip's path and each stop's distance along it."""

    path: Path
    stop_along_m: tuple[float, ...]


@dataclass
class PathIndex:
    """Trip paths built on first use; trips sharing a shape and stop pattern share one."""

    schedule: Schedule
    _cache: dict[tuple[str | None, tuple[str, ...]], TripPath] = field(default_factory=dict)

    def of(self, trip: Trip) -> TripPath:
        pattern = tuple(st.stop_id for st in trip.stop_times)
        key = (f"{trip.feed_id}/{trip.shape_id}" if trip.shape_id else None, pattern)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache[key] = self._build(trip)
        return cached

    def _build(self, trip: Trip) -> TripPath:
        stops = [self.schedule.stops[st.stop_id].position for st in trip.stop_times]
        shape = self.schedule.shape_of(trip)
        path = Path.of(shape.points if shape is not None else stops)
        along: list[float] = []
        segment = 0
        for point in stops:
            projection = path.project(point, from_segment=segment)
            segment = projection.segment
            along.append(max(projection.along_m, along[-1] if along else 0.0))
        return TripPath(path, tuple(along))


@dataclass(frozen=True)
class PositionMatch:
    """Where a position puts its vehicle on a trip run."""

    key: TripKey
    route_id: str
    direction_id: int | None
    along_m: float
    offset_m: float
    last_stop: StopTime
    last_stop_index: int
    at_final_stop: bool
    scheduled_offset_s: float
    """Seconds past the run's scheduled start at which the schedule puts a vehicle here."""
    delay_s: int


def match_position(
    schedule: Schedule,
    paths: PathIndex,
    position: VehiclePosition,
    *,
    max_offset_m: float = 150.0,
    slack: timedelta = timedelta(minutes=30),
    previous_along_m: float | None = None,
) -> PositionMatch | None:
    """Match one AVL fix to its trip run; ``None`` if it is on no candidate run's path."""
    candidates: list[ScheduledRun] = []
    if position.trip_id is not None:
        start_date = position.start_date or resolve_start_date(schedule, position.trip_id, position.timestamp, slack)
        run = run_of(schedule, TripKey(position.trip_id, start_date)) if start_date else None
        if run is not None:
            candidates.append(run)
    elif position.route_id is not None:
        candidates.extend(runs_active(schedule, position.timestamp, position.route_id, slack))
    best: PositionMatch | None = None
    for run in candidates:
        match = _locate(run, paths.of(run.trip), position, previous_along_m)
        if match is None or match.offset_m > max_offset_m:
            continue
        if best is None or abs(match.delay_s) < abs(best.delay_s):
            best = match
    return best


def _locate(
    run: ScheduledRun, trip_path: TripPath, position: VehiclePosition, previous_along_m: float | None
) -> PositionMatch | None:
    projection = trip_path.path.project((position.lat, position.lon), near_along_m=previous_along_m)
    along = projection.along_m
    stops = run.trip.stop_times
    stop_along = trip_path.stop_along_m
    index = 0
    for i, distance in enumerate(stop_along):
        if distance <= along + AT_STOP_M:
            index = i
    stop = stops[index]
    at_stop = abs(along - stop_along[index]) <= AT_STOP_M
    now_offset = (position.timestamp - run.instant(0)).total_seconds()
    if at_stop or index == len(stops) - 1:
        # Standing at a stop: on time anywhere between its scheduled arrival and departure.
        scheduled = min(max(now_offset, stop.arrival_s), stop.departure_s)
    else:
        following = stops[index + 1]
        span = stop_along[index + 1] - stop_along[index]
        fraction = (along - stop_along[index]) / span if span > 0 else 0.0
        scheduled = stop.departure_s + (following.arrival_s - stop.departure_s) * max(0.0, min(1.0, fraction))
    return PositionMatch(
        key=run.key,
        route_id=run.trip.route_id,
        direction_id=run.trip.direction_id,
        along_m=along,
        offset_m=projection.offset_m,
        last_stop=stop,
        last_stop_index=index,
        at_final_stop=index == len(stops) - 1,
        scheduled_offset_s=scheduled - run.trip.start_s,
        delay_s=round(now_offset - scheduled),
    )


def scheduled_headway_s(schedule: Schedule, run: ScheduledRun) -> int | None:
    """Seconds between this run's start and the previous run of its route and direction that day.

    A frequencies.txt run has its window's headway, the first run of the window included.
    """
    if run.trip.headway_s is not None:
        return run.trip.headway_s
    previous: int | None = None
    service_date = run.service_date
    for trip in schedule.trips_by_route.get(run.trip.route_id, ()):
        if trip.direction_id != run.trip.direction_id or trip.start_s >= run.trip.start_s:
            continue
        if schedule.service_of(trip).runs_on(service_date):
            previous = trip.start_s if previous is None else max(previous, trip.start_s)
    if previous is None:
        return None
    return run.trip.start_s - previous


def instant_of(run: ScheduledRun, offset_s: float) -> datetime:
    return run.instant(run.trip.start_s + offset_s)
