"""What the waste domain shows on the operations map: containers by fill, and the planned rounds.

Pure: a ``ContainerStatusChanged`` (waste.container-status.v1, keyed by container) in, one point
per container out; a ``CollectionPlanned`` (waste.latest-collection-plans.v1, compacted and keyed by
depot, so a depot's newest plan replaces its older one) in, one line per truck's route out, depot -> stops
in visiting order -> depot. A plan names its depot and containers only, so their positions come
from the registry the planner used (:mod:`services.waste.domain.containers`, from
``MADINA_WASTE_CONTAINERS_FILE`` and ``MADINA_WASTE_FLEET_FILE`` when set).

A container's colour follows the detector's own levels: an active fire-risk alert is CRITICAL, a
tipped-over one WARNING, a data gap UNKNOWN; otherwise the fill: WARNING from the full level the
status carries (``full_fill_ratio``), WATCH from the level under which a full alert clears.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from functools import cache

from madina.alerts import DATA_GAP_RULE_ID
from madina.contract import optional_time
from madina.maplayers import Level, MapFeature
from madina.settings import load_settings
from madina_proto.alerts.v1 import alerts_pb2
from madina_proto.waste.v1 import container_pb2, plan_pb2
from services.waste.domain.containers import Container, Depot, load_containers, load_fleet
from services.waste.domain.detector import RULE_FIRE, RULE_TIPPED, DetectionConfig
from services.waste.domain.fillrate import FULL_FILL_RATIO
from services.waste.settings import WasteSeedFiles

DOMAIN = "waste"
CONTAINER_KIND = "container"
ROUTE_KIND = "collection-route"
_WATCH_FILL_RATIO = DetectionConfig().full_clear_ratio


@cache
def _seed_files() -> WasteSeedFiles:
    return load_settings(WasteSeedFiles)


@cache
def _containers() -> Mapping[str, Container]:
    # The city's own registry (MADINA_WASTE_CONTAINERS_FILE), the one the planner routed.
    return {container.id: container for container in load_containers(_seed_files().waste_containers_file)}


@cache
def _depots() -> Mapping[str, Depot]:
    return {depot.id: depot for depot in load_fleet(_seed_files().waste_fleet_file).depots}


def container_features(message: container_pb2.ContainerStatusChanged) -> list[MapFeature]:
    """The container's point, placed by the status or else the registry; none when neither can."""
    status = message.status
    wire = status.container
    known = _containers().get(wire.container_id)
    if wire.HasField("location"):
        point = (wire.location.latitude_deg, wire.location.longitude_deg)
    elif known is not None:
        point = (known.lat, known.lon)
    else:
        return []
    level, text = container_level(status)
    details = {"district": wire.district.display_name or wire.district.district_id}
    if status.HasField("temperature_c"):
        details["temperature"] = f"{status.temperature_c:.0f} °C"
    if status.HasField("predicted_full_time"):
        details["predicted full"] = status.predicted_full_time.ToJsonString()
    return [MapFeature(
        feature_id=f"{DOMAIN}/{CONTAINER_KIND}/{wire.container_id}",
        domain=DOMAIN,
        kind=CONTAINER_KIND,
        label=f"Container {wire.container_id}",
        city_id=wire.district.city_id or (known.city if known is not None else ""),
        points=(point,),
        level=level,
        status=text,
        observe_time=optional_time(status, "last_observe_time"),
        details=details,
    )]


def container_level(status: container_pb2.ContainerStatus) -> tuple[Level, str]:
    active = {alert.rule_id for alert in status.active_alerts if alert.state != alerts_pb2.ALERT_STATE_CLEARED}
    fill = f"{status.fill_ratio * 100:.0f} % full" if status.HasField("fill_ratio") else "no reading yet"
    if RULE_FIRE in active:
        return Level.CRITICAL, f"fire risk, {fill}"
    if RULE_TIPPED in active:
        return Level.WARNING, f"tipped over, {fill}"
    if DATA_GAP_RULE_ID in active or not status.HasField("fill_ratio"):
        return Level.UNKNOWN, f"silent, last {fill}" if status.HasField("fill_ratio") else fill
    full_ratio = status.full_fill_ratio or FULL_FILL_RATIO
    if status.fill_ratio >= full_ratio:
        return Level.WARNING, fill
    if status.fill_ratio >= _WATCH_FILL_RATIO:
        return Level.WATCH, fill
    return Level.OK, fill


def collection_route_features(message: plan_pb2.CollectionPlanned) -> list[MapFeature]:
    """One line per truck's route; stops the registry cannot place are left out of the line, and a
    route with fewer than two placed points is left off."""
    depot = _depots().get(message.depot_id)
    containers = _containers()
    features = []
    for route in message.routes:
        stops = [containers[c] for c in route.container_ids if c in containers]
        ends = [(depot.lat, depot.lon)] if depot is not None else []
        points = (*ends, *((stop.lat, stop.lon) for stop in stops), *ends)
        if len(points) < 2:
            continue
        stop_count = len(route.container_ids)
        features.append(MapFeature(
            feature_id=f"{DOMAIN}/{ROUTE_KIND}/{route.truck_id}",
            domain=DOMAIN,
            kind=ROUTE_KIND,
            label=f"Truck {route.truck_id}: {stop_count} stop{'s' if stop_count != 1 else ''}",
            city_id=depot.city if depot is not None else stops[0].city,
            points=points,
            level=Level.OK,
            status=f"{route.distance_m / 1000:.1f} km, {_duration_text(route.duration.ToTimedelta())}",
            observe_time=optional_time(message, "plan_time"),
            details={"depot": depot.name if depot is not None else message.depot_id, "plan": message.plan_id,
                     "load": f"{route.load_l} l"},
        ))
    return features


def _duration_text(span: timedelta) -> str:
    minutes = round(span / timedelta(minutes=1))
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"
