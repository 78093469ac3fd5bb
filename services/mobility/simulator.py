"""The mobility simulator: the sample feeds' buses along their schedules, posted as raw AVL fixes.

Each running trip of the city's feed reports where its bus would be given a delay: line by line a
peak-hour congestion (07-09 h and 17-19 h local) on the first route, a small random drift
elsewhere, one bus that goes silent for ten minutes every hour, and every other hour a bus
running a headway late onto its follower (bunching). Fixes go through ``POST
/v1/vehicle-positions``, the path a partner's AVL takes; the processor derives delays from them.
Cancellations need TripUpdates (``POST /v1/gtfs-rt``, protobuf), which the simulator's JSON
delivery cannot carry yet: not simulated.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

from madina.simulation import Delivery, HttpPost, SimulationContext
from services.mobility.domain.gtfs import Schedule, load_feeds
from services.mobility.domain.servicedays import ScheduledRun, runs_active


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
        routes = sorted(r.route_id for r in self.schedule.routes.values() if r.feed_id == context.city)
        self.routes = routes or sorted(self.schedule.routes)
        self.drift = {route_id: context.rng.uniform(0, 120) for route_id in self.routes}
        self._queue: list[dict[str, object]] = []

    def _delay_s(self, run: ScheduledRun, now: datetime, index: int) -> float:
        route_id = run.trip.route_id
        local_hour = now.astimezone(self.schedule.timezone_of(run.trip)).hour
        delay = self.drift[route_id]
        if route_id == self.routes[0] and local_hour in (7, 8, 17, 18):
            delay += 480  # peak congestion on the first line
        if index == 1 and now.hour % 2 == 0:
            delay += 900  # this bus runs onto the one behind it
        return delay

    def _fix(self, run: ScheduledRun, now: datetime, index: int) -> dict[str, object] | None:
        if index == 0 and now.minute < 10:
            return None  # the silent bus
        effective = now - timedelta(seconds=self._delay_s(run, now, index))
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
            for route_id in self.routes:
                runs = sorted(runs_active(self.schedule, now, route_id), key=lambda r: r.start)
                for index, run in enumerate(runs):
                    fix = self._fix(run, now, index)
                    if fix is not None:
                        self._queue.append(fix)
        deliveries: list[Delivery] = [HttpPost("/v1/vehicle-positions", body, 1) for body in self._queue[:budget]]
        del self._queue[:budget]
        return deliveries


def create(context: SimulationContext) -> MobilityGenerator:
    return MobilityGenerator(context)
