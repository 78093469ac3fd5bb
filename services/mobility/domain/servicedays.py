"""Service-day arithmetic: when a scheduled time of a trip on a service date actually happens.

GTFS times are offsets from "noon minus 12 h" of the service date in the agency timezone, not
from midnight: on a day the clocks change, local midnight and noon-minus-12h differ by the DST
shift, and times past 24:00:00 belong to the previous service date. A trip is therefore
identified by ``(trip_id, start_date)`` (:class:`TripKey`), as GTFS-Realtime's TripDescriptor
does, and :func:`scheduled_instant` turns (service date, offset) into a UTC instant.

Morocco (Africa/Casablanca) suspends its +01:00 offset during Ramadan, so these days exist there
too; tests also use Europe/Paris.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property, lru_cache
from typing import NamedTuple
from zoneinfo import ZoneInfo

from madina.alerts.timeutil import require_utc
from services.mobility.domain.gtfs import Schedule, StopTime, Timetable, Trip, format_gtfs_date, parse_gtfs_date

# Latest end of a trip past its service date's origin the look-ups consider (GTFS allows any).
MAX_SERVICE_DAY_SPAN = timedelta(hours=48)


@dataclass(frozen=True, order=True)
class TripKey:
    """One run of a trip: the trip id and its service date (``YYYYMMDD``, as GTFS-Realtime's ``start_date``)."""

    trip_id: str
    start_date: str

    @cached_property
    def text(self) -> str:
        """``trip_id@YYYYMMDD``: a record key and alert source id (worked out once per key: the
        evaluator looks runs up by it several times per trip update)."""
        return f"{self.trip_id}@{self.start_date}"

    @classmethod
    def parse(cls, text: str) -> TripKey:
        trip_id, _, start_date = text.rpartition("@")
        parse_gtfs_date(start_date)
        return cls(trip_id, start_date)

    @property
    def service_date(self) -> date:
        return parse_gtfs_date(self.start_date)


_KEYS: dict[tuple[str, str], TripKey] = {}
_KEYS_KEPT = 65_536


def trip_key(trip_id: str, start_date: str) -> TripKey:
    """``TripKey(trip_id, start_date)``, the same object each time while it is remembered.

    The processor names a run several times per trip update (its state, its status, its alerts):
    one shared key works out its ``text`` once instead of once per update."""
    pair = (trip_id, start_date)
    key = _KEYS.get(pair)
    if key is None:
        if len(_KEYS) >= _KEYS_KEPT:
            _KEYS.clear()
        key = _KEYS[pair] = TripKey(trip_id, start_date)
    return key


@lru_cache(maxsize=4096)
def service_day_origin(service_date: date, tz: ZoneInfo) -> datetime:
    """The instant "noon minus 12 h" of ``service_date`` in ``tz`` (UTC), the zero of GTFS times.

    Cached: every stop time of every trip update resolves through it (bench/mobility)."""
    noon = datetime.combine(service_date, time(12), tzinfo=tz).astimezone(UTC)
    return noon - timedelta(hours=12)


def scheduled_instant(service_date: date, offset_s: int, tz: ZoneInfo) -> datetime:
    """The UTC instant of a GTFS time (seconds, may exceed 86400) on ``service_date``."""
    return service_day_origin(service_date, tz) + timedelta(seconds=offset_s)


def offset_of(instant: datetime, service_date: date, tz: ZoneInfo) -> float:
    """Inverse of :func:`scheduled_instant`: seconds of ``instant`` past the service day's origin."""
    return (require_utc(instant, "instant") - service_day_origin(service_date, tz)).total_seconds()


def candidate_service_dates(instant: datetime, tz: ZoneInfo, span: timedelta = MAX_SERVICE_DAY_SPAN) -> list[date]:
    """Service dates whose trips may be running at ``instant``: its local date and the days before it."""
    local = require_utc(instant, "instant").astimezone(tz).date()
    days = span.days + 1
    return [local - timedelta(days=n) for n in range(days + 1)]


@dataclass(frozen=True)
class ScheduledRun:
    """A trip on one service date, with its instants worked out."""

    trip: Trip
    service_date: date
    tz: ZoneInfo

    @property
    def key(self) -> TripKey:
        return TripKey(self.trip.trip_id, format_gtfs_date(self.service_date))

    def instant(self, offset_s: float) -> datetime:
        return service_day_origin(self.service_date, self.tz) + timedelta(seconds=offset_s)

    def arrival(self, stop_time: StopTime) -> datetime:
        return self.instant(stop_time.arrival_s)

    def departure(self, stop_time: StopTime) -> datetime:
        return self.instant(stop_time.departure_s)

    @property
    def start(self) -> datetime:
        return self.instant(self.trip.start_s)

    @property
    def end(self) -> datetime:
        return self.instant(self.trip.end_s)


def run_of(schedule: Schedule, key: TripKey) -> ScheduledRun | None:
    """The scheduled run for ``key``, or ``None`` if the trip is unknown or its service does not run that date.

    Remembered per schedule: the processor asks for the run of every trip update."""
    return schedule.memo("run_of", (key.trip_id, key.start_date), lambda: _run_of(schedule, key))


class RunTiming(NamedTuple):
    """What per-update code needs of a scheduled run, worked out once per run (:func:`run_timing`)."""

    run: ScheduledRun
    timetable: Timetable
    origin: datetime
    """The service day's origin (:func:`service_day_origin`): scheduled offsets count from it."""
    end: datetime
    headway_based: bool
    """A frequencies.txt ``exact_times=0`` run: judged by headway, not by delay."""


def run_timing(schedule: Schedule, key: TripKey) -> RunTiming | None:
    """:func:`run_of` with its timetable, origin and end, or ``None`` as :func:`run_of` gives it.

    Remembered per schedule: the evaluator asks for every trip update, and these never change."""
    return schedule.memo("run_timing", key.text, lambda: _run_timing(schedule, key))


def _run_timing(schedule: Schedule, key: TripKey) -> RunTiming | None:
    run = run_of(schedule, key)
    if run is None:
        return None
    trip = run.trip
    return RunTiming(run, schedule.timetable(trip), service_day_origin(run.service_date, run.tz), run.end,
                     trip.exact_times is False)


def _run_of(schedule: Schedule, key: TripKey) -> ScheduledRun | None:
    trip = schedule.trips.get(key.trip_id)
    if trip is None:
        return None
    day = key.service_date
    if not schedule.service_of(trip).runs_on(day):
        return None
    return ScheduledRun(trip, day, schedule.timezone_of(trip))


def runs_active(
    schedule: Schedule, instant: datetime, route_id: str | None = None, slack: timedelta = timedelta(0)
) -> Iterator[ScheduledRun]:
    """Runs whose scheduled start - slack <= ``instant`` <= scheduled end + slack, optionally of one route."""
    instant = require_utc(instant, "instant")
    trips = schedule.trips_by_route.get(route_id, ()) if route_id is not None else tuple(schedule.trips.values())
    for trip in trips:
        tz = schedule.timezone_of(trip)
        service = schedule.service_of(trip)
        for day in candidate_service_dates(instant, tz):
            if not service.runs_on(day):
                continue
            run = ScheduledRun(trip, day, tz)
            if run.start - slack <= instant <= run.end + slack:
                yield run


def resolve_start_date(schedule: Schedule, trip_id: str, instant: datetime, slack: timedelta) -> str | None:
    """The service date of ``trip_id`` running around ``instant`` when a feed omits ``start_date``."""
    trip = schedule.trips.get(trip_id)
    if trip is None:
        return None
    tz = schedule.timezone_of(trip)
    service = schedule.service_of(trip)
    best: tuple[float, date] | None = None
    for day in candidate_service_dates(instant, tz):
        if not service.runs_on(day):
            continue
        run = ScheduledRun(trip, day, tz)
        if run.start - slack <= instant <= run.end + slack:
            distance = abs((instant - run.start).total_seconds())
            if best is None or distance < best[0]:
                best = (distance, day)
    return format_gtfs_date(best[1]) if best is not None else None
