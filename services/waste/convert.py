"""Mapping between the waste service's wire messages (``madina.waste.v1``) and its pure domain values.

Inbound conversion is validation (through :mod:`madina.contract`): a wire value the domain cannot
hold raises :class:`~madina.contract.InvalidRecord` naming the field; plausibility (a fill ratio
of 1.2, a NaN temperature) is judged by :func:`~services.waste.domain.readings.validate_reading`,
which every boundary and the step function share.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache

from google.protobuf.duration_pb2 import Duration

from madina.alerts import AlertTransition
from madina.alerts.timeutil import time_to_text
from madina.bus.alert_events import timestamp, to_alert_event
from madina.contract import InvalidRecord, finite, optional_time, required_time
from madina.geo import shared_cities
from madina_proto.alerts.v1 import alerts_pb2
from madina_proto.common.v1 import common_pb2
from madina_proto.kpis.v1 import kpis_pb2
from madina_proto.waste.v1 import container_pb2, plan_pb2
from services.waste.domain.containers import Container, Depot, Stream, Truck
from services.waste.domain.detector import DOMAIN, Collection, ContainerStatus
from services.waste.domain.districts import ContainerSummary
from services.waste.domain.fillrate import FULL_FILL_RATIO
from services.waste.domain.kpis import (
    KPI_DISTRICT_FILL,
    KPI_FIRE_RISK,
    KPI_FULL_CONTAINERS,
    KPI_NEEDING_COLLECTION,
    KpiValue,
)
from services.waste.domain.planning import CollectionPlan, ContainerForecast
from services.waste.domain.readings import Reading

STREAM_TO_PB = {
    Stream.HOUSEHOLD: container_pb2.WASTE_STREAM_HOUSEHOLD,
    Stream.GLASS: container_pb2.WASTE_STREAM_GLASS,
    Stream.PAPER: container_pb2.WASTE_STREAM_PAPER,
    Stream.PLASTIC: container_pb2.WASTE_STREAM_PLASTIC,
}
STREAM_FROM_PB = {number: stream for stream, number in STREAM_TO_PB.items()}
_OPTIONAL_CHANNELS = ("temperature_c", "tilt_deg", "lid_open", "battery_percent")


def stream_from_pb(value: int, field: str) -> Stream:
    """The stream of a wire enum value; unspecified or unknown numbers are an InvalidRecord."""
    try:
        return STREAM_FROM_PB[value]  # type: ignore[index]
    except KeyError:
        raise InvalidRecord(f"{field}: unknown or unspecified waste stream {value}") from None


def reading_from_pb(message: container_pb2.ContainerLevelObserved, where: str = "") -> Reading:
    """Raises InvalidRecord for an ``observe_time`` no datetime holds; ``validate_reading`` judges the rest.

    A missing ``observe_time`` becomes the earliest datetime, which every later check refuses.
    """
    moment = optional_time(message, "observe_time", where) or datetime.min.replace(tzinfo=UTC)
    # Spelled out rather than looped over _OPTIONAL_CHANNELS: this runs for every reading.
    has = message.HasField
    return Reading(
        message.container_id, moment, message.fill_ratio,
        message.temperature_c if has("temperature_c") else None,
        message.tilt_deg if has("tilt_deg") else None,
        message.lid_open if has("lid_open") else None,
        message.battery_percent if has("battery_percent") else None,
    )


def readings_from_batch(batch: container_pb2.ContainerLevelObservedBatch) -> list[Reading]:
    """The batch's readings; one naming another container than the batch's key is an InvalidRecord."""
    readings = []
    container_id = batch.container_id
    for index, message in enumerate(batch.readings):
        if message.container_id != container_id:
            raise InvalidRecord(
                f"readings[{index}].container_id: {message.container_id!r} in a batch of {container_id!r}")
        try:
            readings.append(reading_from_pb(message))
        except InvalidRecord as error:  # the reading's place is named only when needed: this runs per reading
            raise InvalidRecord(f"readings[{index}].{error}") from None
    return readings


def reading_to_pb(reading: Reading) -> container_pb2.ContainerLevelObserved:
    channels = {name: getattr(reading, name) for name in _OPTIONAL_CHANNELS if getattr(reading, name) is not None}
    message = container_pb2.ContainerLevelObserved(
        container_id=reading.container_id, fill_ratio=reading.fill_ratio, **channels
    )
    message.observe_time.CopyFrom(timestamp(reading.observe_time))
    return message


def batches_by_container(readings: Iterable[Reading]) -> list[container_pb2.ContainerLevelObservedBatch]:
    """One batch per container (the record key), readings in the order given, containers sorted."""
    grouped: dict[str, list[Reading]] = defaultdict(list)
    for reading in readings:
        grouped[reading.container_id].append(reading)
    return [
        container_pb2.ContainerLevelObservedBatch(
            container_id=container_id, readings=[reading_to_pb(r) for r in grouped[container_id]]
        )
        for container_id in sorted(grouped)
    ]


def district_of(container: Container) -> common_pb2.District:
    city = shared_cities()[container.city]
    return common_pb2.District(
        city_id=container.city, district_id=container.district, display_name=city.district(container.district).name
    )


def _point(lat: float, lon: float) -> common_pb2.GeoPoint:
    return common_pb2.GeoPoint(latitude_deg=lat, longitude_deg=lon)


def _duration(span: timedelta) -> Duration:
    duration = Duration()
    duration.FromTimedelta(span)
    return duration


def container_to_pb(container: Container) -> container_pb2.Container:
    return container_pb2.Container(
        container_id=container.id,
        district=district_of(container),
        location=_point(container.lat, container.lon),
        stream=STREAM_TO_PB[container.stream],
        volume_l=container.volume_l,
        expected_interval=_duration(container.reporting_interval),
    )


@cache
def _container_pb(container: Container) -> container_pb2.Container:
    # Built once per container (a container is frozen): the processor sends a status per record.
    return container_to_pb(container)


def status_to_pb(
    status: ContainerStatus, container: Container, active_alerts: Sequence[alerts_pb2.AlertEvent] = ()
) -> container_pb2.ContainerStatus:
    """The API's view of a container; ``active_alerts`` come from the caller (e.g. the status topic)."""
    message = container_pb2.ContainerStatus()
    _write_status(message, status, container, active_alerts)
    return message


def status_changed_to_pb(
    status: ContainerStatus, container: Container, active_alerts: Sequence[alerts_pb2.AlertEvent] = ()
) -> container_pb2.ContainerStatusChanged:
    """The status as the processor publishes it, written in place (a ContainerStatus handed to the
    event's constructor would be copied into it; the processor sends one per record)."""
    event = container_pb2.ContainerStatusChanged()
    _write_status(event.status, status, container, active_alerts)
    return event


def _write_status(
    message: container_pb2.ContainerStatus, status: ContainerStatus, container: Container,
    active_alerts: Sequence[alerts_pb2.AlertEvent],
) -> None:
    # Field by field into the message: constructor keywords and loops of getattr/setattr cost more.
    message.container.CopyFrom(_container_pb(container))
    message.full_fill_ratio = FULL_FILL_RATIO
    if active_alerts:
        message.active_alerts.extend(active_alerts)
    if status.fill_ratio is not None:
        message.fill_ratio = status.fill_ratio
    if status.temperature_c is not None:
        message.temperature_c = status.temperature_c
    if status.tilt_deg is not None:
        message.tilt_deg = status.tilt_deg
    if status.lid_open is not None:
        message.lid_open = status.lid_open
    if status.battery_percent is not None:
        message.battery_percent = status.battery_percent
    if status.fill_rate_per_hour is not None:
        message.fill_ratio_per_hour = status.fill_rate_per_hour
    if status.observe_time is not None:
        message.last_observe_time.CopyFrom(timestamp(status.observe_time))
    if status.predicted_full_time is not None:
        message.predicted_full_time.CopyFrom(timestamp(status.predicted_full_time))
    if status.last_emptied_time is not None:
        message.last_emptied_time.CopyFrom(timestamp(status.last_emptied_time))


def alert_event(transition: AlertTransition, container: Container) -> alerts_pb2.AlertEvent:
    """The wire form of a transition, with the container's district (named) and position."""
    return to_alert_event(transition, district=district_of(container), location=_point(container.lat, container.lon))


@cache
def _named_district(city: str, district: str) -> common_pb2.District:
    # Looked up once per district: the processor sends a container's fill KPI per record.
    name = shared_cities()[city].district(district).name
    return common_pb2.District(city_id=city, district_id=district, display_name=name)


def kpi_to_pb(kpi: KpiValue) -> kpis_pb2.KpiObserved:
    message = kpis_pb2.KpiObserved(
        domain=DOMAIN,
        kpi_id=kpi.kpi_id,
        display_name=kpi.display_name,
        district=_named_district(kpi.city, kpi.district),
        value=kpi.value,
        unit=kpi.unit,
        band_level=kpi.band_level,
        observe_time=timestamp(kpi.observe_time),
    )
    if kpi.entity_id is not None:
        message.entity.CopyFrom(common_pb2.EntityRef(domain=DOMAIN, kind="container", entity_id=kpi.entity_id))
    return message


def depot_to_pb(depot: Depot) -> plan_pb2.Depot:
    return plan_pb2.Depot(
        depot_id=depot.id, display_name=depot.name, city_id=depot.city, location=_point(depot.lat, depot.lon)
    )


def truck_to_pb(truck: Truck) -> plan_pb2.Truck:
    return plan_pb2.Truck(
        truck_id=truck.id, depot_id=truck.depot, streams=[STREAM_TO_PB[s] for s in truck.streams],
        capacity_l=truck.capacity_l,
    )


def plan_id(plan: CollectionPlan) -> str:
    """Deterministic: one plan per depot and plan time."""
    return f"{plan.depot_id}/{time_to_text(plan.plan_time)}"


def plan_to_pb(plan: CollectionPlan) -> plan_pb2.CollectionPlanned:
    return plan_pb2.CollectionPlanned(
        plan_id=plan_id(plan),
        depot_id=plan.depot_id,
        plan_time=timestamp(plan.plan_time),
        horizon=_duration(plan.horizon),
        routes=[
            plan_pb2.CollectionRoute(
                truck_id=route.truck_id,
                container_ids=list(route.container_ids),
                load_l=route.load_l,
                distance_m=route.distance_m,
                duration=_duration(timedelta(seconds=route.duration_s)),
            )
            for route in plan.routes
        ],
        total_distance_m=plan.total_distance_m,
    )


def collection_to_pb(collection: Collection, container: Container) -> container_pb2.ContainerCollected:
    return container_pb2.ContainerCollected(
        container_id=collection.container_id,
        district=district_of(container),
        stream=STREAM_TO_PB[container.stream],
        previous_reading_time=timestamp(collection.previous_reading_time),
        detect_time=timestamp(collection.detect_time),
        fill_ratio_before=collection.fill_ratio_before,
        fill_ratio_after=collection.fill_ratio_after,
        collected_l=collection.collected_l,
    )


def forecast_from_status(
    status: container_pb2.ContainerStatus, container: Container, now: datetime
) -> ContainerForecast | None:
    """What planning needs from a served status: the fill extrapolated to ``now`` at the estimated
    rate (no rate yet: the judged fill as it stands); ``None`` for a container that never reported."""
    if not status.HasField("fill_ratio") or not status.HasField("last_observe_time"):
        return None
    rate = status.fill_ratio_per_hour if status.HasField("fill_ratio_per_hour") else 0.0
    since = status.last_observe_time.ToDatetime(tzinfo=UTC)
    hours = max(0.0, (now - since).total_seconds() / 3600)
    return ContainerForecast(container, min(1.0, status.fill_ratio + rate * hours), rate)


def summary_to_pb(summary: ContainerSummary) -> container_pb2.ContainerSummaryChanged:
    message = container_pb2.ContainerSummaryChanged(
        container_id=summary.container_id,
        district=common_pb2.District(city_id=summary.city, district_id=summary.district),
        needs_collection=summary.needs_collection, fire_risk=summary.fire_risk,
        change_time=timestamp(summary.change_time),
    )
    if summary.fill_ratio is not None:
        message.fill_ratio = summary.fill_ratio
    return message


def summary_from_pb(message: container_pb2.ContainerSummaryChanged) -> ContainerSummary:
    if not message.container_id or not message.district.city_id or not message.district.district_id:
        raise InvalidRecord("container_id, district: required")
    fill = finite(message.fill_ratio, "fill_ratio") if message.HasField("fill_ratio") else None
    if fill is not None and not 0.0 <= fill <= 1.0:
        raise InvalidRecord(f"fill_ratio: must be within 0..1, got {fill}")
    return ContainerSummary(message.container_id, message.district.city_id, message.district.district_id, fill,
                            message.needs_collection, message.fire_risk, required_time(message, "change_time"))


_SUMMARY_FIELDS = {
    KPI_DISTRICT_FILL: "mean_fill_ratio", KPI_FULL_CONTAINERS: "full_count",
    KPI_NEEDING_COLLECTION: "needing_collection_count", KPI_FIRE_RISK: "fire_risk_count",
}
DISTRICT_SUMMARY_KPIS = frozenset(_SUMMARY_FIELDS)


def district_summary_from_kpis(kpis: Iterable[kpis_pb2.KpiObserved]) -> container_pb2.DistrictSummary:
    """One district's ``DistrictSummary`` from its district KPIs as published on kpis.v1."""
    summary = container_pb2.DistrictSummary()
    for kpi in kpis:
        summary.district.CopyFrom(kpi.district)
        name = _SUMMARY_FIELDS[kpi.kpi_id]
        setattr(summary, name, kpi.value if name == "mean_fill_ratio" else int(kpi.value))
        if kpi.observe_time.ToDatetime() > summary.observe_time.ToDatetime():
            summary.observe_time.CopyFrom(kpi.observe_time)
    return summary
