"""Ticket validations: ridership per route, stop and local hour, and the card-cloning fraud alert.

Cards arrive hashed (salted upstream); nothing here sees a card number. A card that validates on
two *different* vehicles further apart than a bus could travel in the time between is a strong
sign of a cloned card: :func:`check_card` reports it as a :class:`FraudSignal`. The threshold is
a speed (default 80 km/h, above any city bus) plus a distance floor that absorbs GPS error.
:func:`apply_card_validation` turns it into the ``ticket-fraud`` alert of that card (MAJOR; it
clears once the card has validated plausibly for ``clear_after``).

A validator retries when it gets no answer, so one validation can arrive twice: both the card's
state and a stop's ridership remember the ids they counted last and count each id once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from madina.alerts import AlertDetails, AlertTransition, EpisodePolicy, EpisodeState, Evaluation, Severity, step
from madina.alerts.timeutil import require_utc, time_from_text, time_to_text
from services.mobility.domain.geometry import distance_m

DOMAIN = "mobility"
TICKET_FRAUD_RULE = "ticket-fraud"
CARD_REMEMBERS_IDS = 16  # a validator's retries arrive within a few of the card's validations
STOP_REMEMBERS_IDS = 256  # a stop sees other cards between a validation and its retry


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
    stop_id: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "time", require_utc(self.time, "time"))


@dataclass(frozen=True)
class FraudPolicy:
    """When two validations of one card cannot both be genuine."""

    max_speed_kmh: float = 80.0
    min_distance_m: float = 1000.0
    clear_after: timedelta = timedelta(hours=1)  # of plausible validations before the alert clears


@dataclass(frozen=True, slots=True)
class FraudSignal:
    """Two validations of one card that no single rider could have made."""

    card_hash: str
    first: Validation
    second: Validation
    distance_m: float
    interval_s: float
    implied_speed_kmh: float


def _validation_to_dict(validation: Validation) -> dict[str, Any]:
    return {**{k: getattr(validation, k) for k in Validation.__slots__ if k != "time"},
            "time": time_to_text(validation.time)}


def _validation_from_dict(raw: Mapping[str, Any]) -> Validation:
    time = time_from_text(raw["time"])
    assert time is not None
    return Validation(**{**raw, "time": time})


@dataclass(frozen=True)
class CardState:
    """The last validation of one card, the ids it counted last, and its fraud episode."""

    last: Validation | None = None
    recent_ids: tuple[str, ...] = ()
    episode: EpisodeState | None = None

    @classmethod
    def new(cls, card_hash: str) -> CardState:
        return cls(episode=EpisodeState(DOMAIN, f"card/{card_hash}", TICKET_FRAUD_RULE))

    def to_dict(self) -> dict[str, Any]:
        return {
            "last": None if self.last is None else _validation_to_dict(self.last),
            "recent_ids": list(self.recent_ids),
            "episode": None if self.episode is None else self.episode.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CardState:
        raw, episode = data.get("last"), data.get("episode")
        return cls(
            None if raw is None else _validation_from_dict(raw),
            tuple(data.get("recent_ids", ())),
            None if episode is None else EpisodeState.from_dict(episode),
        )


def check_card(
    state: CardState, validation: Validation, policy: FraudPolicy = FraudPolicy()
) -> tuple[CardState, FraudSignal | None]:
    """Compare a validation with the card's previous one; the newer becomes the card's last."""
    last = state.last
    if last is None or validation.time < last.time:
        return (replace(state, last=validation) if last is None else state), None
    newer = replace(state, last=validation)
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


@dataclass(frozen=True)
class CardResult:
    """What one validation did to its card: the new state, whether it was a retry, the alert."""

    state: CardState
    duplicate: bool = False
    signal: FraudSignal | None = None
    transition: AlertTransition | None = None


def apply_card_validation(
    state: CardState, validation: Validation, policy: FraudPolicy = FraudPolicy()
) -> CardResult:
    """Fold one validation into its card: a retry changes nothing, a fraud signal raises the alert."""
    if validation.validation_id in state.recent_ids:
        return CardResult(state, duplicate=True)
    recent = (*state.recent_ids, validation.validation_id)[-CARD_REMEMBERS_IDS:]
    checked, signal = check_card(replace(state, recent_ids=recent), validation, policy)
    episode = checked.episode or CardState.new(validation.card_hash).episode
    assert episode is not None
    evaluation = _fraud_evaluation(validation, signal, policy)
    episode, transition = step(episode, evaluation, EpisodePolicy(clear_after=policy.clear_after, update_interval=None))
    return CardResult(replace(checked, episode=episode), signal=signal, transition=transition)


def _fraud_evaluation(validation: Validation, signal: FraudSignal | None, policy: FraudPolicy) -> Evaluation:
    labels = {"card_hash": validation.card_hash, "vehicle_id": validation.vehicle_id,
              "route_id": validation.route_id}
    if signal is None:
        return Evaluation(event_time=validation.time, severity=None, observed_value=0.0, below_clear_level=True,
                          message=f"Card {validation.card_hash[:12]}: validations plausible again",
                          details=AlertDetails(category=TICKET_FRAUD_RULE, source_kind="card", unit="km/h",
                                               labels=labels))
    first, second = signal.first, signal.second
    message = (
        f"Card {signal.card_hash[:12]} validated on {first.vehicle_id} (line {first.route_id}) at "
        f"{first.time:%H:%M:%S} UTC and on {second.vehicle_id} (line {second.route_id}) at "
        f"{second.time:%H:%M:%S} UTC, {signal.distance_m / 1000:.1f} km apart: "
        f"{signal.implied_speed_kmh:.0f} km/h, a cloned card?"
    )
    return Evaluation(
        event_time=validation.time, severity=Severity.MAJOR, observed_value=round(signal.implied_speed_kmh, 1),
        threshold=policy.max_speed_kmh, message=message,
        details=AlertDetails(category=TICKET_FRAUD_RULE, source_kind="card", unit="km/h",
                             labels={**labels, "first_vehicle_id": first.vehicle_id}),
    )


@dataclass(frozen=True)
class StopRidership:
    """Validations counted at one stop of one route, per agency-local hour (recent hours only).

    Older hours are dropped after ``keep``: their totals are already published (compacted topic);
    what is kept is what a late or repeated validation can still change.
    """

    route_id: str
    stop_id: str
    counts: Mapping[datetime, int] = field(default_factory=dict)  # hour start (UTC instant) -> count
    recent_ids: tuple[str, ...] = ()

    @property
    def entity_id(self) -> str:
        return ridership_entity(self.route_id, self.stop_id)

    def to_dict(self) -> dict[str, Any]:
        return {"route_id": self.route_id, "stop_id": self.stop_id,
                "counts": {time_to_text(hour): count for hour, count in sorted(self.counts.items())},
                "recent_ids": list(self.recent_ids)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StopRidership:
        counts = {time_from_text(hour): count for hour, count in data.get("counts", {}).items()}
        return cls(data["route_id"], data["stop_id"], {h: c for h, c in counts.items() if h is not None},
                   tuple(data.get("recent_ids", ())))


def ridership_entity(route_id: str, stop_id: str) -> str:
    """The key of one route's stop in ridership: ``<route_id>/<stop_id>``."""
    return f"{route_id}/{stop_id}"


def count_validation(
    state: StopRidership, validation: Validation, tz: ZoneInfo, keep: timedelta = timedelta(hours=26)
) -> tuple[StopRidership, datetime | None]:
    """Count one validation in its local hour: the new state and that hour, or None for a repeat
    or a validation older than the hours still kept."""
    if validation.validation_id in state.recent_ids:
        return state, None
    hour = hour_bucket(validation.time, tz)
    newest = max([hour, *state.counts])
    if hour < newest - keep:
        return state, None
    counts = {h: c for h, c in state.counts.items() if h >= newest - keep}
    counts[hour] = counts.get(hour, 0) + 1
    recent = (*state.recent_ids, validation.validation_id)[-STOP_REMEMBERS_IDS:]
    return replace(state, counts=counts, recent_ids=recent), hour
