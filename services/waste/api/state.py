"""What the waste API process holds: containers, the fleet, a producer, and every container's
live status; and the one way a collection round is planned and published.

Container status (fill, fill rate, predicted full time, active alerts) is computed by the stream
processor and published on the compacted ``waste.container-status.v1``; this process reads that
topic from the start (no consumer group: every API replica needs every container) through
:func:`madina.bus.reader.read_topic` and keeps the newest per container, so reads and plans never
touch Kafka. A status record that is not a known container's under its own key is skipped.

District indicators are the district stage's: the waste district KPIs on the compacted
``kpis.v1`` (read whole, like the status topic), served as they were published.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.json_format import MessageToDict

from madina.auth import Credentials
from madina.bus import EventProducer
from madina.bus.reader import read_topic
from madina.bus.topics import KPIS
from madina.contract import InvalidRecord
from madina_proto.kpis.v1 import kpis_pb2
from madina_proto.waste.v1 import container_pb2, plan_pb2
from services.waste.convert import (
    DISTRICT_SUMMARY_KPIS,
    container_to_pb,
    district_summary_from_kpis,
    forecast_from_status,
    plan_to_pb,
)
from services.waste.domain.containers import Container, Fleet
from services.waste.domain.detector import DOMAIN
from services.waste.domain.fillrate import FULL_FILL_RATIO
from services.waste.domain.planning import CapacityError, catchment, plan_collection
from services.waste.settings import WasteSettings
from services.waste.topics import COLLECTION_PLANS, CONTAINER_STATUS, LATEST_COLLECTION_PLANS

log = logging.getLogger(__name__)


class UnknownDepot(LookupError):
    """The request names a depot or truck the fleet does not have; the message names the field."""


@dataclass
class WasteRuntime:
    settings: WasteSettings
    containers: dict[str, Container]
    fleet: Fleet
    credentials: Credentials
    producer: EventProducer
    statuses: dict[str, container_pb2.ContainerStatus] = field(default_factory=dict)
    status_feed_ready: asyncio.Event = field(default_factory=asyncio.Event)
    # (city, district) -> kpi id -> the district KPI as last published
    district_kpis: dict[tuple[str, str], dict[str, kpis_pb2.KpiObserved]] = field(default_factory=dict)
    kpi_feed_ready: asyncio.Event = field(default_factory=asyncio.Event)
    producer_ready: bool = False

    def district_summaries(self, city: str = "") -> list[container_pb2.DistrictSummary]:
        return [district_summary_from_kpis(kpis.values())
                for (kpi_city, _), kpis in sorted(self.district_kpis.items()) if city in ("", kpi_city)]

    def status_of(self, container_id: str) -> container_pb2.ContainerStatus:
        known = self.statuses.get(container_id)
        if known is not None:
            return known
        container = container_to_pb(self.containers[container_id])
        return container_pb2.ContainerStatus(container=container, full_fill_ratio=FULL_FILL_RATIO)

    def status_json(self, container_id: str) -> dict[str, Any]:
        return MessageToDict(self.status_of(container_id), preserving_proto_field_name=True)

    async def health(self) -> dict[str, Any]:
        return {
            "producer": "ok" if self.producer_ready else "starting",
            "status_feed": "ok" if self.status_feed_ready.is_set() else "starting",
            "kpi_feed": "ok" if self.kpi_feed_ready.is_set() else "starting",
        }

    async def follow_status_feed(self) -> None:
        """Read the status topic forever; readiness is set once the backlog is read."""

        def on_status(container_id: str, event: container_pb2.ContainerStatusChanged | None) -> None:
            if event is None:
                return
            if container_id not in self.containers or event.status.container.container_id != container_id:
                raise InvalidRecord(f"container_id: status of {container_id[:200]!r} is not a known container's")
            self.statuses[container_id] = event.status

        await read_topic(self.settings.bootstrap_servers, CONTAINER_STATUS, on_status, caught_up=self.status_feed_ready)

    async def follow_kpi_feed(self) -> None:
        """Read kpis.v1 forever, keeping the waste district KPIs (no entity: the district's own)."""

        def on_kpi(_key: str, kpi: kpis_pb2.KpiObserved | None) -> None:
            if kpi is None or kpi.domain != DOMAIN or kpi.kpi_id not in DISTRICT_SUMMARY_KPIS or kpi.entity.entity_id:
                return
            self.district_kpis.setdefault((kpi.district.city_id, kpi.district.district_id), {})[kpi.kpi_id] = kpi

        await read_topic(self.settings.bootstrap_servers, KPIS, on_kpi, caught_up=self.kpi_feed_ready)

    async def plan_rounds(self) -> None:
        """Plan every served depot's next round each ``waste_round_interval_s``, with all its trucks,
        published as PlanCollection's are. The horizon is the interval: what fills up before the
        next round goes in this one. A round the trucks cannot carry is logged and skipped (the
        operator sees no new plan); the next interval tries again."""
        interval = timedelta(seconds=self.settings.waste_round_interval_s)
        cities = {container.city for container in self.containers.values()}
        depots = [depot for depot in self.fleet.depots if depot.city in cities]
        await self.status_feed_ready.wait()
        while True:
            for depot in depots:
                try:
                    await self.plan(depot.id, interval, [])
                except CapacityError as error:
                    log.warning("collection round not planned", extra={"depot_id": depot.id, "error": str(error)})
                except Exception:  # a failed publish must not end the rounds: the next one retries
                    log.exception("collection round planning failed", extra={"depot_id": depot.id})
            await asyncio.sleep(interval.total_seconds())

    async def plan(
        self, depot_id: str, horizon: timedelta, truck_ids: list[str], now: datetime | None = None
    ) -> plan_pb2.CollectionPlanned:
        """Plan a round from the served predictions and publish it on waste.collection-plans.v1 (the
        history) and waste.latest-collection-plans.v1 (the depot's current round).

        UnknownDepot for a depot or truck not in the fleet; ValueError for a bad horizon;
        :class:`~services.waste.domain.planning.CapacityError` when the due containers do not fit.
        """
        if horizon <= timedelta(0) or horizon > timedelta(days=14):
            raise ValueError("horizon: must be more than 0 and at most 14 days")
        try:
            depot = self.fleet.depot(depot_id)
        except KeyError:
            raise UnknownDepot(f"depot_id: unknown depot {depot_id[:200]!r}") from None
        based = {truck.id: truck for truck in self.fleet.trucks_at(depot.id)}
        unknown = [truck_id for truck_id in truck_ids if truck_id not in based]
        if unknown:
            raise UnknownDepot(f"truck_ids: {unknown[0][:200]!r} is not a truck of {depot.id}")
        trucks = [based[t] for t in truck_ids] if truck_ids else list(based.values())
        plan_time = (now or datetime.now(UTC)).replace(microsecond=0)
        forecasts = [
            forecast
            for container in catchment(depot, self.fleet.depots, self.fleet.trucks, self.containers.values())
            if (status := self.statuses.get(container.id)) is not None
            and (forecast := forecast_from_status(status, container, plan_time)) is not None
        ]
        limit = timedelta(seconds=self.settings.waste_plan_time_limit_s)
        plan = await asyncio.to_thread(
            plan_collection, depot, trucks, horizon, forecasts, plan_time=plan_time, time_limit=limit
        )
        message = plan_to_pb(plan)
        # The history first: a plan the compacted topic shows is always in the history too.
        await self.producer.send_and_wait(COLLECTION_PLANS, depot.id, message)
        await self.producer.send_and_wait(LATEST_COLLECTION_PLANS, depot.id, message)
        return message
