"""Mapping between the environment's wire messages and its pure domain values.

Inbound conversion is validation (through :mod:`madina.contract`): a wire value the domain cannot
hold raises :class:`~madina.contract.InvalidRecord` with the field, never something else later.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message

from madina.alerts import AlertState, AlertTransition
from madina.bus.alert_events import timestamp, to_alert_event
from madina.contract import InvalidRecord, optional_time
from madina.geo import shared_cities
from madina_proto.alerts.v1 import alerts_pb2
from madina_proto.common.v1 import common_pb2
from madina_proto.environment.v1 import observations_pb2, station_pb2
from services.environment.domain.aqi import AqiResult
from services.environment.domain.measurands import MEASURANDS, Observation, StationKind
from services.environment.domain.stations import Station

OBSERVED_TYPE: dict[StationKind, type[Message]] = {
    StationKind.AIR: observations_pb2.AirQualityObserved,
    StationKind.WATER: observations_pb2.WaterQualityObserved,
    StationKind.NOISE: observations_pb2.NoiseObserved,
}
BATCH_TYPE: dict[StationKind, type[Message]] = {
    StationKind.AIR: observations_pb2.AirQualityObservedBatch,
    StationKind.WATER: observations_pb2.WaterQualityObservedBatch,
    StationKind.NOISE: observations_pb2.NoiseObservedBatch,
}
MEASURANDS_OF: dict[StationKind, tuple[str, ...]] = {
    kind: tuple(name for name, m in MEASURANDS.items() if m.kind is kind) for kind in StationKind
}
PROTO_KIND = {
    StationKind.AIR: station_pb2.STATION_KIND_AIR,
    StationKind.WATER: station_pb2.STATION_KIND_WATER,
    StationKind.NOISE: station_pb2.STATION_KIND_NOISE,
}


def kind_of_batch(batch: Message) -> StationKind:
    for kind, batch_type in BATCH_TYPE.items():
        if isinstance(batch, batch_type):
            return kind
    raise TypeError(f"not an observation batch: {type(batch).__name__}")


def observation_from_pb(message: Message, kind: StationKind, where: str = "") -> Observation:
    """Raises InvalidRecord for an ``observe_time`` no datetime holds; the evaluator judges the rest.

    A missing ``observe_time`` becomes the earliest datetime, which every later check refuses.
    """
    values = {name: getattr(message, name) for name in MEASURANDS_OF[kind] if message.HasField(name)}
    moment = optional_time(message, "observe_time", where) or datetime.min.replace(tzinfo=UTC)
    return Observation(station_id=message.station_id, observe_time=moment, kind=kind, values=values)  # type: ignore[attr-defined]


def observations_from_batch(batch: Message) -> list[Observation]:
    kind = kind_of_batch(batch)
    return [
        observation_from_pb(message, kind, f"observations[{index}].")
        for index, message in enumerate(batch.observations)  # type: ignore[attr-defined]
    ]


def observation_to_pb(observation: Observation) -> Message:
    kind = StationKind(observation.kind)
    message = OBSERVED_TYPE[kind](station_id=observation.station_id, **dict(observation.values))
    message.observe_time.CopyFrom(timestamp(observation.observe_time))  # type: ignore[attr-defined]
    return message


def batches_by_station(observations: Iterable[Observation]) -> list[tuple[StationKind, str, Message]]:
    """One batch message per (kind, station), observations in the order given."""
    grouped: dict[tuple[StationKind, str], list[Observation]] = defaultdict(list)
    for observation in observations:
        grouped[(StationKind(observation.kind), observation.station_id)].append(observation)
    return [
        (
            kind,
            station_id,
            BATCH_TYPE[kind](station_id=station_id, observations=[observation_to_pb(o) for o in items]),
        )
        for (kind, station_id), items in grouped.items()
    ]


def district_of(station: Station) -> common_pb2.District:
    city = shared_cities()[station.city]
    return common_pb2.District(
        city_id=station.city, district_id=station.district, display_name=city.district(station.district).name
    )


def station_to_pb(station: Station) -> station_pb2.Station:
    return station_pb2.Station(
        station_id=station.id,
        display_name=station.name,
        kind=PROTO_KIND[station.kinds[0]],
        district=district_of(station),
        location=common_pb2.GeoPoint(latitude_deg=station.lat, longitude_deg=station.lon),
        measurands=list(station.measurands),
        expected_interval=_duration(station.reporting_interval),
    )


def _duration(span: timedelta) -> Duration:
    duration = Duration()
    duration.FromTimedelta(span)
    return duration


def alert_event(transition: AlertTransition, station: Station) -> alerts_pb2.AlertEvent:
    """The wire form of a transition, with the station's district (named) and position."""
    return to_alert_event(
        transition,
        district=district_of(station),
        location=common_pb2.GeoPoint(latitude_deg=station.lat, longitude_deg=station.lon),
    )


def aqi_event(
    result: AqiResult, station: Station, compute_time: datetime
) -> observations_pb2.AirQualityIndexComputed:
    return observations_pb2.AirQualityIndexComputed(
        station_id=station.id,
        compute_time=timestamp(compute_time),
        aqi=result.aqi,
        category=result.category,
        dominant_pollutant=result.dominant_pollutant,
        sub_indices=dict(result.sub_indices),
        city_id=station.city,
        district_id=station.district,
    )


def status_from_event(
    key: str, event: station_pb2.StationStatusChanged, stations: Mapping[str, Station]
) -> station_pb2.StationStatus:
    """The status a status record carries, if it is a known station's under its own key.

    Times and numbers were checked by the codec; what is left is whose status it is. A status
    keyed by another station, or of a station this deployment does not serve, is refused.
    """
    status = event.status
    station_id = status.station.station_id
    if station_id not in stations:
        raise InvalidRecord(f"status.station.station_id: unknown station {station_id[:200]!r}")
    if key and key != station_id:
        raise InvalidRecord(f"key {key[:200]!r} does not match status.station.station_id {station_id!r}")
    return status


def is_active(event: alerts_pb2.AlertEvent) -> bool:
    return event.state != int(AlertState.CLEARED)


def status_message(
    station: Station,
    *,
    last_observe_time: datetime | None,
    latest_values: dict[str, float],
    rolling_means: Sequence[tuple[str, timedelta, float, int]],
    aqi: observations_pb2.AirQualityIndexComputed | None,
    active_alerts: Sequence[alerts_pb2.AlertEvent],
) -> station_pb2.StationStatus:
    status = station_pb2.StationStatus(
        station=station_to_pb(station),
        latest_values=latest_values,
        rolling_means=[
            station_pb2.RollingMean(measurand=m, window=_duration(w), mean_value=v, sample_count=n)
            for m, w, v, n in rolling_means
        ],
        active_alerts=list(active_alerts),
    )
    if last_observe_time is not None:
        status.last_observe_time.CopyFrom(timestamp(last_observe_time))
    if aqi is not None:
        status.aqi.CopyFrom(aqi)
    return status
