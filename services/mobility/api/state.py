"""What the mobility API process holds: the static schedule, a producer, and every route's latest status.

Route status is computed by the stream processor and published on the compacted
``mobility.route-status.v1``; this process reads it from the start (no consumer group: every
replica needs every route) into :class:`madina.bus.latest.LatestByKey`. Feeds out, trip status,
route delays and vehicles are all served from it. Active alerts come from the same status rather
than from ``alerts.v1``: the processor already holds each route's active alerts (latest revision)
next to the trips they name, so the alerts feed and the trip feed describe the same moment, and
the API need not fold every revision of every domain's alerts to find mobility's open ones.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from madina.auth import Credentials
from madina.bus import EventProducer
from madina.bus.latest import LatestByKey
from madina.bus.reader import read_topic
from madina.contract import InvalidRecord
from madina_proto.mobility.v1 import status_pb2
from services.mobility.domain.avl import PathIndex
from services.mobility.domain.gtfs import Schedule
from services.mobility.settings import MobilitySettings
from services.mobility.topics import ROUTE_STATUS


@dataclass
class MobilityRuntime:
    settings: MobilitySettings
    schedule: Schedule
    credentials: Credentials
    producer: EventProducer
    latest: LatestByKey[status_pb2.RouteStatusChanged] = field(default_factory=LatestByKey)
    status_feed_ready: asyncio.Event = field(default_factory=asyncio.Event)
    producer_ready: bool = False

    @property
    def paths(self) -> PathIndex:
        return PathIndex(self.schedule)

    def statuses(self) -> list[status_pb2.RouteStatusChanged]:
        return [self.latest.values[route_id] for route_id in sorted(self.latest.values)]

    async def health(self) -> dict[str, Any]:
        return {
            "producer": "ok" if self.producer_ready else "starting",
            "status_feed": "ok" if self.status_feed_ready.is_set() else "starting",
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
