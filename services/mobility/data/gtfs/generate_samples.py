"""Writes Madina's sample GTFS feeds (berkane/, casablanca/) from the line plans below.

The feeds are checked in; this script is how they were made, so a change to a line is a change
here followed by a re-run, never a hand edit of stop_times.txt. Deterministic: the same plan
always gives byte-identical files.

Run: ``.venv/bin/python -m services.mobility.data.gtfs.generate_samples``

Every stop lies inside a district of ``madina/geo/cities.yaml`` (checked here and by the unit
tests). Berkane line 1 runs around the clock (its service day runs 04:00 to 28:00, so trips
after midnight belong to the previous day and carry times past 24:00), so there is always a bus
on the road for tests and the simulator. Line 1 and the Casablanca tram have shapes.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from madina.geo import load_cities

HERE = Path(__file__).resolve().parent

CALENDAR_START = "20260101"
CALENDAR_END = "20281231"
# Fête du Trône (30 July): weekday service is replaced by the weekend timetable.
HOLIDAYS = ("20260730", "20270730", "20280730")


@dataclass(frozen=True)
class StopPlan:
    stop_id: str
    name: str
    lat: float
    lon: float


@dataclass(frozen=True)
class LinePlan:
    route_id: str
    short_name: str
    long_name: str
    route_type: int
    color: str
    stops: tuple[str, ...]
    speed_kmh: float
    # (service_id, first departure "HH:MM", last departure "HH:MM", headway minutes), per direction 0.
    bands: tuple[tuple[str, str, str, int], ...]
    with_shape: bool
    return_offset_min: int = 0


@dataclass(frozen=True)
class FeedPlan:
    folder: str
    city_id: str
    agency_id: str
    agency_name: str
    agency_url: str
    stops: tuple[StopPlan, ...]
    lines: tuple[LinePlan, ...]


BERKANE = FeedPlan(
    folder="berkane",
    city_id="berkane",
    agency_id="BBE",
    agency_name="Berkane Bus Électrique",
    agency_url="https://example.org/madina/berkane-bus",
    stops=(
        StopPlan("BK-HH1", "Hay Hassani Terminus", 34.9335, -2.3360),
        StopPlan("BK-HH2", "Mosquée Hay Hassani", 34.9300, -2.3320),
        StopPlan("BK-HH3", "Lycée Hassan II", 34.9262, -2.3290),
        StopPlan("BK-CV1", "Place du 9 Juillet", 34.9240, -2.3230),
        StopPlan("BK-CV2", "Hôtel de Ville", 34.9215, -2.3200),
        StopPlan("BK-CV3", "Marché Central", 34.9185, -2.3170),
        StopPlan("BK-ZI1", "Gare Routière", 34.9100, -2.3160),
        StopPlan("BK-ZI2", "Zone Industrielle Nord", 34.9060, -2.3180),
        StopPlan("BK-ZI3", "Zone Industrielle Terminus", 34.9020, -2.3200),
        StopPlan("BK-HQ1", "Hay Al Qods", 34.9120, -2.3340),
        StopPlan("BK-HQ2", "Hay Al Qods Terminus", 34.9080, -2.3370),
        StopPlan("BK-HQ3", "Boulevard Mohammed V Ouest", 34.9165, -2.3290),
        StopPlan("BK-HM1", "Hay Al Massira", 34.9150, -2.3060),
        StopPlan("BK-HM2", "Hay Al Massira Est", 34.9140, -2.3000),
        StopPlan("BK-HM3", "Stade Municipal", 34.9170, -2.3100),
        StopPlan("BK-RS1", "Route de Saïdia Terminus", 34.9380, -2.3060),
        StopPlan("BK-RS2", "Université Mohammed Premier", 34.9340, -2.3090),
        StopPlan("BK-RS3", "Rond-point de Saïdia", 34.9300, -2.3120),
    ),
    lines=(
        LinePlan(
            route_id="BK-1",
            short_name="1",
            long_name="Hay Hassani - Zone Industrielle",
            route_type=3,
            color="0A7E3E",
            stops=("BK-HH1", "BK-HH2", "BK-HH3", "BK-CV1", "BK-CV2", "BK-CV3", "BK-ZI1", "BK-ZI2", "BK-ZI3"),
            speed_kmh=18.0,
            bands=(
                ("WEEKDAY", "04:00", "05:30", 30),
                ("WEEKDAY", "06:00", "19:40", 20),
                ("WEEKDAY", "20:00", "27:30", 30),
                ("WEEKEND", "04:00", "27:30", 30),
            ),
            with_shape=True,
            return_offset_min=15,
        ),
        LinePlan(
            route_id="BK-2",
            short_name="2",
            long_name="Hay Al Qods - Hay Al Massira",
            route_type=3,
            color="1565C0",
            stops=("BK-HQ2", "BK-HQ1", "BK-HQ3", "BK-CV2", "BK-CV3", "BK-HM3", "BK-HM1", "BK-HM2"),
            speed_kmh=18.0,
            bands=(("WEEKDAY", "06:15", "21:15", 60), ("WEEKEND", "07:15", "19:15", 120)),
            with_shape=False,
            return_offset_min=30,
        ),
        LinePlan(
            route_id="BK-3",
            short_name="3",
            long_name="Route de Saïdia - Hay Al Qods",
            route_type=3,
            color="C62828",
            stops=("BK-RS1", "BK-RS2", "BK-RS3", "BK-CV1", "BK-CV2", "BK-HQ3", "BK-HQ1", "BK-HQ2"),
            speed_kmh=18.0,
            bands=(("WEEKDAY", "06:15", "21:15", 60), ("WEEKEND", "07:15", "19:15", 120)),
            with_shape=False,
            return_offset_min=30,
        ),
    ),
)

CASABLANCA = FeedPlan(
    folder="casablanca",
    city_id="casablanca",
    agency_id="CTR",
    agency_name="Casa Tram",
    agency_url="https://example.org/madina/casa-tram",
    stops=(
        StopPlan("CA-SM1", "Sidi Moumen Terminus", 33.5790, -7.5060),
        StopPlan("CA-SM2", "Attacharouk", 33.5750, -7.5130),
        StopPlan("CA-SM3", "Ennassim", 33.5720, -7.5190),
        StopPlan("CA-HM1", "Hay Mohammadi", 33.5860, -7.5560),
        StopPlan("CA-HM2", "Ali Yaata", 33.5880, -7.5640),
        StopPlan("CA-HM3", "Derb Moulay Cherif", 33.5900, -7.5710),
        StopPlan("CA-CP1", "Marché Central", 33.5990, -7.6090),
        StopPlan("CA-CP2", "Casa-Port", 33.6000, -7.6130),
        StopPlan("CA-CP3", "Place des Nations Unies", 33.5960, -7.6180),
        StopPlan("CA-MA1", "Boulevard Zerktouni", 33.5810, -7.6250),
        StopPlan("CA-MA2", "Abdelmoumen", 33.5760, -7.6280),
        StopPlan("CA-MA3", "Maârif Terminus", 33.5730, -7.6350),
    ),
    lines=(
        LinePlan(
            route_id="CA-T1",
            short_name="T1",
            long_name="Sidi Moumen - Maârif",
            route_type=0,
            color="E65100",
            stops=(
                "CA-SM1", "CA-SM2", "CA-SM3", "CA-HM1", "CA-HM2", "CA-HM3",
                "CA-CP1", "CA-CP2", "CA-CP3", "CA-MA1", "CA-MA2", "CA-MA3",
            ),  # fmt: skip
            speed_kmh=20.0,
            bands=(("WEEKDAY", "06:00", "22:30", 15), ("WEEKEND", "07:00", "22:00", 20)),
            with_shape=True,
            return_offset_min=5,
        ),
    ),
)

DWELL_S = 20


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance in metres (haversine)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6_371_000 * math.asin(math.sqrt(h))


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _clock(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _path(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Stop-to-stop path along two street legs (north-south, then east-west), stops as vertices."""
    path = [points[0]]
    for previous, current in zip(points, points[1:], strict=False):
        corner = (current[0], previous[1])
        if distance_m(corner, previous) > 5 and distance_m(corner, current) > 5:
            path.append(corner)
        path.append(current)
    return path


def _write(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def build(plan: FeedPlan, out: Path) -> None:
    city = load_cities()[plan.city_id]
    stops = {stop.stop_id: stop for stop in plan.stops}
    for stop in plan.stops:
        if not any(district.contains(stop.lat, stop.lon) for district in city.districts):
            raise SystemExit(f"{plan.folder}: stop {stop.stop_id} ({stop.lat}, {stop.lon}) is in no district")
    out.mkdir(parents=True, exist_ok=True)
    _write(
        out / "agency.txt",
        ["agency_id", "agency_name", "agency_url", "agency_timezone", "agency_lang"],
        [[plan.agency_id, plan.agency_name, plan.agency_url, "Africa/Casablanca", "fr"]],
    )
    _write(
        out / "feed_info.txt",
        ["feed_publisher_name", "feed_publisher_url", "feed_lang", "feed_start_date", "feed_end_date", "feed_version",
         "feed_contact_email"],
        [["Madina sample data", "https://example.org/madina", "fr", CALENDAR_START, CALENDAR_END, "2026.11", "madina@example.org"]],
    )
    _write(
        out / "stops.txt",
        ["stop_id", "stop_name", "stop_lat", "stop_lon", "location_type"],
        [[s.stop_id, s.name, f"{s.lat:.6f}", f"{s.lon:.6f}", 0] for s in plan.stops],
    )
    _write(
        out / "routes.txt",
        ["route_id", "agency_id", "route_short_name", "route_long_name", "route_type", "route_color", "route_text_color"],
        [[ln.route_id, plan.agency_id, ln.short_name, ln.long_name, ln.route_type, ln.color, "FFFFFF"] for ln in plan.lines],
    )
    _write(
        out / "calendar.txt",
        ["service_id", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
         "start_date", "end_date"],
        [
            ["WEEKDAY", 1, 1, 1, 1, 1, 0, 0, CALENDAR_START, CALENDAR_END],
            ["WEEKEND", 0, 0, 0, 0, 0, 1, 1, CALENDAR_START, CALENDAR_END],
        ],
    )  # fmt: skip
    _write(
        out / "calendar_dates.txt",
        ["service_id", "date", "exception_type"],
        [row for day in HOLIDAYS for row in (["WEEKDAY", day, 2], ["WEEKEND", day, 1])],
    )
    trips: list[list[object]] = []
    stop_times: list[list[object]] = []
    shapes: list[list[object]] = []
    for line in plan.lines:
        for direction in (0, 1):
            sequence = line.stops if direction == 0 else tuple(reversed(line.stops))
            points = [(stops[s].lat, stops[s].lon) for s in sequence]
            path = _path(points)
            along = [0.0]
            for a, b in zip(path, path[1:], strict=False):
                along.append(along[-1] + distance_m(a, b))
            stop_along = [along[path.index(point)] for point in points]
            shape_id = f"{line.route_id}-{direction}"
            if line.with_shape:
                shapes.extend(
                    [shape_id, f"{lat:.6f}", f"{lon:.6f}", index + 1, f"{dist:.1f}"]
                    for index, ((lat, lon), dist) in enumerate(zip(path, along, strict=True))
                )
            # Offsets (s) of arrival at each stop from the first departure.
            offsets = [0]
            for index in range(1, len(sequence)):
                run = (stop_along[index] - stop_along[index - 1]) / (line.speed_kmh / 3.6)
                offsets.append(offsets[-1] + (DWELL_S if index > 1 else 0) + int(round(run / 30.0)) * 30)
            headsign = stops[sequence[-1]].name
            for service_id, first, last, headway in line.bands:
                start = _minutes(first) + (line.return_offset_min if direction == 1 else 0)
                end = _minutes(last) + (line.return_offset_min if direction == 1 else 0)
                for minute in range(start, end + 1, headway):
                    suffix = "" if service_id == "WEEKDAY" else "-WE"
                    arrow = "" if direction == 0 else "R"
                    trip_id = f"{line.short_name}{arrow}-{minute // 60:02d}{minute % 60:02d}{suffix}"
                    trips.append([
                        line.route_id, service_id, trip_id, headsign, direction,
                        shape_id if line.with_shape else "",
                    ])  # fmt: skip
                    for index, stop_id in enumerate(sequence):
                        arrival = minute * 60 + offsets[index]
                        departure = arrival + (DWELL_S if 0 < index < len(sequence) - 1 else 0)
                        stop_times.append([
                            trip_id, _clock(arrival), _clock(departure), stop_id, index + 1, 1,
                            f"{stop_along[index]:.1f}" if line.with_shape else "",
                        ])  # fmt: skip
    _write(
        out / "trips.txt",
        ["route_id", "service_id", "trip_id", "trip_headsign", "direction_id", "shape_id"],
        trips,
    )
    _write(
        out / "stop_times.txt",
        ["trip_id", "arrival_time", "departure_time", "stop_id", "stop_sequence", "timepoint", "shape_dist_traveled"],
        stop_times,
    )
    if shapes:
        _write(
            out / "shapes.txt",
            ["shape_id", "shape_pt_lat", "shape_pt_lon", "shape_pt_sequence", "shape_dist_traveled"],
            shapes,
        )
    print(f"{out}: {len(trips)} trips, {len(stop_times)} stop times, {len(shapes)} shape points")


def main() -> None:
    for plan in (BERKANE, CASABLANCA):
        build(plan, HERE / plan.folder)


if __name__ == "__main__":
    main()
