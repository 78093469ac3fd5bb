"""The mobility simulator: the sample feeds' buses along their schedules, riders' validations and car parks.

Each running trip of the city's feed reports where its bus would be given a delay: line by line a
peak-hour congestion (07-09 h and 17-19 h local) on the first route, a small random drift
elsewhere, on each line the first bus on the road silent for the first ten minutes of every hour,
and about one run in six a straggler, most of a headway late, so that the next bus of its line
catches up with it (bunching). A late bus keeps reporting past its scheduled end until it arrives.
Fixes go through ``POST /v1/vehicle-positions``, the path a partner's AVL takes; the processor
derives delays from them.

About one run in twenty is cancelled (chosen from its trip and date, so every round agrees): its
bus sends no fix, and a GTFS-Realtime TripUpdate with ``schedule_relationship: CANCELED`` goes
to ``POST /v1/gtfs-rt`` as JSON (the same ingest as protobuf). Riders validate cards on the
buses that report (``POST /v1/ticket-validations``, salted card hashes from a pool), and once an
hour a cloned card validates on two buses far apart at the same moment (the fraud alert). The
city's car parks count their cars on a daytime curve (``POST /v1/parking-occupancy``); the first
one stays full around midday (the car-park-full alert).
"""

from __future__ import annotations

import hashlib
import math
import zlib
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from madina.geo import shared_cities
from madina.simulation import Delivery, HttpPost, SimulationContext
from services.mobility.domain.cities import route_cities
from services.mobility.domain.geometry import distance_m
from services.mobility.domain.gtfs import Schedule, Trip, load_feeds
from services.mobility.domain.parking import CarPark, load_car_parks
from services.mobility.domain.servicedays import ScheduledRun, runs_active

CANCELLED_ONE_IN = 20
STRAGGLER_ONE_IN = 6
STRAGGLER_SHARE = 0.85  # of its headway late: the follower comes within 0.15 of it (bunching is under 0.25)
LATE_SLACK = timedelta(hours=1)  # how long after its scheduled end a late bus may still be on the road
CARDS = 500  # riders' cards in the pool
VALIDATION_CHANCE = 0.3  # per reporting bus and round


class MobilityGenerator:
    domain = "mobility"

    def __init__(self, context: SimulationContext, schedule: Schedule | None = None) -> None:
        from madina.settings import load_settings
        from services.mobility.settings import MobilityProcessorSettings

        settings = load_settings(MobilityProcessorSettings)
        self.context = context
        self.schedule = schedule or load_feeds(settings.mobility_gtfs_feeds)
        port = context.options.get("mobility_http_port") or settings.mobility_http_port
        self.ingest_url = f"http://127.0.0.1:{port}"
        cities = route_cities(shared_cities(), self.schedule)
        routes = sorted(route_id for route_id, city in cities.items() if city == context.city)
        self.routes = routes or sorted(self.schedule.routes)
        self.drift = {route_id: context.rng.uniform(0, 120) for route_id in self.routes}
        self.headways = headways(self.schedule, self.routes)
        parks = load_car_parks(settings.mobility_car_parks_file)
        self.car_parks = sorted((p for p in parks.values() if p.city_id == context.city), key=lambda p: p.car_park_id)
        self._queue: list[HttpPost] = []
        self._round = 0

    def _delay_s(self, run: ScheduledRun, now: datetime) -> float:
        route_id = run.trip.route_id
        local_hour = now.astimezone(self.schedule.timezone_of(run.trip)).hour
        delay = self.drift[route_id]
        if route_id == self.routes[0] and local_hour in (7, 8, 17, 18):
            delay += 480  # peak congestion on the first line
        if self.straggler(run):
            delay += STRAGGLER_SHARE * self.headways[run.trip.trip_id]  # the next bus runs onto it
        return delay

    @staticmethod
    def cancelled(run: ScheduledRun) -> bool:
        return zlib.crc32(f"{run.trip.trip_id}/{run.key.start_date}".encode()) % CANCELLED_ONE_IN == 0

    def straggler(self, run: ScheduledRun) -> bool:
        """Chosen from its trip and date like a cancellation (every round agrees); only a run with a next one."""
        chosen = zlib.crc32(f"straggler/{run.trip.trip_id}/{run.key.start_date}".encode()) % STRAGGLER_ONE_IN == 0
        return chosen and run.trip.trip_id in self.headways

    def _fix(self, run: ScheduledRun, now: datetime) -> dict[str, object] | None:
        effective = now - timedelta(seconds=self._delay_s(run, now))
        stops = run.trip.stop_times
        for a, b in pairwise(stops):
            start, end = run.departure(a), run.arrival(b)
            if start <= effective <= end:
                fraction = (effective - start) / (end - start) if end > start else 0.0
                sa, sb = self.schedule.stops[a.stop_id], self.schedule.stops[b.stop_id]
                return {
                    "vehicle_id": f"{run.trip.route_id}-{run.trip.trip_id}",
                    "trip_id": run.trip.trip_id,
                    "lat": sa.lat + (sb.lat - sa.lat) * fraction,
                    "lon": sa.lon + (sb.lon - sa.lon) * fraction,
                    "timestamp": now.isoformat(),
                }
        return None

    def next_deliveries(self, now: datetime, budget: int) -> list[Delivery]:
        now = now.astimezone(UTC)
        if not self._queue:
            self._queue = self._round_of(now)
        deliveries: list[Delivery] = list(self._queue[:budget])
        del self._queue[:budget]
        return deliveries

    def _round_of(self, now: datetime) -> list[HttpPost]:
        """One round of everything the city reports at ``now``."""
        self._round += 1
        posts: list[HttpPost] = []
        fixes: list[dict[str, object]] = []
        cancelled: list[ScheduledRun] = []
        for route_id in self.routes:
            runs = sorted(runs_active(self.schedule, now, route_id, slack=LATE_SLACK), key=lambda r: r.start)
            cancelled += [run for run in runs if self.cancelled(run) and run.start <= now <= run.end]
            on_the_road = [fix for run in runs if not self.cancelled(run) and (fix := self._fix(run, now)) is not None]
            if now.minute < 10:
                on_the_road = on_the_road[1:]  # the silent bus
            fixes += on_the_road
            posts += [HttpPost("/v1/vehicle-positions", fix, 1) for fix in on_the_road]
        if cancelled:
            posts.append(HttpPost("/v1/gtfs-rt", cancellations(cancelled, now), len(cancelled)))
        validations = self._validations(fixes, now)
        if validations:
            posts.append(HttpPost("/v1/ticket-validations", {"ticket_validations": validations}, len(validations)))
        if self.car_parks:
            counts = [self._parking(park, index, now) for index, park in enumerate(self.car_parks)]
            posts.append(HttpPost("/v1/parking-occupancy", {"parking_occupancies": counts}, len(counts)))
        return posts

    def _validations(self, fixes: list[dict[str, object]], now: datetime) -> list[dict[str, object]]:
        rng = self.context.rng
        out = []
        for fix in fixes:
            if rng.random() < VALIDATION_CHANCE:
                card = card_hash(f"{self.context.city}-{rng.randrange(CARDS)}")
                out.append(self._validation(f"{self._round}-{fix['vehicle_id']}", card, fix, now))
        if now.minute == 30 and len(fixes) >= 2:
            def where(fix: dict[str, object]) -> tuple[float, float]:
                return float(fix["lat"]), float(fix["lon"])  # type: ignore[arg-type]

            first, last = max(((a, b) for a in fixes for b in fixes),
                              key=lambda pair: distance_m(where(pair[0]), where(pair[1])))
            if distance_m(where(first), where(last)) > 1500:  # a card cannot be on both buses: the fraud case
                clone, hour = card_hash(f"{self.context.city}-cloned"), now.strftime("%Y%m%d%H")
                out += [self._validation(f"clone-{hour}-a", clone, first, now),
                        self._validation(f"clone-{hour}-b", clone, last, now)]
        return out

    def _validation(self, validation_id: str, card: str, fix: dict[str, object], now: datetime) -> dict[str, object]:
        trip = self.schedule.trips[str(fix["trip_id"])]
        return {"validation_id": validation_id, "card_hash": card, "vehicle_id": fix["vehicle_id"],
                "route_id": trip.route_id, "stop_id": self._stop_near(trip.trip_id, fix),
                "lat": fix["lat"], "lon": fix["lon"], "timestamp": now.isoformat()}

    def _stop_near(self, trip_id: str, fix: dict[str, object]) -> str:
        position = (float(fix["lat"]), float(fix["lon"]))  # type: ignore[arg-type]
        calls = self.schedule.trips[trip_id].stop_times
        return min(calls, key=lambda c: distance_m(position, self.schedule.stops[c.stop_id].position)).stop_id

    def _parking(self, park: CarPark, index: int, now: datetime) -> dict[str, object]:
        local = now.astimezone(ZoneInfo(self.schedule.routes[self.routes[0]].timezone))
        hour = local.hour + local.minute / 60
        daytime = max(0.0, math.sin(math.pi * (hour - 6) / 14)) if 6 <= hour <= 20 else 0.0
        share = 0.1 + 0.85 * daytime * (1.3 if index == 0 else 1.0) + self.context.rng.uniform(-0.03, 0.03)
        occupied = max(0, min(park.capacity, round(park.capacity * share)))
        return {"car_park_id": park.car_park_id, "occupied_spaces": occupied, "capacity_spaces": park.capacity,
                "timestamp": now.isoformat()}


def headways(schedule: Schedule, routes: list[str]) -> dict[str, int]:
    """trip_id -> seconds until the next departure of its route, direction, shape and service (the
    last of the day has none)."""
    groups: dict[tuple[str, int | None, str | None, str], list[Trip]] = defaultdict(list)
    for route_id in routes:
        for trip in schedule.trips_by_route.get(route_id, ()):
            groups[(route_id, trip.direction_id, trip.shape_id, trip.service_id)].append(trip)
    out = {}
    for trips in groups.values():
        trips.sort(key=lambda trip: trip.start_s)
        out.update({a.trip_id: b.start_s - a.start_s for a, b in pairwise(trips) if b.start_s > a.start_s})
    return out


def card_hash(card: str) -> str:
    """A card number as the operator's validators send it: salted and hashed."""
    return hashlib.sha256(f"madina-simulator-salt/{card}".encode()).hexdigest()


def cancellations(runs: list[ScheduledRun], now: datetime) -> dict[str, object]:
    """A GTFS-Realtime FeedMessage, as JSON, cancelling ``runs``."""
    stamp = str(int(now.timestamp()))
    return {
        "header": {"gtfs_realtime_version": "2.0", "incrementality": "FULL_DATASET", "timestamp": stamp},
        "entity": [{"id": f"cancel-{run.trip.trip_id}-{run.key.start_date}", "trip_update": {
            "trip": {"trip_id": run.trip.trip_id, "start_date": run.key.start_date,
                     "route_id": run.trip.route_id, "schedule_relationship": "CANCELED"},
            "timestamp": stamp}} for run in runs],
    }

def create(context: SimulationContext) -> MobilityGenerator:
    return MobilityGenerator(context)
