"""Ticket validations: ridership per route, stop and local hour, and the card-cloning fraud alert.

Cards arrive hashed (salted upstream); nothing here sees a card number. A card that validates on
two *different* vehicles further apart than a bus could travel in the time between is a strong
sign of a cloned card: :func:`check_card` reports it as a :class:`FraudSignal`. The threshold is
a speed (default 80 km/h, above any city bus) plus a distance floor that absorbs GPS error.
:func:`apply_card_validation` turns it into the ``ticket-fraud`` alert of that card (MAJOR; it
clears once the card has validated plausibly for ``clear_after``).

A validator retries when it gets no answer, so one validation can arrive twice: the card's state
remembers the ids it counted last and counts each id once. A route's ridership
(:class:`RouteRidership`, counted per stop and per route in agency-local hours) remembers the ids
it counted too, since the card's step replayed after a crash re-sends what it had forwarded.
"""

from __future__ import annotations

import hashlib
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
# A card step replayed after a crash re-sends what it sent since its last commit: at most one
# batch of its partition (1,000 records, madina.streams.entities), of which one route gets a part;
# twice that leaves room for what the route gets from other partitions before the re-send. A
# re-send older than that counts again (ids of every kept hour would make the state per validation).
ROUTE_REMEMBERS_IDS = 2048


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


@dataclass
class RouteRidership:
    """Validations counted on one route, per stop and agency-local hour, and the route's hour totals.

    One entity per route, so that the route's total is exact: every validation of the route comes
    to this state and is counted once, in its stop's hour and in the route's (``totals[h]`` is
    always the sum of ``stops[s][h]``). Only recent hours are kept: an hour older than ``keep``
    before the newest leaves (its totals are already published on a compacted topic); what is
    kept is what a late or repeated validation can still change.

    Changed in place by :func:`count_route_validation`: a route's state holds its stops' hours and
    up to ``ROUTE_REMEMBERS_IDS`` ids, and copying that per validation would cost more than the count.
    """

    route_id: str
    stops: dict[str, dict[datetime, int]] = field(default_factory=dict)  # stop id -> hour start (UTC) -> count
    totals: dict[datetime, int] = field(default_factory=dict)  # hour start (UTC) -> count over the stops
    recent_ids: dict[str, None] = field(default_factory=dict)  # remembered_id of the ids counted last, oldest first

    def newest_hour(self, stop_id: str | None = None) -> datetime | None:
        """The newest hour counted on the route, or at ``stop_id``."""
        hours = self.totals if stop_id is None else self.stops.get(stop_id, {})
        return max(hours) if hours else None

    def to_dict(self) -> dict[str, Any]:
        return {"route_id": self.route_id,
                "stops": {stop: _hours_to_dict(hours) for stop, hours in self.stops.items()},
                "totals": _hours_to_dict(self.totals), "recent_ids": list(self.recent_ids)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RouteRidership:
        return cls(data["route_id"], {stop: _hours_from_dict(hours) for stop, hours in data.get("stops", {}).items()},
                   _hours_from_dict(data.get("totals", {})), dict.fromkeys(data.get("recent_ids", ())))


def _hours_to_dict(hours: Mapping[datetime, int]) -> dict[str, int]:
    return {str(time_to_text(hour)): count for hour, count in sorted(hours.items())}


def _hours_from_dict(raw: Mapping[str, int]) -> dict[datetime, int]:
    hours = {time_from_text(hour): count for hour, count in raw.items()}
    return {hour: count for hour, count in hours.items() if hour is not None}


def route_ridership_key(route_id: str) -> str:
    """The key of one route's ridership: ``ridership/<route_id>`` (a route's own key holds its buses)."""
    return f"ridership/{route_id}"


def route_stop_key(route_id: str, stop_id: str) -> str:
    """One route's stop, as ridership names it: ``<route_id>/<stop_id>``."""
    return f"{route_id}/{stop_id}"


def count_route_validation(
    state: RouteRidership, validation: Validation, tz: ZoneInfo, keep: timedelta = timedelta(hours=26)
) -> datetime | None:
    """Count one validation of the route in its stop's and the route's local hour (``state`` changes in
    place) and return that hour; None, and nothing changed, for a repeat or a validation older than
    the hours still kept."""
    if validation.route_id != state.route_id:
        raise ValueError(f"validation of route {validation.route_id!r} counted on route {state.route_id!r}")
    remembered = remembered_id(validation.validation_id)
    if remembered in state.recent_ids:
        return None
    hour = hour_bucket(validation.time, tz)
    newest = state.newest_hour()
    if newest is not None and hour < newest - keep:
        return None
    if newest is not None and hour > newest:
        _forget_hours_before(state, hour - keep)
    stop = state.stops.setdefault(validation.stop_id, {})
    stop[hour] = stop.get(hour, 0) + 1
    state.totals[hour] = state.totals.get(hour, 0) + 1
    state.recent_ids[remembered] = None
    if len(state.recent_ids) > ROUTE_REMEMBERS_IDS:
        del state.recent_ids[next(iter(state.recent_ids))]
    return hour


def remembered_id(validation_id: str) -> str:
    """What a route's state keeps of a validation id: 64 bits of its BLAKE2b, 16 characters whatever
    the id (a validator may send up to 200), so ROUTE_REMEMBERS_IDS ids keep the state small. Two
    ids of one route colliding among the last 2,048 is a chance of about 1e-13."""
    return hashlib.blake2b(validation_id.encode(), digest_size=8).hexdigest()


def _forget_hours_before(state: RouteRidership, oldest_kept: datetime) -> None:
    """Drop the hours before ``oldest_kept`` (and the stops left with none): once per new hour, not per count."""
    for hours in (state.totals, *state.stops.values()):
        for hour in [hour for hour in hours if hour < oldest_kept]:
            del hours[hour]
    for stop in [stop for stop, hours in state.stops.items() if not hours]:
        del state.stops[stop]
