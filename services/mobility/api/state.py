"""What the mobility API process holds: the static schedule, a producer, and every route's latest status.

Route status is computed by the stream processor and published on the compacted
``mobility.route-status.v1``; this process reads it from the start (no consumer group: every
replica needs every route) into :class:`madina.bus.latest.LatestByKey`. Feeds out, trip status,
route delays and vehicles are all served from it. Active alerts come from the same status rather
than from ``alerts.v1``: the processor already holds each route's active alerts (latest revision)
next to the trips they name, so the alerts feed and the trip feed describe the same moment, and
the API need not fold every revision of every domain's alerts to find mobility's open ones.

It also remembers, per pushing principal, the GTFS-Realtime entities it pushed
(:class:`.incrementality.FeedEntities`), so that an ``is_deleted`` entity named by id alone can be
withdrawn as that publisher last sent it: read from ``mobility.pushed-entities.v1`` at start and
followed, so every replica knows what the others accepted.

Car parks' availability (``mobility.car-park-status.v1``) and ridership counts
(``mobility.ridership.v1``, one record per counting entity, stop and hour) are compacted topics
the processor publishes too, followed the same way; ridership hours leave this process when they
leave the topic (:class:`RidershipHours`). A stop's hour is the sum of its records: one, or two
for an hour counted both before and after the processor moved from per-stop to per-route counting
(``processor/counts_stream.py``); a route's is the sum of its stops'.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from google.transit import gtfs_realtime_pb2

from madina.auth import Credentials
from madina.bus import EventProducer
from madina.bus.latest import LatestByKey
from madina.bus.reader import read_topic
from madina.contract import InvalidRecord
from madina.geo import shared_cities
from madina_proto.mobility.v1 import events_pb2, status_pb2
from services.mobility.api.incrementality import FeedEntities, pushed_entity_key_parts
from services.mobility.api.pull import FeedPoller, poll_feeds
from services.mobility.domain.avl import PathIndex
from services.mobility.domain.cities import route_cities
from services.mobility.domain.gtfs import Schedule
from services.mobility.domain.parking import CarPark
from services.mobility.settings import MobilitySettings
from services.mobility.topics import CAR_PARK_STATUS, PUSHED_ENTITIES, RIDERSHIP, RIDERSHIP_KEPT_DAYS, ROUTE_STATUS


@dataclass
class RidershipHours:
    """The hourly totals of ``mobility.ridership.v1`` (latest per key: per counting entity, stop and hour),
    as long as the topic keeps them.

    The topic keeps an hour ``RIDERSHIP_KEPT_DAYS`` (compaction keeps its final total, retention
    then deletes it), but a process that follows it would hold every hour it ever read, and one
    that starts can still read hours past the retention (a segment is deleted only when its newest
    record is old enough, and compaction merges old hours into segments with newer ones). Hours
    leave here once they end ``kept`` before now, whatever the broker did, so ``GetRidership``
    serves the same window on every replica however long it has run. Kept by hour, so expiring
    costs per hour dropped, not per count held.
    """

    kept: timedelta = timedelta(days=RIDERSHIP_KEPT_DAYS)
    hours: dict[int, dict[str, events_pb2.RidershipCounted]] = field(default_factory=dict)  # hour start (s) -> key

    def put(self, key: str, event: events_pb2.RidershipCounted, now: datetime) -> None:
        self.expire(now)
        hour = event.hour_start_time.seconds
        if hour >= self._oldest_kept(now):
            self.hours.setdefault(hour, {})[key] = event

    def expire(self, now: datetime) -> None:
        oldest = self._oldest_kept(now)
        for hour in [hour for hour in self.hours if hour < oldest]:
            del self.hours[hour]

    def events(self, now: datetime, start: int | None = None, end: int | None = None) -> list[
            events_pb2.RidershipCounted]:
        """Every total kept at ``now`` of the hours starting in [start, end) (POSIX s), in hour order."""
        self.expire(now)
        return [event for hour in sorted(self.hours) if (start is None or hour >= start) and (end is None or hour < end)
                for event in self.hours[hour].values()]

    def _oldest_kept(self, now: datetime) -> int:
        """The earliest hour start still kept: an hour leaves once its end is ``kept`` ago."""
        return int((now - self.kept).timestamp()) - 3600 + 1


@dataclass
class MobilityRuntime:
    settings: MobilitySettings
    schedule: Schedule
    credentials: Credentials
    producer: EventProducer
    car_parks: dict[str, CarPark] = field(default_factory=dict)
    latest: LatestByKey[status_pb2.RouteStatusChanged] = field(default_factory=LatestByKey)
    status_feed_ready: asyncio.Event = field(default_factory=asyncio.Event)
    car_park_status: LatestByKey[status_pb2.CarParkStatusChanged] = field(default_factory=LatestByKey)
    car_park_feed_ready: asyncio.Event = field(default_factory=asyncio.Event)
    ridership: RidershipHours = field(default_factory=RidershipHours)
    ridership_feed_ready: asyncio.Event = field(default_factory=asyncio.Event)
    pollers: list[FeedPoller] = field(default_factory=list)  # pull mode's, one per producer feed
    pushed_feeds: dict[str, FeedEntities] = field(default_factory=dict)  # push mode's, one per principal
    pushed_feeds_ready: asyncio.Event = field(default_factory=asyncio.Event)
    producer_ready: bool = False

    @property
    def paths(self) -> PathIndex:
        return PathIndex(self.schedule)

    @cached_property
    def route_cities(self) -> dict[str, str]:
        """route_id -> the city it serves (its feed's: :mod:`services.mobility.domain.cities`)."""
        return route_cities(shared_cities(), self.schedule)

    def pushed_feed(self, principal_id: str) -> FeedEntities:
        """What ``principal_id`` has pushed so far (its own: another producer's entities are not its to delete)."""
        pushed = self.pushed_feeds.get(principal_id)
        if pushed is None:
            pushed = self.pushed_feeds[principal_id] = FeedEntities(limit=self.settings.mobility_max_feed_entities)
        return pushed

    def statuses(self) -> list[status_pb2.RouteStatusChanged]:
        return [self.latest.values[route_id] for route_id in sorted(self.latest.values)]

    async def health(self) -> dict[str, Any]:
        return {
            "producer": "ok" if self.producer_ready else "starting",
            "status_feed": "ok" if self.status_feed_ready.is_set() else "starting",
            "car_park_feed": "ok" if self.car_park_feed_ready.is_set() else "starting",
            "ridership_feed": "ok" if self.ridership_feed_ready.is_set() else "starting",
            "pushed_entities": "ok" if self.pushed_feeds_ready.is_set() else "starting",
        }

    async def follow_status_feed(self) -> None:
        """Read the route status topic forever; readiness is set once the backlog is read."""

        def on_status(route_id: str, event: status_pb2.RouteStatusChanged | None) -> None:
            if event is None:
                return
            if event.route_id not in self.schedule.routes or (route_id and route_id != event.route_id):
                raise InvalidRecord(f"route_id: {event.route_id[:200]!r} is not a served route under its key")
            self.latest.put(event.route_id, event)

        await read_topic(self.settings.bootstrap_servers, ROUTE_STATUS, on_status, caught_up=self.status_feed_ready)

    async def follow_car_park_feed(self) -> None:
        """Read the car-park status topic forever; a status of an unregistered car park is skipped."""

        def on_status(car_park_id: str, event: status_pb2.CarParkStatusChanged | None) -> None:
            if event is None:
                return
            if event.car_park.car_park_id not in self.car_parks or car_park_id != event.car_park.car_park_id:
                raise InvalidRecord(f"car_park_id: {event.car_park.car_park_id[:200]!r} is not a registered "
                                    "car park under its key")
            self.car_park_status.put(car_park_id, event)

        await read_topic(self.settings.bootstrap_servers, CAR_PARK_STATUS, on_status,
                         caught_up=self.car_park_feed_ready)

    async def follow_ridership_feed(self) -> None:
        """Read the ridership totals forever (the latest per route, stop and hour is the total)."""

        def on_count(key: str, event: events_pb2.RidershipCounted | None) -> None:
            if event is None:
                return
            if event.route_id not in self.schedule.routes:
                raise InvalidRecord(f"route_id: {event.route_id[:200]!r} is not a served route")
            self.ridership.put(key, event, datetime.now(UTC))

        await read_topic(self.settings.bootstrap_servers, RIDERSHIP, on_count, caught_up=self.ridership_feed_ready)

    async def follow_pushed_entities(self) -> None:
        """Read every publisher's pushed entities forever: what this replica accepted before a restart, and
        what the others accept, so that an id-only deletion resolves on any replica (:mod:`.incrementality`)."""

        def on_entity(key: str, entity: gtfs_realtime_pb2.FeedEntity | None) -> None:
            try:
                publisher, entity_id = pushed_entity_key_parts(key)
            except ValueError as error:
                raise InvalidRecord(str(error)) from None
            if entity is not None and entity.id != entity_id:
                raise InvalidRecord(f"id: {entity.id[:200]!r} is not the entity under key {key[:200]!r}")
            self.pushed_feed(publisher).learn(entity_id, entity, time.time())

        await read_topic(self.settings.bootstrap_servers, PUSHED_ENTITIES, on_entity,
                         caught_up=self.pushed_feeds_ready)

    def ridership_counts(
        self, route_id: str = "", stop_id: str = "", start: int | None = None, end: int | None = None,
        now: datetime | None = None,
    ) -> list[tuple[str, str, int, int]]:
        """(route, stop or "", hour start in POSIX s, validations) in hour then route order; a stop's records
        of an hour are summed, and without a stop the stops of a route and hour too (the processor publishes
        no route record: its hour is its stops'). ``start``/``end``: POSIX s, inclusive/exclusive."""
        totals: dict[tuple[int, str, str], int] = {}
        for event in self.ridership.events(now or datetime.now(UTC), start, end):
            if (route_id and event.route_id != route_id) or (stop_id and event.stop_id != stop_id):
                continue
            key = (event.hour_start_time.seconds, event.route_id, event.stop_id if stop_id else "")
            totals[key] = totals.get(key, 0) + event.validations_count
        return [(route, stop, hour, count) for (hour, route, stop), count in sorted(totals.items())]

    async def poll_producer_feeds(self) -> None:
        """Poll MADINA_MOBILITY_GTFS_RT_URLS into the ingest until cancelled (nothing when it is empty)."""
        settings = self.settings
        await poll_feeds(settings.mobility_gtfs_rt_urls, self.schedule, self.producer,
                         interval_s=settings.mobility_gtfs_rt_poll_interval_s,
                         max_backoff_s=settings.mobility_gtfs_rt_max_backoff_s,
                         max_entities=settings.mobility_max_feed_entities, pollers=self.pollers)
