"""What the environment API process holds: stations, a producer, and the live status of every station.

Station status is computed by the stream processor and published on the compacted
``environment.station-status.v1``; this process reads that topic from the start (no consumer
group: every API replica needs every station) and keeps the latest per station in memory (madina.bus.latest), so
reads never touch Kafka and ``WatchStation`` streams changes as they arrive. A status record
that is not a known station's under its own key (:func:`~services.environment.convert.status_from_event`)
is skipped by the reader, so nothing but valid statuses is ever served.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from google.protobuf.json_format import MessageToDict

from madina.auth import Credentials
from madina.bus import EventProducer
from madina.bus.latest import LatestByKey
from madina.bus.reader import read_topic
from madina_proto.environment.v1 import station_pb2
from services.environment.api.publisher import check_observation
from services.environment.convert import station_to_pb, status_from_event
from services.environment.domain.measurands import Observation
from services.environment.domain.stations import Station
from services.environment.settings import EnvironmentSettings
from services.environment.topics import STATION_STATUS

log = logging.getLogger(__name__)


class StationStatusFeed:
    """The latest status of every station, read from the status topic: the API's and the MQTT gateway's.

    Besides serving statuses, it gives the ingest check each station's newest observation
    (:meth:`last_observe_time`), so a reading late behind it is refused wherever it comes in.
    """

    def __init__(self, stations: Mapping[str, Station]) -> None:
        self.stations = stations
        self.latest: LatestByKey[station_pb2.StationStatus] = LatestByKey()
        self.ready = asyncio.Event()  # set once the topic's backlog is read

    def last_observe_time(self, station_id: str) -> datetime | None:
        """The station's newest observation as the status feed last reported it."""
        known = self.latest.get(station_id)
        if known is None or not known.HasField("last_observe_time"):
            return None
        return known.last_observe_time.ToDatetime(tzinfo=UTC)

    def on_status(self, station_id: str, event: station_pb2.StationStatusChanged | None) -> None:
        if event is not None:
            status = status_from_event(station_id, event, self.stations)
            self.latest.put(status.station.station_id, status)

    async def follow(self, bootstrap: str) -> None:
        """Read the status topic forever; ``ready`` is set once the backlog is read."""
        await read_topic(bootstrap, STATION_STATUS, self.on_status, caught_up=self.ready)


@dataclass
class EnvironmentRuntime:
    settings: EnvironmentSettings
    stations: dict[str, Station]
    credentials: Credentials
    producer: EventProducer
    feed: StationStatusFeed = field(init=False)
    producer_ready: bool = False

    def __post_init__(self) -> None:
        self.feed = StationStatusFeed(self.stations)

    @property
    def latest(self) -> LatestByKey[station_pb2.StationStatus]:
        return self.feed.latest

    @property
    def status_feed_ready(self) -> asyncio.Event:
        return self.feed.ready

    @status_feed_ready.setter
    def status_feed_ready(self, event: asyncio.Event) -> None:
        self.feed.ready = event

    @property
    def statuses(self) -> dict[str, station_pb2.StationStatus]:
        return self.latest.values

    def status_of(self, station_id: str) -> station_pb2.StationStatus:
        known = self.statuses.get(station_id)
        if known is not None:
            return known
        return station_pb2.StationStatus(station=station_to_pb(self.stations[station_id]))

    def last_observe_time(self, station_id: str) -> datetime | None:
        return self.feed.last_observe_time(station_id)

    def check_observation(self, observation: Observation, where: str, now: datetime) -> None:
        """The ingest check (ObservationRejected naming the field) with this process's stations, bounds and feed."""
        check_observation(
            observation, self.stations, where, now, self.settings.event_time_bounds(),
            newest_observed=self.last_observe_time(observation.station_id),
        )

    def station_json(self, station: Station) -> dict[str, Any]:
        return MessageToDict(station_to_pb(station), preserving_proto_field_name=True)

    def status_json(self, station_id: str) -> dict[str, Any]:
        return MessageToDict(self.status_of(station_id), preserving_proto_field_name=True)

    async def health(self) -> dict[str, Any]:
        return {
            "producer": "ok" if self.producer_ready else "starting",
            "status_feed": "ok" if self.status_feed_ready.is_set() else "starting",
        }

    def watch(self, station_id: str) -> asyncio.Queue[station_pb2.StationStatus]:
        return self.latest.watch(station_id)

    def unwatch(self, station_id: str, queue: asyncio.Queue[station_pb2.StationStatus]) -> None:
        self.latest.unwatch(station_id, queue)

    async def follow_status_feed(self) -> None:
        await self.feed.follow(self.settings.bootstrap_servers)
