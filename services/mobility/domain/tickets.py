"""Ticket validations: ridership per route and local hour, and the card-cloning fraud signal.

Cards arrive hashed (salted upstream); nothing here sees a card number. A card that validates on
two *different* vehicles further apart than a bus could travel in the time between is a strong
sign of a cloned card: :func:`check_card` reports it as a :class:`FraudSignal`. The threshold is
a speed (default 80 km/h, above any city bus) plus a distance floor that absorbs GPS error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from madina.alerts.timeutil import require_utc, time_from_text, time_to_text
from services.mobility.domain.geometry import distance_m


@dataclass(frozen=True, slots=True)
class Validation:
    """One validation of a (hashed) card on a vehicle."""

    validation_id: str
    card_hash: str
    vehicle_id: str
    route_id: str
    lat: float
    lon: float
    time: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "time", require_utc(self.time, "time"))


@dataclass(frozen=True)
class FraudPolicy:
    """When two validations of one card cannot both be genuine."""

    max_speed_kmh: float = 80.0
    min_distance_m: float = 1000.0


@dataclass(frozen=True, slots=True)
class FraudSignal:
    """Two validations of one card that no single rider could have made."""

    card_hash: str
    first: Validation
    second: Validation
    distance_m: float
    interval_s: float
    implied_speed_kmh: float


@dataclass(frozen=True)
class CardState:
    """The last validation of one card (the processor keys this by card hash)."""

    last: Validation | None = None

    def to_dict(self) -> dict[str, Any]:
        last = self.last
        if last is None:
            return {"last": None}
        return {
            "last": {
                **{k: getattr(last, k) for k in Validation.__slots__ if k != "time"},
                "time": time_to_text(last.time),
            }
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CardState:
        raw = data.get("last")
        if raw is None:
            return cls()
        time = time_from_text(raw["time"])
        assert time is not None
        return cls(Validation(**{**raw, "time": time}))


def check_card(
    state: CardState, validation: Validation, policy: FraudPolicy = FraudPolicy()
) -> tuple[CardState, FraudSignal | None]:
    """Compare a validation with the card's previous one; the newer becomes the card's last."""
    last = state.last
    if last is None or validation.time < last.time:
        return (CardState(validation) if last is None else state), None
    newer = CardState(validation)
    if validation.vehicle_id == last.vehicle_id:
        return newer, None
    distance = distance_m((last.lat, last.lon), (validation.lat, validation.lon))
    interval = (validation.time - last.time).total_seconds()
    if distance < policy.min_distance_m:
        return newer, None
    speed = distance / max(interval, 1.0) * 3.6
    if speed <= policy.max_speed_kmh:
        return newer, None
    return newer, FraudSignal(validation.card_hash, last, validation, distance, interval, speed)


def hour_bucket(moment: datetime, tz: ZoneInfo) -> datetime:
    """Start of the agency-local hour containing ``moment``, as a UTC instant."""
    local = require_utc(moment).astimezone(tz)
    return require_utc(local.replace(minute=0, second=0, microsecond=0))


def ridership(validations: Iterable[Validation], tz: ZoneInfo) -> dict[tuple[str, datetime], int]:
    """Validations per (route, local hour start); duplicate validation ids count once."""
    seen: set[str] = set()
    counts: dict[tuple[str, datetime], int] = {}
    for validation in validations:
        if validation.validation_id in seen:
            continue
        seen.add(validation.validation_id)
        bucket = (validation.route_id, hour_bucket(validation.time, tz))
        counts[bucket] = counts.get(bucket, 0) + 1
    return dict(sorted(counts.items()))


HOUR = timedelta(hours=1)
