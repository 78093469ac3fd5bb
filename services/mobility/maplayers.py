"""What the mobility domain shows on the operations map: its buses, coloured by delay.

Pure: a ``RouteStatusChanged`` (mobility.route-status.v1, keyed by route) in, one point per
vehicle with a position out. The colours follow the processor's own delay thresholds
(:class:`~services.mobility.domain.evaluator.MobilityConfig`), so a bus turns WARNING exactly when
its trip-delay alert can be raised and CRITICAL when it escalates to major.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from madina.contract import optional_time
from madina.geo import shared_cities
from madina.maplayers import Level, MapFeature
from madina_proto.mobility.v1 import mobility_service_pb2, status_pb2
from services.mobility.domain import cities as places
from services.mobility.domain.evaluator import MobilityConfig

DOMAIN = "mobility"
KIND = "bus"
_CONFIG = MobilityConfig()


def bus_features(message: status_pb2.RouteStatusChanged) -> list[MapFeature]:
    """One point per vehicle of the route that has a position; a vehicle without one is left off."""
    now = optional_time(message, "status_time")
    return [
        feature for vehicle in message.vehicles if (feature := bus_feature(vehicle, now, _CONFIG)) is not None
    ]


def bus_feature(
    vehicle: mobility_service_pb2.VehicleStatus, now: datetime | None, config: MobilityConfig
) -> MapFeature | None:
    if not vehicle.HasField("position"):
        return None
    lat, lon = vehicle.position.latitude_deg, vehicle.position.longitude_deg
    report_time = optional_time(vehicle, "report_time")
    delay_s = vehicle.delay_s if vehicle.HasField("delay_s") else None
    level, status = delay_level(delay_s, report_time, now, config, on_trip=bool(vehicle.trip_id))
    details = {"route": vehicle.route_id}
    if vehicle.trip_id:
        details["trip"] = vehicle.trip_id
    if vehicle.last_stop_id:
        details["last stop"] = vehicle.last_stop_id
    return MapFeature(
        feature_id=f"{DOMAIN}/{KIND}/{vehicle.vehicle_id}",
        domain=DOMAIN,
        kind=KIND,
        label=f"Bus {vehicle.vehicle_id} (route {vehicle.route_id})",
        city_id=city_at(lat, lon),
        points=((lat, lon),),
        level=level,
        status=status,
        observe_time=report_time,
        details=details,
    )


def delay_level(
    delay_s: int | None, report_time: datetime | None, now: datetime | None, config: MobilityConfig,
    *, on_trip: bool = False,
) -> tuple[Level, str]:
    """The colour and text of a bus: UNKNOWN when its position is older than the processor's
    silence limit (``gap_factor`` report intervals), it runs no matched trip, or its trip has no
    delay (a headway-based run of frequencies.txt, whose departures are only nominal)."""
    silent_after = config.vehicle_report_interval * config.gap_factor
    if report_time is None or (now is not None and now - report_time > silent_after):
        return Level.UNKNOWN, _silent_text(report_time, now)
    if delay_s is None:
        return Level.UNKNOWN, "no timetable delay for its trip" if on_trip else "not matched to a trip"
    if delay_s >= config.major_delay_s:
        level = Level.CRITICAL
    elif delay_s >= config.raise_delay_s:
        level = Level.WARNING
    elif delay_s >= config.clear_delay_s:
        level = Level.WATCH
    else:
        level = Level.OK
    return level, delay_text(delay_s)


def delay_text(delay_s: int) -> str:
    minutes = round(abs(delay_s) / 60)
    if minutes == 0:
        return "on time"
    return f"+{minutes} min late" if delay_s > 0 else f"{minutes} min early"


def _silent_text(report_time: datetime | None, now: datetime | None) -> str:
    if report_time is None or now is None:
        return "no position time"
    return f"no position for {max(1, round((now - report_time) / timedelta(minutes=1)))} min"


def city_at(lat: float, lon: float) -> str:
    """The city of a bus's position (:func:`services.mobility.domain.cities.city_at`): a bus has no city on the wire."""
    return places.city_at(shared_cities(), lat, lon)
