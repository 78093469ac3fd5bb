"""GTFS-Realtime data as plain domain values (no protobuf here; see ``services/mobility/convert.py``).

Field for field what the GTFS-Realtime reference's TripUpdate, StopTimeUpdate, StopTimeEvent,
TripProperties and VehiclePosition carry and the mobility rules read, with ``datetime`` (UTC)
instead of POSIX seconds. Every value round-trips through ``to_dict``/``from_dict`` so it can live
in a processor's changelogged state.

They are values: nothing changes one once made (``dataclasses.replace`` makes another). They are
not ``frozen`` dataclasses only because the processor builds several per trip update it reads, and
a frozen dataclass costs several times as much to build (bench/mobility).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from madina.alerts.timeutil import require_utc, time_from_text, time_to_text


class TripRelationship(StrEnum):
    """TripDescriptor.ScheduleRelationship."""

    SCHEDULED = "SCHEDULED"
    ADDED = "ADDED"
    UNSCHEDULED = "UNSCHEDULED"
    CANCELED = "CANCELED"
    REPLACEMENT = "REPLACEMENT"
    DUPLICATED = "DUPLICATED"
    DELETED = "DELETED"
    NEW = "NEW"


class StopRelationship(StrEnum):
    """TripUpdate.StopTimeUpdate.ScheduleRelationship."""

    SCHEDULED = "SCHEDULED"
    SKIPPED = "SKIPPED"
    NO_DATA = "NO_DATA"
    UNSCHEDULED = "UNSCHEDULED"


@dataclass(slots=True)
class StopTimeEvent:
    """A predicted arrival or departure: ``delay_s`` (positive late) and/or absolute ``time``."""

    delay_s: int | None = None
    time: datetime | None = None
    uncertainty_s: int | None = None
    scheduled_time: datetime | None = None
    """Only for NEW trips, which have no static schedule to compare with."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "delay_s": self.delay_s,
            "time": time_to_text(self.time),
            "uncertainty_s": self.uncertainty_s,
            "scheduled_time": time_to_text(self.scheduled_time),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StopTimeEvent:
        return cls(
            data.get("delay_s"),
            time_from_text(data.get("time")),
            data.get("uncertainty_s"),
            time_from_text(data.get("scheduled_time")),
        )


@dataclass(slots=True)
class StopTimeUpdate:
    """Realtime for one stop of a trip, matched by ``stop_sequence`` (preferred) or ``stop_id``."""

    stop_sequence: int | None = None
    stop_id: str | None = None
    arrival: StopTimeEvent | None = None
    departure: StopTimeEvent | None = None
    relationship: StopRelationship = StopRelationship.SCHEDULED

    def to_dict(self) -> dict[str, Any]:
        return {
            "stop_sequence": self.stop_sequence,
            "stop_id": self.stop_id,
            "arrival": self.arrival.to_dict() if self.arrival else None,
            "departure": self.departure.to_dict() if self.departure else None,
            "relationship": self.relationship.value,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StopTimeUpdate:
        return cls(
            data.get("stop_sequence"),
            data.get("stop_id"),
            StopTimeEvent.from_dict(data["arrival"]) if data.get("arrival") else None,
            StopTimeEvent.from_dict(data["departure"]) if data.get("departure") else None,
            StopRelationship(data.get("relationship", "SCHEDULED")),
        )


@dataclass(slots=True)
class TripUpdate:
    """One TripUpdate entity: which trip, how it relates to the schedule, and its stop updates.

    ``timestamp`` is the update's own timestamp, or the feed header's when the entity has none
    (the converter fills it in): staleness is judged on it. ``new_*`` are TripProperties, used
    by DUPLICATED (and NEW) trips. ``deleted``: the producer withdrew the entity (GTFS-Realtime
    ``is_deleted``, or gone from a FULL_DATASET feed) at ``timestamp``; the rest is what it had said.
    """

    trip_id: str
    start_date: str | None
    relationship: TripRelationship
    timestamp: datetime
    route_id: str | None = None
    direction_id: int | None = None
    start_time: str | None = None
    vehicle_id: str | None = None
    delay_s: int | None = None
    stop_time_updates: tuple[StopTimeUpdate, ...] = ()
    new_trip_id: str | None = None
    new_start_date: str | None = None
    new_start_time: str | None = None
    deleted: bool = False

    def __post_init__(self) -> None:
        self.timestamp = require_utc(self.timestamp, "timestamp")

    def to_dict(self) -> dict[str, Any]:
        return {
            "trip_id": self.trip_id,
            "start_date": self.start_date,
            "relationship": self.relationship.value,
            "timestamp": time_to_text(self.timestamp),
            "route_id": self.route_id,
            "direction_id": self.direction_id,
            "start_time": self.start_time,
            "vehicle_id": self.vehicle_id,
            "delay_s": self.delay_s,
            "stop_time_updates": [update.to_dict() for update in self.stop_time_updates],
            "new_trip_id": self.new_trip_id,
            "new_start_date": self.new_start_date,
            "new_start_time": self.new_start_time,
            "deleted": self.deleted,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TripUpdate:
        timestamp = time_from_text(data["timestamp"])
        assert timestamp is not None
        return cls(
            trip_id=data["trip_id"],
            start_date=data.get("start_date"),
            relationship=TripRelationship(data["relationship"]),
            timestamp=timestamp,
            route_id=data.get("route_id"),
            direction_id=data.get("direction_id"),
            start_time=data.get("start_time"),
            vehicle_id=data.get("vehicle_id"),
            delay_s=data.get("delay_s"),
            stop_time_updates=tuple(StopTimeUpdate.from_dict(raw) for raw in data.get("stop_time_updates", [])),
            new_trip_id=data.get("new_trip_id"),
            new_start_date=data.get("new_start_date"),
            new_start_time=data.get("new_start_time"),
            deleted=bool(data.get("deleted", False)),
        )


@dataclass(slots=True)
class VehiclePosition:
    """A raw AVL fix. ``trip_id`` or ``route_id`` says what the vehicle is serving (trip wins).

    ``deleted``: the producer withdrew the vehicle at ``timestamp`` (see :class:`TripUpdate`).
    """

    vehicle_id: str
    lat: float
    lon: float
    timestamp: datetime
    trip_id: str | None = None
    start_date: str | None = None
    route_id: str | None = None
    bearing_deg: float | None = None
    speed_mps: float | None = None
    deleted: bool = False

    def __post_init__(self) -> None:
        self.timestamp = require_utc(self.timestamp, "timestamp")

    def to_dict(self) -> dict[str, Any]:
        return {
            "vehicle_id": self.vehicle_id,
            "lat": self.lat,
            "lon": self.lon,
            "timestamp": time_to_text(self.timestamp),
            "trip_id": self.trip_id,
            "start_date": self.start_date,
            "route_id": self.route_id,
            "bearing_deg": self.bearing_deg,
            "speed_mps": self.speed_mps,
            "deleted": self.deleted,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VehiclePosition:
        timestamp = time_from_text(data["timestamp"])
        assert timestamp is not None
        return cls(
            vehicle_id=data["vehicle_id"],
            lat=data["lat"],
            lon=data["lon"],
            timestamp=timestamp,
            trip_id=data.get("trip_id"),
            start_date=data.get("start_date"),
            route_id=data.get("route_id"),
            bearing_deg=data.get("bearing_deg"),
            speed_mps=data.get("speed_mps"),
            deleted=bool(data.get("deleted", False)),
        )
