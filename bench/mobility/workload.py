"""The mobility benchmark's input: GTFS-Realtime FeedMessages of trip updates on the sample feeds.

Each FeedMessage holds ``batch`` trip updates of one route (the ingest turns it into one record);
routes take turns and each route's event time advances 20 s per feed (offset by a second per
route, so an alert's event time names the feed that caused it), so delays come and go: a
trip visited with 700 s twice raises (consecutive = 2), then on-time updates clear it once held
for 3 minutes. Route grouping is switched off in the processors (MADINA_MOBILITY_ROUTE_LATE_COUNT)
so each alert belongs to the trip update that caused it. Event times start on a fixed weekday.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from google.transit import gtfs_realtime_pb2 as rt

from services.mobility.domain.gtfs import Schedule
from services.mobility.domain.servicedays import TripKey, run_of

DAY = "20261126"  # a Thursday
START = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)
ROUTE_LATE_COUNT = 100_000


def feeds(schedule: Schedule, batch: int) -> Iterator[tuple[str, datetime, bytes]]:
    """(route id, event time, FeedMessage bytes), forever."""
    trips = {
        route_id: [t.trip_id for t in schedule.trips_by_route.get(route_id, ())
                   if run_of(schedule, TripKey(t.trip_id, DAY)) is not None]
        for route_id in sorted(schedule.routes)
    }
    cursors = {route_id: itertools.cycle(enumerate(ids)) for route_id, ids in trips.items() if ids}
    visits: dict[str, int] = {}
    for n in itertools.count():
        for index, (route_id, cursor) in enumerate(cursors.items()):
            at = START + timedelta(seconds=20 * n + index)  # unique per feed: an alert names its feed
            feed = rt.FeedMessage()
            feed.header.gtfs_realtime_version = "2.0"
            feed.header.timestamp = int(at.timestamp())
            for _ in range(min(batch, len(trips[route_id]))):
                _, trip_id = next(cursor)
                visit = visits.get(trip_id, 0)
                visits[trip_id] = visit + 1
                update = feed.entity.add(id=trip_id).trip_update
                update.trip.trip_id, update.trip.start_date = trip_id, DAY
                update.timestamp = int(at.timestamp())
                stu = update.stop_time_update.add(stop_sequence=1)
                stu.arrival.delay = 700 if visit % 8 in (0, 1) else 0
            yield route_id, at, feed.SerializeToString()
