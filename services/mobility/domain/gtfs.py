"""GTFS Schedule feeds: strict loading into plain frozen values, all or nothing.

:func:`load_feed` reads one feed (a ``.zip`` or a folder) with the standard ``csv`` module and
checks it before anything is returned: required files and columns, required values, formats
(times ``H:MM:SS`` with hours past 24 allowed, dates, coordinates), duplicate keys, references
(stop_times -> trips -> routes, stop_times -> stops, trips -> services and shapes, frequencies
-> trips), and time order within each trip. Every problem found is reported at once in one
:class:`GtfsError` whose lines name feed, file, line and field, e.g.
``berkane/stop_times.txt:14: arrival_time: '8:7:00' is not H:MM:SS``; a feed with any problem
is never half-loaded. :func:`load_feeds` loads several feeds into one :class:`Schedule`.

Why no GTFS library: partridge and gtfs-kit were measured on these sample feeds (see the
mobility report / ``services/mobility/domain/__init__.py``): they import pandas (and networkx or
geopandas/shapely) and cost several times this loader's start-up, then still need our own
strict checks (neither reports file, line and field for broken references or time order), and
the processor needs plain per-trip values, not DataFrames.

Intermediate stop times without times (non-timepoints) are interpolated by straight-line
distance between their timed neighbours, as GTFS consumers are expected to.

A trip of ``frequencies.txt`` is a template: :func:`expand_frequencies` turns it into one run per
departure of each window (``<trip_id>@<HH:MM:SS>``), which the feed's ``trips`` hold in its place
(the template stays in ``Feed.templates``). Realtime names such a run by the template's trip_id
and its start_time: :meth:`Schedule.run_id` finds it.
"""

from __future__ import annotations

import csv
import io
import math
import re
import zipfile
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.mobility.domain.geometry import LatLon, distance_m

MAX_REPORTED_PROBLEMS = 50
MEMO_SIZE = 20_000  # values of one kind a Schedule remembers (Schedule.memo): runs of ~200 trips a day for 100 days
T = TypeVar("T")

_TIME = re.compile(r"^(\d{1,3}):([0-5]\d):([0-5]\d)$")
_COLOR = re.compile(r"^[0-9A-Fa-f]{6}$")

REQUIRED_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "agency.txt": ("agency_name", "agency_url", "agency_timezone"),
    "stops.txt": ("stop_id",),
    "routes.txt": ("route_id", "route_type"),
    "trips.txt": ("route_id", "service_id", "trip_id"),
    "stop_times.txt": ("trip_id", "stop_sequence", "stop_id"),
    "calendar.txt": (
        "service_id",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "start_date",
        "end_date",
    ),
    "calendar_dates.txt": ("service_id", "date", "exception_type"),
    "shapes.txt": ("shape_id", "shape_pt_lat", "shape_pt_lon", "shape_pt_sequence"),
    "frequencies.txt": ("trip_id", "start_time", "end_time", "headway_secs"),
}
REQUIRED_FILES = ("agency.txt", "stops.txt", "routes.txt", "trips.txt", "stop_times.txt")
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class GtfsError(ValueError):
    """A feed is broken; ``problems`` lists every finding as ``feed/file:line: field: message``."""

    def __init__(self, feed: str, problems: Sequence[str]) -> None:
        self.feed = feed
        self.problems = tuple(problems)
        shown = list(self.problems[:MAX_REPORTED_PROBLEMS])
        more = len(self.problems) - len(shown)
        tail = [f"... and {more} more"] if more > 0 else []
        super().__init__(
            f"GTFS feed {feed} is invalid ({len(self.problems)} problems):\n  " + "\n  ".join(shown + tail)
        )


def parse_gtfs_time(text: str) -> int:
    """Seconds since the service day's origin for ``H:MM:SS`` (hours may exceed 24)."""
    match = _TIME.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not H:MM:SS")
    hours, minutes, seconds = (int(group) for group in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def format_gtfs_time(seconds: int) -> str:
    """Inverse of :func:`parse_gtfs_time` (``25:10:00`` for 90600)."""
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


@lru_cache(maxsize=4096)
def parse_gtfs_date(text: str) -> date:
    """``YYYYMMDD`` as used by GTFS and GTFS-Realtime ``start_date``."""
    text = text.strip()
    if len(text) != 8 or not text.isdigit():
        raise ValueError(f"{text!r} is not YYYYMMDD")
    return datetime.strptime(text, "%Y%m%d").date()


def format_gtfs_date(day: date) -> str:
    return day.strftime("%Y%m%d")


@dataclass(frozen=True, slots=True)
class Agency:
    """An operator; all agencies of one feed share its timezone."""

    agency_id: str
    name: str
    url: str
    timezone: str


@dataclass(frozen=True, slots=True)
class Stop:
    """A place where vehicles pick up or drop off riders."""

    stop_id: str
    name: str
    lat: float
    lon: float

    @property
    def position(self) -> LatLon:
        return (self.lat, self.lon)


@dataclass(frozen=True, slots=True)
class Route:
    """A line as riders know it ("Line 3")."""

    route_id: str
    agency_id: str
    short_name: str
    long_name: str
    route_type: int
    feed_id: str
    timezone: str

    @property
    def display_name(self) -> str:
        """What a dispatcher calls it: ``Line 3``."""
        return f"Line {self.short_name}" if self.short_name else self.long_name


@dataclass(frozen=True, slots=True)
class StopTime:
    """One call of a trip at a stop; times are seconds from the service day's origin."""

    stop_sequence: int
    stop_id: str
    arrival_s: int
    departure_s: int
    shape_dist_traveled: float | None = None
    interpolated: bool = False


@dataclass(frozen=True, slots=True)
class Trip:
    """One run of a vehicle along a route on any day its service runs."""

    trip_id: str
    route_id: str
    service_id: str
    direction_id: int | None
    headsign: str
    shape_id: str | None
    stop_times: tuple[StopTime, ...]
    feed_id: str = ""
    # A run expanded from frequencies.txt: its template trip, the window's headway, and whether
    # its times are exact (exact_times=1) or only the nominal departures of a headway service.
    template_trip_id: str | None = None
    headway_s: int | None = None
    exact_times: bool | None = None

    @property
    def start_s(self) -> int:
        return self.stop_times[0].departure_s

    @property
    def end_s(self) -> int:
        return self.stop_times[-1].arrival_s


@dataclass(frozen=True, slots=True)
class Service:
    """When a ``service_id`` runs: calendar.txt weekdays and range, then calendar_dates.txt exceptions."""

    service_id: str
    weekdays: tuple[bool, ...] = (False,) * 7
    start_date: date | None = None
    end_date: date | None = None
    added: frozenset[date] = frozenset()
    removed: frozenset[date] = frozenset()

    def runs_on(self, day: date) -> bool:
        if day in self.removed:
            return False
        if day in self.added:
            return True
        if self.start_date is None or self.end_date is None:
            return False
        return self.start_date <= day <= self.end_date and self.weekdays[day.weekday()]


@dataclass(frozen=True, slots=True)
class Shape:
    """A vehicle's path; ``points`` in ``shape_pt_sequence`` order."""

    shape_id: str
    points: tuple[LatLon, ...]


@dataclass(frozen=True, slots=True)
class Frequency:
    """A headway-based window of a template trip (frequencies.txt)."""

    trip_id: str
    start_s: int
    end_s: int
    headway_s: int
    exact_times: bool


@dataclass(frozen=True)
class Feed:
    """One loaded, validated GTFS feed."""

    feed_id: str
    timezone: str
    agencies: Mapping[str, Agency]
    stops: Mapping[str, Stop]
    routes: Mapping[str, Route]
    trips: Mapping[str, Trip]
    services: Mapping[str, Service]
    shapes: Mapping[str, Shape]
    frequencies: Mapping[str, tuple[Frequency, ...]] = field(default_factory=dict)
    # Trips of frequencies.txt as stop_times.txt gives them: their times only say how long the
    # trip takes between stops; ``trips`` holds their expanded runs instead (expand_frequencies).
    templates: Mapping[str, Trip] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Timetable:
    """A trip's stop times as parallel tuples, for code that runs per realtime update.

    Built once per trip (:meth:`Schedule.timetable`): reading ``arrivals_s[i]`` is far cheaper
    than walking :class:`StopTime` objects, and ``index_of_sequence`` saves a dict per update.
    """

    stop_ids: tuple[str, ...]
    arrivals_s: tuple[int, ...]
    departures_s: tuple[int, ...]
    index_of_sequence: Mapping[int, int]
    departures_sorted: bool = False
    """Departures never go back (a loaded feed's always hold: the loader refuses anything else), so
    the first stop not yet left can be found by bisection."""

    @classmethod
    def of(cls, trip: Trip) -> Timetable:
        stop_times = trip.stop_times
        departures = tuple(st.departure_s for st in stop_times)
        return cls(
            tuple(st.stop_id for st in stop_times),
            tuple(st.arrival_s for st in stop_times),
            departures,
            {st.stop_sequence: index for index, st in enumerate(stop_times)},
            all(a <= b for a, b in pairwise(departures)),
        )


@dataclass(frozen=True)
class Schedule:
    """Several feeds merged for look-ups.

    Stop, route and trip ids must be unique across feeds (prefix them per city: realtime feeds
    name trips and routes without saying which static feed they mean); service and shape ids
    stay feed-local and are reached through the trip.
    """

    feeds: tuple[Feed, ...]
    stops: Mapping[str, Stop]
    routes: Mapping[str, Route]
    trips: Mapping[str, Trip]
    trips_by_route: Mapping[str, tuple[Trip, ...]]
    _by_feed: Mapping[str, Feed]
    # Derived look-ups filled on first use (the schedule never changes once loaded).
    _timetables: dict[str, Timetable] = field(default_factory=dict, compare=False, repr=False)
    _timezones: dict[str, ZoneInfo] = field(default_factory=dict, compare=False, repr=False)
    _memos: dict[str, dict[Hashable, Any]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, feeds: Sequence[Feed]) -> Schedule:
        problems: list[str] = []
        merged: dict[str, dict[str, object]] = {name: {} for name in ("stops", "routes", "trips")}
        owner: dict[tuple[str, str], str] = {}
        for feed in feeds:
            for name, table in merged.items():
                for key, value in getattr(feed, name).items():
                    if key in table:
                        problems.append(f"{name[:-1]} id {key!r} is in both {owner[(name, key)]} and {feed.feed_id}")
                        continue
                    table[key] = value
                    owner[(name, key)] = feed.feed_id
        if problems:
            raise GtfsError(", ".join(feed.feed_id for feed in feeds), problems)
        by_route: dict[str, list[Trip]] = defaultdict(list)
        for trip in merged["trips"].values():
            assert isinstance(trip, Trip)
            by_route[trip.route_id].append(trip)
        return cls(
            feeds=tuple(feeds),
            stops=merged["stops"],  # type: ignore[arg-type]
            routes=merged["routes"],  # type: ignore[arg-type]
            trips=merged["trips"],  # type: ignore[arg-type]
            trips_by_route={
                route_id: tuple(sorted(trips, key=lambda t: (t.start_s, t.trip_id)))
                for route_id, trips in by_route.items()
            },
            _by_feed={feed.feed_id: feed for feed in feeds},
        )

    def run_id(self, trip_id: str, start_time: str | None) -> str:
        """The trip a realtime update means: a frequency template's run starting at ``start_time``
        (GTFS-Realtime names such runs by template trip_id and start_time), else ``trip_id``."""
        if trip_id in self.trips or not start_time:
            return trip_id
        try:
            return run_trip_id(trip_id, parse_gtfs_time(start_time))
        except ValueError:
            return trip_id

    def service_of(self, trip: Trip) -> Service:
        return self._by_feed[trip.feed_id].services[trip.service_id]

    def shape_of(self, trip: Trip) -> Shape | None:
        return self._by_feed[trip.feed_id].shapes.get(trip.shape_id) if trip.shape_id else None

    def route_of(self, trip: Trip) -> Route:
        return self.routes[trip.route_id]

    def timezone_of(self, trip: Trip) -> ZoneInfo:
        tz = self._timezones.get(trip.route_id)
        if tz is None:
            tz = self._timezones[trip.route_id] = ZoneInfo(self.routes[trip.route_id].timezone)
        return tz

    def memo(self, kind: str, key: Hashable, make: Callable[[], T]) -> T:
        """``make()``, remembered under ``(kind, key)`` for this schedule: values derived from it
        that code running per realtime update would otherwise work out again (``kind`` keeps each
        caller's keys apart). At most MEMO_SIZE values of a kind are kept; then they start over."""
        values = self._memos.setdefault(kind, {})
        try:
            return cast(T, values[key])
        except KeyError:
            pass
        if len(values) >= MEMO_SIZE:
            values.clear()
        value = values[key] = make()
        return value

    def timetable(self, trip: Trip) -> Timetable:
        """``trip``'s stop times as tuples; cached for the schedule's own trips (by identity)."""
        cached = self._timetables.get(trip.trip_id)
        if cached is not None and self.trips.get(trip.trip_id) is trip:
            return cached
        timetable = Timetable.of(trip)
        if self.trips.get(trip.trip_id) is trip:
            self._timetables[trip.trip_id] = timetable
        return timetable


def load_feeds(paths: Iterable[Path | str]) -> Schedule:
    """Load and validate every feed, then merge them; any problem raises :class:`GtfsError`."""
    return Schedule.of([load_feed(Path(path)) for path in paths])


def load_feed(path: Path | str, feed_id: str | None = None) -> Feed:
    """Load one feed from a folder or ``.zip``; raises :class:`GtfsError` naming every problem."""
    path = Path(path)
    feed_id = feed_id or path.stem
    if not path.exists():
        raise GtfsError(feed_id, [f"{path}: no such file or folder"])
    reader = _Reader(path, feed_id)
    try:
        return reader.load()
    finally:
        reader.close()


class _Reader:
    """One pass over a feed collecting problems; ``load`` raises if any were found."""

    def __init__(self, path: Path, feed_id: str) -> None:
        self.path = path
        self.feed_id = feed_id
        self.problems: list[str] = []
        self.archive = zipfile.ZipFile(path) if path.is_file() else None

    def close(self) -> None:
        if self.archive is not None:
            self.archive.close()

    def problem(self, file: str, line: int | None, column: str | None, message: str) -> None:
        where = f"{self.feed_id}/{file}" + (f":{line}" if line is not None else "")
        self.problems.append(f"{where}: {column}: {message}" if column else f"{where}: {message}")

    def has(self, file: str) -> bool:
        if self.archive is not None:
            return file in self.archive.namelist()
        return (self.path / file).is_file()

    def rows(self, file: str) -> Iterator[tuple[int, dict[str, str]]]:
        """``(line number, row)`` pairs; values stripped; problems for missing columns."""
        if self.archive is not None:
            text = self.archive.read(file).decode("utf-8-sig")
        else:
            text = (self.path / file).read_text(encoding="utf-8-sig")
        reader = csv.reader(io.StringIO(text))
        try:
            header = [name.strip() for name in next(reader)]
        except StopIteration:
            self.problem(file, 1, None, "empty file (no header)")
            return
        missing = [column for column in REQUIRED_COLUMNS.get(file, ()) if column not in header]
        for column in missing:
            self.problem(file, 1, column, "required column missing")
        if missing:
            return
        for values in reader:
            if not any(value.strip() for value in values):
                continue
            row = {name: (values[i].strip() if i < len(values) else "") for i, name in enumerate(header)}
            yield reader.line_num, row

    def required(self, file: str, line: int, row: Mapping[str, str], column: str) -> str | None:
        value = row.get(column, "")
        if not value:
            self.problem(file, line, column, "required value missing")
            return None
        return value

    def number(
        self, file: str, line: int, row: Mapping[str, str], column: str, low: float, high: float, *, required: bool
    ) -> float | None:
        text = row.get(column, "")
        if not text:
            if required:
                self.problem(file, line, column, "required value missing")
            return None
        try:
            value = float(text)
        except ValueError:
            self.problem(file, line, column, f"{text!r} is not a number")
            return None
        if not (low <= value <= high) or math.isnan(value):
            self.problem(file, line, column, f"{text} is outside [{low:g}, {high:g}]")
            return None
        return value

    def integer(self, file: str, line: int, row: Mapping[str, str], column: str, *, required: bool) -> int | None:
        text = row.get(column, "")
        if not text:
            if required:
                self.problem(file, line, column, "required value missing")
            return None
        if not text.lstrip("-").isdigit():
            self.problem(file, line, column, f"{text!r} is not an integer")
            return None
        return int(text)

    def time(self, file: str, line: int, row: Mapping[str, str], column: str) -> int | None:
        text = row.get(column, "")
        if not text:
            return None
        try:
            return parse_gtfs_time(text)
        except ValueError as error:
            self.problem(file, line, column, str(error))
            return None

    def day(self, file: str, line: int, row: Mapping[str, str], column: str) -> date | None:
        text = self.required(file, line, row, column)
        if text is None:
            return None
        try:
            return parse_gtfs_date(text)
        except ValueError as error:
            self.problem(file, line, column, str(error))
            return None

    def load(self) -> Feed:
        for file in REQUIRED_FILES:
            if not self.has(file):
                self.problem(file, None, None, "required file missing")
        if not self.has("calendar.txt") and not self.has("calendar_dates.txt"):
            self.problem(
                "calendar.txt", None, None, "required file missing (neither calendar.txt nor calendar_dates.txt)"
            )
        if self.problems:
            raise GtfsError(self.feed_id, self.problems)
        agencies = self._agencies()
        timezone = next(iter(agencies.values())).timezone if agencies else "UTC"
        stops = self._stops()
        routes = self._routes(agencies, timezone)
        services = self._services()
        shapes = self._shapes() if self.has("shapes.txt") else {}
        trips = self._trips(routes, services, shapes, stops)
        frequencies = self._frequencies(trips) if self.has("frequencies.txt") else {}
        if self.problems:
            raise GtfsError(self.feed_id, self.problems)
        templates = {trip_id: trips[trip_id] for trip_id in frequencies}
        runs = {run.trip_id: run for trip_id, windows in frequencies.items()
                for run in expand_frequencies(trips[trip_id], windows)}
        trips = {**{k: v for k, v in trips.items() if k not in templates}, **runs}
        return Feed(self.feed_id, timezone, agencies, stops, routes, trips, services, shapes, frequencies, templates)

    def _agencies(self) -> dict[str, Agency]:
        file = "agency.txt"
        agencies: dict[str, Agency] = {}
        timezones: set[str] = set()
        for line, row in self.rows(file):
            name = self.required(file, line, row, "agency_name")
            url = self.required(file, line, row, "agency_url")
            tz = self.required(file, line, row, "agency_timezone")
            if tz is not None:
                try:
                    ZoneInfo(tz)
                except (ZoneInfoNotFoundError, ValueError):
                    self.problem(file, line, "agency_timezone", f"{tz!r} is not an IANA timezone")
                    tz = None
            agency_id = row.get("agency_id", "")
            if agency_id in agencies:
                self.problem(file, line, "agency_id", f"duplicate {agency_id!r}")
            if name is None or url is None or tz is None:
                continue
            timezones.add(tz)
            agencies[agency_id] = Agency(agency_id, name, url, tz)
        if not agencies and not self.problems:
            self.problem(file, None, None, "no agency")
        if len(timezones) > 1:
            self.problem(file, None, "agency_timezone", f"agencies disagree on the timezone ({sorted(timezones)})")
        return agencies

    def _stops(self) -> dict[str, Stop]:
        file = "stops.txt"
        stops: dict[str, Stop] = {}
        for line, row in self.rows(file):
            stop_id = self.required(file, line, row, "stop_id")
            if stop_id is None:
                continue
            if stop_id in stops:
                self.problem(file, line, "stop_id", f"duplicate {stop_id!r}")
                continue
            location_type = row.get("location_type") or "0"
            located = location_type in ("0", "1", "2")
            lat = self.number(file, line, row, "stop_lat", -90, 90, required=located)
            lon = self.number(file, line, row, "stop_lon", -180, 180, required=located)
            name = row.get("stop_name", "")
            if located and not name:
                self.problem(file, line, "stop_name", "required value missing")
            if lat is None or lon is None:
                continue
            stops[stop_id] = Stop(stop_id, name, lat, lon)
        return stops

    def _routes(self, agencies: Mapping[str, Agency], timezone: str) -> dict[str, Route]:
        file = "routes.txt"
        routes: dict[str, Route] = {}
        for line, row in self.rows(file):
            route_id = self.required(file, line, row, "route_id")
            route_type = self.integer(file, line, row, "route_type", required=True)
            if route_id is None or route_type is None:
                continue
            if route_id in routes:
                self.problem(file, line, "route_id", f"duplicate {route_id!r}")
                continue
            agency_id = row.get("agency_id", "")
            if agency_id not in agencies:
                if agency_id or len(agencies) > 1:
                    self.problem(file, line, "agency_id", f"{agency_id!r} is not in agency.txt")
                    continue
                agency_id = next(iter(agencies), "")
            short_name, long_name = row.get("route_short_name", ""), row.get("route_long_name", "")
            if not short_name and not long_name:
                self.problem(file, line, "route_short_name", "route_short_name or route_long_name is required")
            color = row.get("route_color", "")
            if color and not _COLOR.match(color):
                self.problem(file, line, "route_color", f"{color!r} is not a six-digit hex colour")
            routes[route_id] = Route(route_id, agency_id, short_name, long_name, route_type, self.feed_id, timezone)
        return routes

    def _services(self) -> dict[str, Service]:
        services: dict[str, Service] = {}
        if self.has("calendar.txt"):
            file = "calendar.txt"
            for line, row in self.rows(file):
                service_id = self.required(file, line, row, "service_id")
                if service_id is None:
                    continue
                if service_id in services:
                    self.problem(file, line, "service_id", f"duplicate {service_id!r}")
                    continue
                weekdays = []
                for name in _WEEKDAYS:
                    flag = row.get(name, "")
                    if flag not in ("0", "1"):
                        self.problem(file, line, name, f"{flag!r} is not 0 or 1")
                    weekdays.append(flag == "1")
                start, end = self.day(file, line, row, "start_date"), self.day(file, line, row, "end_date")
                if start is not None and end is not None and end < start:
                    self.problem(file, line, "end_date", f"{format_gtfs_date(end)} is before start_date")
                services[service_id] = Service(service_id, tuple(weekdays), start, end)
        if self.has("calendar_dates.txt"):
            file = "calendar_dates.txt"
            added: dict[str, set[date]] = defaultdict(set)
            removed: dict[str, set[date]] = defaultdict(set)
            for line, row in self.rows(file):
                service_id = self.required(file, line, row, "service_id")
                day = self.day(file, line, row, "date")
                kind = row.get("exception_type", "")
                if kind not in ("1", "2"):
                    self.problem(file, line, "exception_type", f"{kind!r} is not 1 (added) or 2 (removed)")
                    continue
                if service_id is None or day is None:
                    continue
                (added if kind == "1" else removed)[service_id].add(day)
            for service_id in sorted(set(added) | set(removed)):
                base = services.get(service_id, Service(service_id))
                services[service_id] = Service(
                    service_id,
                    base.weekdays,
                    base.start_date,
                    base.end_date,
                    frozenset(added.get(service_id, ())),
                    frozenset(removed.get(service_id, ())),
                )
        return services

    def _shapes(self) -> dict[str, Shape]:
        file = "shapes.txt"
        points: dict[str, list[tuple[int, int, LatLon]]] = defaultdict(list)
        for line, row in self.rows(file):
            shape_id = self.required(file, line, row, "shape_id")
            lat = self.number(file, line, row, "shape_pt_lat", -90, 90, required=True)
            lon = self.number(file, line, row, "shape_pt_lon", -180, 180, required=True)
            sequence = self.integer(file, line, row, "shape_pt_sequence", required=True)
            if shape_id is None or lat is None or lon is None or sequence is None:
                continue
            points[shape_id].append((sequence, line, (lat, lon)))
        shapes: dict[str, Shape] = {}
        for shape_id, entries in points.items():
            entries.sort()
            for (seq_a, _, _), (seq_b, line_b, _) in pairwise(entries):
                if seq_a == seq_b:
                    self.problem(file, line_b, "shape_pt_sequence", f"duplicate {seq_b} in shape {shape_id!r}")
            if len(entries) < 2:
                self.problem(file, entries[0][1], "shape_id", f"shape {shape_id!r} has fewer than two points")
            shapes[shape_id] = Shape(shape_id, tuple(point for _, _, point in entries))
        return shapes

    def _trips(
        self,
        routes: Mapping[str, Route],
        services: Mapping[str, Service],
        shapes: Mapping[str, Shape],
        stops: Mapping[str, Stop],
    ) -> dict[str, Trip]:
        file = "trips.txt"
        headers: dict[str, tuple[str, str, int | None, str, str | None]] = {}
        for line, row in self.rows(file):
            trip_id = self.required(file, line, row, "trip_id")
            route_id = self.required(file, line, row, "route_id")
            service_id = self.required(file, line, row, "service_id")
            if trip_id is None or route_id is None or service_id is None:
                continue
            if trip_id in headers:
                self.problem(file, line, "trip_id", f"duplicate {trip_id!r}")
                continue
            if route_id not in routes:
                self.problem(file, line, "route_id", f"{route_id!r} is not in routes.txt")
            if service_id not in services:
                self.problem(
                    file, line, "service_id", f"{service_id!r} is in neither calendar.txt nor calendar_dates.txt"
                )
            shape_id = row.get("shape_id") or None
            if shape_id is not None and shape_id not in shapes:
                self.problem(file, line, "shape_id", f"{shape_id!r} is not in shapes.txt")
            direction = row.get("direction_id", "")
            if direction not in ("", "0", "1"):
                self.problem(file, line, "direction_id", f"{direction!r} is not 0 or 1")
            headers[trip_id] = (
                route_id,
                service_id,
                int(direction) if direction else None,
                row.get("trip_headsign", ""),
                shape_id,
            )

        file = "stop_times.txt"
        calls: dict[str, list[tuple[int, int, str, int | None, int | None, float | None]]] = defaultdict(list)
        for line, row in self.rows(file):
            trip_id = self.required(file, line, row, "trip_id")
            stop_id = self.required(file, line, row, "stop_id")
            sequence = self.integer(file, line, row, "stop_sequence", required=True)
            arrival = self.time(file, line, row, "arrival_time")
            departure = self.time(file, line, row, "departure_time")
            dist = self.number(file, line, row, "shape_dist_traveled", 0, math.inf, required=False)
            if trip_id is None or stop_id is None or sequence is None:
                continue
            if trip_id not in headers:
                self.problem(file, line, "trip_id", f"{trip_id!r} is not in trips.txt")
                continue
            if stop_id not in stops:
                self.problem(file, line, "stop_id", f"{stop_id!r} is not in stops.txt")
                continue
            if sequence < 0:
                self.problem(file, line, "stop_sequence", f"{sequence} is negative")
                continue
            calls[trip_id].append((sequence, line, stop_id, arrival, departure, dist))

        trips: dict[str, Trip] = {}
        for trip_id, (route_id, service_id, direction_id, headsign, shape_id) in headers.items():
            entries = sorted(calls.get(trip_id, []))
            if len(entries) < 2:
                self.problem("trips.txt", None, "trip_id", f"trip {trip_id!r} has fewer than two stop times")
                continue
            stop_times = self._timed(trip_id, entries, stops)
            if stop_times is not None:
                trips[trip_id] = Trip(
                    trip_id, route_id, service_id, direction_id, headsign, shape_id, stop_times, self.feed_id
                )
        return trips

    def _timed(
        self,
        trip_id: str,
        entries: Sequence[tuple[int, int, str, int | None, int | None, float | None]],
        stops: Mapping[str, Stop],
    ) -> tuple[StopTime, ...] | None:
        """Check order and fill non-timepoint times by interpolation; ``None`` if broken."""
        file = "stop_times.txt"
        ok = True
        for (seq_a, _, _, _, _, _), (seq_b, line_b, _, _, _, _) in pairwise(entries):
            if seq_a == seq_b:
                self.problem(file, line_b, "stop_sequence", f"duplicate {seq_b} in trip {trip_id!r}")
                ok = False
        for index in (0, len(entries) - 1):
            _, line, _, arrival, departure, _ = entries[index]
            if arrival is None and departure is None:
                which = "first" if index == 0 else "last"
                self.problem(file, line, "arrival_time", f"the {which} stop of trip {trip_id!r} needs a time")
                ok = False
        if not ok:
            return None
        arrivals: list[int | None] = []
        departures: list[int | None] = []
        previous: int | None = None
        previous_line = 0
        for _, line, _, arrival, departure, _ in entries:
            arrival = arrival if arrival is not None else departure
            departure = departure if departure is not None else arrival
            if arrival is not None and departure is not None:
                if departure < arrival:
                    self.problem(file, line, "departure_time", f"{format_gtfs_time(departure)} is before arrival_time")
                    ok = False
                if previous is not None and arrival < previous:
                    self.problem(
                        file, line, "arrival_time",
                        f"{format_gtfs_time(arrival)} is before the previous stop's departure "
                        f"{format_gtfs_time(previous)} (line {previous_line})",
                    )  # fmt: skip
                    ok = False
                previous, previous_line = departure, line
            arrivals.append(arrival)
            departures.append(departure)
        dists = [entry[5] for entry in entries]
        for index in range(1, len(dists)):
            a, b = dists[index - 1], dists[index]
            if a is not None and b is not None and b < a:
                self.problem(file, entries[index][1], "shape_dist_traveled", f"{b:g} is less than the previous {a:g}")
                ok = False
        if not ok:
            return None
        positions = [stops[entry[2]].position for entry in entries]
        filled_arrivals, filled_departures, interpolated = _interpolate(arrivals, departures, positions)
        return tuple(
            StopTime(entry[0], entry[2], arrival, departure, entry[5], flag)
            for entry, arrival, departure, flag in zip(
                entries, filled_arrivals, filled_departures, interpolated, strict=True
            )
        )

    def _frequencies(self, trips: Mapping[str, Trip]) -> dict[str, tuple[Frequency, ...]]:
        file = "frequencies.txt"
        found: dict[str, list[Frequency]] = defaultdict(list)
        for line, row in self.rows(file):
            trip_id = self.required(file, line, row, "trip_id")
            start, end = self.time(file, line, row, "start_time"), self.time(file, line, row, "end_time")
            headway = self.integer(file, line, row, "headway_secs", required=True)
            exact = row.get("exact_times", "") or "0"
            if trip_id is not None and trip_id not in trips:
                self.problem(file, line, "trip_id", f"{trip_id!r} is not in trips.txt")
                continue
            if headway is not None and headway <= 0:
                self.problem(file, line, "headway_secs", f"{headway} is not positive")
                continue
            if start is None or end is None:
                self.problem(file, line, "start_time" if start is None else "end_time", "required value missing")
                continue
            if end <= start:
                self.problem(file, line, "end_time", "is not after start_time")
                continue
            if trip_id is None or headway is None:
                continue
            found[trip_id].append(Frequency(trip_id, start, end, headway, exact == "1"))
        ordered = {trip_id: tuple(sorted(entries, key=lambda f: f.start_s)) for trip_id, entries in found.items()}
        for trip_id, windows in ordered.items():
            for a, b in pairwise(windows):
                if b.start_s < a.end_s:
                    self.problem(file, None, "start_time",
                                 f"trip {trip_id!r}: window from {format_gtfs_time(b.start_s)} overlaps the one "
                                 f"ending at {format_gtfs_time(a.end_s)}")
        return ordered


def run_trip_id(template_trip_id: str, start_s: int) -> str:
    """The id of a frequency run: ``<template trip_id>@<HH:MM:SS start>``."""
    return f"{template_trip_id}@{format_gtfs_time(start_s)}"


def expand_frequencies(template: Trip, windows: Sequence[Frequency]) -> tuple[Trip, ...]:
    """The runs of a frequencies.txt trip, one :class:`Trip` per departure.

    In each window a run leaves the first stop at ``start_time + n * headway_secs`` for every
    ``n`` with that time before ``end_time`` (the GTFS rule for ``exact_times=1``: every half hour
    from 08:00 to 10:00 is 08:00 ... 09:30). Every run keeps the template's time between stops.
    For ``exact_times=0`` the same departures are only nominal (the service promises a headway,
    not times): the runs say so (``exact_times=False``) and carry the headway, and the rules judge
    them by headway only (``evaluator.headway_based``).
    """
    runs = []
    for window in windows:
        for start in range(window.start_s, window.end_s, window.headway_s):
            shift = start - template.start_s
            stop_times = tuple(replace(call, arrival_s=call.arrival_s + shift, departure_s=call.departure_s + shift)
                               for call in template.stop_times)
            runs.append(replace(template, trip_id=run_trip_id(template.trip_id, start), stop_times=stop_times,
                                template_trip_id=template.trip_id, headway_s=window.headway_s,
                                exact_times=window.exact_times))
    return tuple(runs)


def _interpolate(
    arrivals: Sequence[int | None], departures: Sequence[int | None], positions: Sequence[LatLon]
) -> tuple[list[int], list[int], list[bool]]:
    """Fill untimed calls linearly by distance between the timed calls around them."""
    along = [0.0]
    for a, b in pairwise(positions):
        along.append(along[-1] + distance_m(a, b))
    out_arr: list[int] = []
    out_dep: list[int] = []
    flags: list[bool] = []
    last_timed = 0
    for index, (arrival, departure) in enumerate(zip(arrivals, departures, strict=True)):
        if arrival is not None and departure is not None:
            out_arr.append(arrival)
            out_dep.append(departure)
            flags.append(False)
            last_timed = index
            continue
        after = next(j for j in range(index + 1, len(arrivals)) if arrivals[j] is not None)
        start, end = departures[last_timed], arrivals[after]
        assert start is not None and end is not None
        span = along[after] - along[last_timed]
        fraction = (
            (along[index] - along[last_timed]) / span if span > 0 else (index - last_timed) / (after - last_timed)
        )
        value = round(start + (end - start) * fraction)
        out_arr.append(value)
        out_dep.append(value)
        flags.append(True)
    return out_arr, out_dep, flags
