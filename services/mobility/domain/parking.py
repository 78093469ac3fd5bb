"""Car parks: the registry, occupancy state and the ``car-park-full`` alert.

The registry (``data/car_parks.csv``, in the spirit of FIWARE's OffStreetParking: id, name, city,
position, total spaces) says which car parks exist; a count for any other is refused at ingest.

A car park counts as full at or above ``full_ratio`` of its capacity. The alert is raised once it
has stayed full for ``full_for`` (a car park that fills for two minutes at the school gate is
not news), and clears when occupancy is back under ``clear_ratio`` for ``clear_after``.

A car park whose counts stop arriving for longer than ``silent_after`` raises ``data-gap``
(:func:`check_parking_silence`, called on the processor's clock), through the same shared
:mod:`madina.alerts.datagap` as silent stations, containers and buses: a stuck counter looks
exactly like a car park whose occupancy does not change, and a dispatcher sending drivers to its
"free" spaces needs to know. Its next count clears it. A registered car park never heard from is
measured from the first check, as a sensor installed but never connected is as silent as one
that stopped.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from madina.alerts import (
    AlertDetails,
    AlertTransition,
    DataGapPolicy,
    DataGapState,
    EpisodePolicy,
    EpisodeState,
    Evaluation,
    Severity,
    check_silence,
    record_observation,
    step,
)
from madina.alerts.datagap import DATA_GAP_RULE_ID
from madina.alerts.timeutil import require_utc, time_from_text, time_to_text

DOMAIN = "mobility"
CAR_PARK_FULL_RULE = "car-park-full"


CAR_PARKS = Path(__file__).resolve().parent.parent / "data" / "car_parks.csv"


@dataclass(frozen=True, slots=True)
class CarPark:
    """One car park of the registry."""

    car_park_id: str
    display_name: str
    city_id: str
    lat: float
    lon: float
    capacity: int


def load_car_parks(path: Path = CAR_PARKS) -> dict[str, CarPark]:
    """The registry by id; a malformed row is a ValueError naming file, line and field."""
    parks: dict[str, CarPark] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            where = f"{path.name}:{line}"
            try:
                park = CarPark(row["car_park_id"], row["display_name"], row["city_id"], float(row["lat"]),
                               float(row["lon"]), int(row["capacity_spaces"]))
            except (KeyError, TypeError, ValueError) as error:
                raise ValueError(f"{where}: {error}") from None
            if not park.car_park_id or park.capacity <= 0:
                raise ValueError(f"{where}: car_park_id required and capacity_spaces positive")
            if park.car_park_id in parks:
                raise ValueError(f"{where}: car_park_id {park.car_park_id!r} listed twice")
            parks[park.car_park_id] = park
    return parks


@dataclass(frozen=True)
class ParkingPolicy:
    """When a car park is full, and for how long before it is an alert."""

    full_ratio: float = 1.0
    full_for: timedelta = timedelta(minutes=15)
    clear_ratio: float = 0.95
    clear_after: timedelta = timedelta(minutes=5)
    silent_after: timedelta = timedelta(minutes=30)
    """Longest time without a count before ``data-gap``; counters report every few minutes."""


@dataclass(frozen=True, slots=True)
class ParkingObservation:
    """One count of a car park."""

    car_park_id: str
    time: datetime
    occupied: int
    capacity: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "time", require_utc(self.time, "time"))
        if self.capacity <= 0 or self.occupied < 0:
            raise ValueError("capacity must be positive and occupied not negative")


@dataclass(frozen=True)
class CarParkState:
    """Latest count, since when it has been full, the full alert's episode and the silence watch."""

    car_park_id: str
    episode: EpisodeState
    data_gap: DataGapState
    occupied: int | None = None
    capacity: int | None = None
    observe_time: datetime | None = None
    full_since: datetime | None = None

    @classmethod
    def new(cls, car_park_id: str) -> CarParkState:
        source_id = f"car-park/{car_park_id}"
        return cls(car_park_id, EpisodeState(DOMAIN, source_id, CAR_PARK_FULL_RULE),
                   DataGapState.new(DOMAIN, source_id))

    @property
    def free(self) -> int | None:
        return None if self.occupied is None or self.capacity is None else max(0, self.capacity - self.occupied)

    def to_dict(self) -> dict[str, Any]:
        return {
            "car_park_id": self.car_park_id,
            "episode": self.episode.to_dict(),
            "data_gap": self.data_gap.to_dict(),
            "occupied": self.occupied,
            "capacity": self.capacity,
            "observe_time": time_to_text(self.observe_time),
            "full_since": time_to_text(self.full_since),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CarParkState:
        raw_gap = data.get("data_gap")  # absent from states stored before the silence watch
        return cls(
            data["car_park_id"],
            EpisodeState.from_dict(data["episode"]),
            DataGapState.from_dict(raw_gap) if raw_gap else DataGapState.new(DOMAIN, f"car-park/{data['car_park_id']}"),
            data.get("occupied"),
            data.get("capacity"),
            time_from_text(data.get("observe_time")),
            time_from_text(data.get("full_since")),
        )


def apply_parking(
    state: CarParkState, observation: ParkingObservation, policy: ParkingPolicy = ParkingPolicy(), name: str = ""
) -> tuple[CarParkState, list[AlertTransition]]:
    """Fold one count into the car park's state; older counts than the latest are ignored.

    The transitions: the ``data-gap`` clearing when the car park was silent, then ``car-park-full``'s.
    """
    if state.observe_time is not None and observation.time < state.observe_time:
        return state, []
    label = name or state.car_park_id
    data_gap, back = record_observation(state.data_gap, observation.time, _details(state, DATA_GAP_RULE_ID))
    transitions: list[AlertTransition] = []
    if back is not None:
        silent_min = int(back.observed_value // 60)
        transitions.append(replace(back, message=f"Car park {label}: counting again after {silent_min} min of silence"))
    state = replace(state, data_gap=data_gap)
    ratio = observation.occupied / observation.capacity
    full = ratio >= policy.full_ratio
    full_since = (state.full_since or observation.time) if full else None
    state = replace(
        state, occupied=observation.occupied, capacity=observation.capacity, observe_time=observation.time,
        full_since=full_since,
    )  # fmt: skip
    breach = full_since is not None and observation.time - full_since >= policy.full_for
    free = observation.capacity - observation.occupied
    message = (
        f"Car park {label} full since {full_since:%H:%M} UTC ({observation.occupied}/{observation.capacity})"
        if breach and full_since is not None
        else f"Car park {label}: {max(free, 0)} free of {observation.capacity}"
    )
    evaluation = Evaluation(
        event_time=observation.time,
        severity=Severity.MINOR if breach else None,
        observed_value=round(ratio, 4),
        threshold=policy.full_ratio if breach else None,
        below_clear_level=ratio < policy.clear_ratio,
        message=message,
        details=_details(state, CAR_PARK_FULL_RULE),
    )
    episode, transition = step(state.episode, evaluation, EpisodePolicy(clear_after=policy.clear_after))
    if transition is not None:
        transitions.append(transition)
    return replace(state, episode=episode), transitions


def check_parking_silence(
    state: CarParkState, now: datetime, policy: ParkingPolicy = ParkingPolicy(), name: str = ""
) -> tuple[CarParkState, AlertTransition | None]:
    """Raise ``data-gap`` if no count has arrived for longer than ``policy.silent_after`` at ``now``."""
    gap_policy = DataGapPolicy(expected_interval=policy.silent_after, gap_factor=1.0, severity=Severity.WARNING)
    data_gap, transition = check_silence(state.data_gap, now, gap_policy, _details(state, DATA_GAP_RULE_ID))
    if data_gap is state.data_gap:
        return state, None
    state = replace(state, data_gap=data_gap)
    if transition is None:
        return state, None
    silent_min = int(transition.observed_value // 60)
    limit_min = int(policy.silent_after.total_seconds() // 60)
    if data_gap.last_observation_time is None:
        silence = f"no count since monitoring began {silent_min} min ago"
    else:
        silence = f"no count for {silent_min} min"
    message = f"Car park {name or state.car_park_id}: {silence} (limit {limit_min} min)"
    return state, replace(transition, message=message)


def _details(state: CarParkState, category: str) -> AlertDetails:
    return AlertDetails(category=category, source_kind="car-park", labels={"car_park_id": state.car_park_id})
