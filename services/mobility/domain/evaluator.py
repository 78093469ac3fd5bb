"""The mobility processor's pure step: one route's state + trip updates and positions -> alerts, KPIs.

The processor keeps one :class:`RouteState` per ``route_id`` (trip updates and vehicle positions
are keyed by route on the bus, so route-level and bunching rules see every vehicle of a route in
one place) and calls :func:`apply_route_events` per record (or batch), then
:func:`tick_route` on a timer for silence and expiry. The oracle in the tests calls the same
functions. State is JSON-safe (``to_dict``/``from_dict``) and every outcome depends on event
times only.

Rules, all on :mod:`madina.alerts`' episode machine (deterministic ids, hysteresis):

* ``trip-delay`` per trip run: raised when the delay where the vehicle is stays >= ``raise_delay_s``
  for ``consecutive`` updates in a row (MINOR), escalated at ``major_delay_s`` (also held for
  ``consecutive`` updates), cleared once under ``clear_delay_s`` for ``clear_after``. Not for a
  headway-based run (frequencies.txt ``exact_times=0``): its departures are nominal, the service
  promises a headway, so a delay against them means nothing. Such runs get no delay (nor a place
  in ``route-delays`` and the delay KPIs); ``bunching`` judges them, by their spacing.
* ``trip-canceled`` per trip run: raised by a CANCELED/DELETED update, cleared if a later update
  reinstates it or once the run's scheduled end has passed.
* ``data-gap`` per vehicle: a vehicle silent mid-trip (last matched before its final stop) for
  ``vehicle_report_interval * gap_factor``; its next report clears it.
* ``route-delays`` per route: ``route_late_count`` or more runs late at once raise one alert naming
  them; their own ``trip-delay`` alerts are closed into it and no new ones open while it lasts
  (one alert for a disrupted line, not one per bus).
* ``bunching`` per route and direction: two consecutive vehicles closer (in scheduled time
  along the path) than ``bunching_fraction`` of the scheduled headway.

Delays come from trip updates (GTFS-Realtime semantics, :mod:`.delays`) and from AVL positions
(:mod:`.avl`); whichever is newer is the trip's current delay.

A **withdrawn** trip update or position (``deleted``: the producer's feed marked it ``is_deleted``
or a FULL_DATASET feed no longer carries it) is removed from the route's state: the run or the
vehicle is forgotten as if never heard of, so it leaves the route's status (and the feeds out), the
route rules and bunching; the run's open ``trip-delay`` / ``trip-canceled`` alert, or the vehicle's
open ``data-gap``, is cleared first (nothing is known about it any more, and a track that is gone
could never clear it later). A withdrawal older than what the state last heard of the run or the
vehicle is stale and changes nothing. Its next update or position brings it back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

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
    force_clear,
    quiet_step,
    record_observation,
    step,
)
from madina.alerts.timeutil import require_utc, time_from_text, time_to_text
from services.mobility.domain.avl import PathIndex, match_position, scheduled_headway_s
from services.mobility.domain.delays import TripState, current_delay, trip_key_of
from services.mobility.domain.gtfs import Schedule
from services.mobility.domain.realtime import TripUpdate, VehiclePosition
from services.mobility.domain.servicedays import TripKey, resolve_start_date, run_of, run_timing

DOMAIN = "mobility"
TRIP_DELAY_RULE = "trip-delay"
TRIP_CANCELED_RULE = "trip-canceled"
ROUTE_DELAYS_RULE = "route-delays"
BUNCHING_RULE = "bunching"


@dataclass(frozen=True)
class MobilityConfig:
    """Thresholds of the mobility rules; every one is a setting of the processor."""

    raise_delay_s: int = 300
    major_delay_s: int = 600
    clear_delay_s: int = 120
    clear_after: timedelta = timedelta(minutes=3)
    consecutive: int = 2
    stale_after: timedelta = timedelta(minutes=5)
    route_late_count: int = 3
    bunching_fraction: float = 0.25
    bunching_clear_fraction: float = 0.5
    vehicle_report_interval: timedelta = timedelta(seconds=30)
    gap_factor: float = 3.0
    max_offset_m: float = 150.0
    match_slack: timedelta = timedelta(minutes=30)
    trip_grace: timedelta = timedelta(minutes=30)

    def __post_init__(self) -> None:
        if not self.clear_delay_s < self.raise_delay_s <= self.major_delay_s:
            raise ValueError("need clear_delay_s < raise_delay_s <= major_delay_s")
        if self.consecutive < 1 or self.route_late_count < 2:
            raise ValueError("consecutive must be >= 1 and route_late_count >= 2")


@dataclass(frozen=True)
class TripTrack:
    """What one route remembers about one trip run."""

    key: TripKey
    end_time: datetime
    recent_delays_s: tuple[int, ...] = ()
    delay_s: int | None = None
    delay_stop_id: str | None = None
    delay_time: datetime | None = None
    late_since: datetime | None = None
    vehicle_id: str | None = None
    canceled: bool = False
    grouped: bool = False
    delay_episode: EpisodeState | None = None
    cancel_episode: EpisodeState | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key.text,
            "end_time": time_to_text(self.end_time),
            "recent_delays_s": list(self.recent_delays_s),
            "delay_s": self.delay_s,
            "delay_stop_id": self.delay_stop_id,
            "delay_time": time_to_text(self.delay_time),
            "late_since": time_to_text(self.late_since),
            "vehicle_id": self.vehicle_id,
            "canceled": self.canceled,
            "grouped": self.grouped,
            "delay_episode": self.delay_episode.to_dict() if self.delay_episode else None,
            "cancel_episode": self.cancel_episode.to_dict() if self.cancel_episode else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TripTrack:
        end_time = time_from_text(data["end_time"])
        assert end_time is not None
        return cls(
            key=TripKey.parse(data["key"]),
            end_time=end_time,
            recent_delays_s=tuple(data.get("recent_delays_s", ())),
            delay_s=data.get("delay_s"),
            delay_stop_id=data.get("delay_stop_id"),
            delay_time=time_from_text(data.get("delay_time")),
            late_since=time_from_text(data.get("late_since")),
            vehicle_id=data.get("vehicle_id"),
            canceled=bool(data.get("canceled", False)),
            grouped=bool(data.get("grouped", False)),
            delay_episode=EpisodeState.from_dict(data["delay_episode"]) if data.get("delay_episode") else None,
            cancel_episode=EpisodeState.from_dict(data["cancel_episode"]) if data.get("cancel_episode") else None,
        )


@dataclass(frozen=True)
class VehicleTrack:
    """One vehicle's last matched position on this route and its silence watch."""

    vehicle_id: str
    data_gap: DataGapState
    trip_key: str | None = None
    direction_id: int | None = None
    along_m: float | None = None
    scheduled_offset_s: float | None = None
    trip_start_time: datetime | None = None
    headway_s: int | None = None
    position_time: datetime | None = None
    at_final_stop: bool = False
    pattern: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "vehicle_id": self.vehicle_id,
            "data_gap": self.data_gap.to_dict(),
            "trip_key": self.trip_key,
            "direction_id": self.direction_id,
            "along_m": self.along_m,
            "scheduled_offset_s": self.scheduled_offset_s,
            "trip_start_time": time_to_text(self.trip_start_time),
            "headway_s": self.headway_s,
            "position_time": time_to_text(self.position_time),
            "at_final_stop": self.at_final_stop,
            "pattern": self.pattern,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VehicleTrack:
        return cls(
            vehicle_id=data["vehicle_id"],
            data_gap=DataGapState.from_dict(data["data_gap"]),
            trip_key=data.get("trip_key"),
            direction_id=data.get("direction_id"),
            along_m=data.get("along_m"),
            scheduled_offset_s=data.get("scheduled_offset_s"),
            trip_start_time=time_from_text(data.get("trip_start_time")),
            headway_s=data.get("headway_s"),
            position_time=time_from_text(data.get("position_time")),
            at_final_stop=bool(data.get("at_final_stop", False)),
            pattern=data.get("pattern", ""),
        )


@dataclass(frozen=True)
class RouteState:
    """Everything remembered about one route between records; JSON-safe via ``to_dict``."""

    route_id: str
    trips: Mapping[str, TripTrack] = field(default_factory=dict)
    vehicles: Mapping[str, VehicleTrack] = field(default_factory=dict)
    route_episode: EpisodeState | None = None
    bunching: Mapping[str, EpisodeState] = field(default_factory=dict)
    watermark: datetime | None = None

    @classmethod
    def new(cls, route_id: str) -> RouteState:
        return cls(route_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "route_id": self.route_id,
            "trips": {key: track.to_dict() for key, track in sorted(self.trips.items())},
            "vehicles": {key: track.to_dict() for key, track in sorted(self.vehicles.items())},
            "route_episode": self.route_episode.to_dict() if self.route_episode else None,
            "bunching": {key: episode.to_dict() for key, episode in sorted(self.bunching.items())},
            "watermark": time_to_text(self.watermark),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RouteState:
        return cls(
            route_id=data["route_id"],
            trips={key: TripTrack.from_dict(raw) for key, raw in data.get("trips", {}).items()},
            vehicles={key: VehicleTrack.from_dict(raw) for key, raw in data.get("vehicles", {}).items()},
            route_episode=EpisodeState.from_dict(data["route_episode"]) if data.get("route_episode") else None,
            bunching={key: EpisodeState.from_dict(raw) for key, raw in data.get("bunching", {}).items()},
            watermark=time_from_text(data.get("watermark")),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RouteState) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class Kpi:
    """A key figure for ``kpis.v1`` (``KpiObserved``), scoped to one route."""

    kpi_id: str
    route_id: str
    value: float
    unit: str
    observe_time: datetime


class StepResult(NamedTuple):
    """What :func:`apply_route_events` and :func:`tick_route` return."""

    state: RouteState
    transitions: list[AlertTransition]
    kpis: list[Kpi]


class _RouteFacts(NamedTuple):
    label: str
    tz: ZoneInfo
    labels: dict[str, str]
    """The labels every alert of the route carries (copied per alert)."""


def _route_facts(schedule: Schedule, route_id: str) -> _RouteFacts:
    route = schedule.routes.get(route_id)
    labels = {"route_id": route_id}
    if route is None:
        return _RouteFacts(f"Route {route_id}", ZoneInfo("UTC"), labels)
    labels["route_short_name"] = route.short_name
    return _RouteFacts(route.display_name, ZoneInfo(route.timezone), labels)


class _Context:
    """One step's inputs and what it has built so far; the route's facts are worked out once per
    schedule (they are read for every update)."""

    __slots__ = ("config", "delay_policy", "label", "paths", "route_id", "route_labels", "schedule", "transitions",
                 "trips", "tz", "vehicles")

    def __init__(self, schedule: Schedule, paths: PathIndex, config: MobilityConfig, route_id: str,
                 trips: dict[str, TripTrack], vehicles: dict[str, VehicleTrack]) -> None:
        self.schedule = schedule
        self.paths = paths
        self.config = config
        self.route_id = route_id
        self.transitions: list[AlertTransition] = []
        self.trips = trips
        self.vehicles = vehicles
        self.label, self.tz, self.route_labels = schedule.memo(
            "mobility-route-facts", route_id, lambda: _route_facts(schedule, route_id))
        self.delay_policy = _delay_policy(config.clear_after)

    def stop_name(self, stop_id: str | None) -> str:
        stop = self.schedule.stops.get(stop_id or "")
        return stop.name if stop is not None else (stop_id or "?")

    def clock(self, moment: datetime) -> str:
        return moment.astimezone(self.tz).strftime("%H:%M")


@lru_cache(maxsize=16)
def _delay_policy(clear_after: timedelta) -> EpisodePolicy:
    return EpisodePolicy(clear_after=clear_after)


def apply_route_events(
    state: RouteState,
    events: Sequence[TripUpdate | VehiclePosition],
    schedule: Schedule,
    paths: PathIndex,
    config: MobilityConfig = MobilityConfig(),
) -> StepResult:
    """Fold one route's trip updates and positions (any order; sorted by event time) into ``state``."""
    ctx = _Context(schedule, paths, config, state.route_id, dict(state.trips), dict(state.vehicles))
    watermark = state.watermark
    for event in sorted(events, key=lambda e: e.timestamp):
        if isinstance(event, TripUpdate):
            (_withdraw_trip_update if event.deleted else _apply_trip_update)(ctx, event)
        else:
            (_withdraw_position if event.deleted else _apply_position)(ctx, event)
        watermark = event.timestamp if watermark is None else max(watermark, event.timestamp)
    state = replace(state, trips=ctx.trips, vehicles=ctx.vehicles, watermark=watermark)
    if watermark is None:
        return StepResult(state, ctx.transitions, [])
    state, fresh = _route_rules(ctx, state, watermark)
    return StepResult(state, ctx.transitions, _kpis(ctx, watermark, fresh))


def tick_route(
    state: RouteState, now: datetime, schedule: Schedule, paths: PathIndex, config: MobilityConfig = MobilityConfig()
) -> StepResult:
    """Timer work at ``now`` (a watermark): vehicle silence, ended runs, stale delays, route rules."""
    now = require_utc(now, "now")
    ctx = _Context(schedule, paths, config, state.route_id, dict(state.trips), dict(state.vehicles))
    policy = DataGapPolicy(config.vehicle_report_interval, config.gap_factor, severity=Severity.WARNING)
    for vehicle_id, vehicle in list(ctx.vehicles.items()):
        if vehicle.trip_key is None or vehicle.at_final_stop:
            continue
        details = _details(ctx, "data-gap", "vehicle", _parsed(vehicle.trip_key), vehicle_id=vehicle_id)
        gap, transition = check_silence(vehicle.data_gap, now, policy, details)
        if transition is not None:
            trip_id = TripKey.parse(vehicle.trip_key).trip_id
            silent = transition.observed_value // 60
            transition = replace(
                transition,
                message=f"{ctx.label} vehicle {vehicle_id} on trip {trip_id}: silent {silent:.0f} min mid-trip",
            )
            ctx.transitions.append(transition)
        ctx.vehicles[vehicle_id] = replace(vehicle, data_gap=gap)
    for key, track in list(ctx.trips.items()):
        if now <= track.end_time + config.trip_grace:
            continue
        for episode_name in ("delay_episode", "cancel_episode"):
            episode: EpisodeState | None = getattr(track, episode_name)
            if episode is None or not episode.active:
                continue
            episode, transition = force_clear(
                episode, now, 0.0, f"{ctx.label} trip {track.key.trip_id}: run ended", episode_details(ctx, track)
            )
            if transition is not None:
                ctx.transitions.append(transition)
        del ctx.trips[key]
    for vehicle_id, vehicle in list(ctx.vehicles.items()):
        if vehicle.trip_key not in ctx.trips and not vehicle.data_gap.episode.active:
            del ctx.vehicles[vehicle_id]
    state = replace(state, trips=ctx.trips, vehicles=ctx.vehicles, watermark=max(now, state.watermark or now))
    state, fresh = _route_rules(ctx, state, now)
    return StepResult(state, ctx.transitions, _kpis(ctx, now, fresh))


def episode_details(ctx: _Context, track: TripTrack) -> AlertDetails:
    return _details(ctx, TRIP_DELAY_RULE, "trip", track.key, vehicle_id=track.vehicle_id, stop_id=track.delay_stop_id)


def _details(
    ctx: _Context, category: str, kind: str, key: TripKey | None = None, *, unit: str = "", **values: str | None
) -> AlertDetails:
    labels = dict(ctx.route_labels)
    if key is not None:
        labels["trip_id"] = key.trip_id
        labels["start_date"] = key.start_date
    for name, value in values.items():
        if value:
            labels[name] = value
    if values.get("stop_id"):
        labels["stop_name"] = ctx.stop_name(values["stop_id"])
    return AlertDetails(category=category, source_kind=kind, unit=unit, labels=labels)


def _parsed(key_text: str | None) -> TripKey | None:
    return TripKey.parse(key_text) if key_text else None


def _track(ctx: _Context, key: TripKey) -> TripTrack | None:
    track = ctx.trips.get(key.text)
    if track is not None:
        return track
    timing = run_timing(ctx.schedule, key)
    if timing is None:
        return None
    return TripTrack(key=key, end_time=timing.end)


def _apply_trip_update(ctx: _Context, update: TripUpdate) -> None:
    if update.start_date is None:
        start_date = resolve_start_date(ctx.schedule, update.trip_id, update.timestamp, ctx.config.match_slack)
        update = replace(update, start_date=start_date)
    key = trip_key_of(update)
    if key is None:
        return
    track = _track(ctx, key)
    if track is None:
        return
    at = update.timestamp
    current = current_delay(ctx.schedule, update, at, key=key, stale_after=ctx.config.stale_after)
    if update.vehicle_id and update.vehicle_id != track.vehicle_id:
        track = replace(track, vehicle_id=update.vehicle_id)
    canceled = current.state is TripState.CANCELED or current.state is TripState.DELETED
    if canceled or track.canceled or (track.cancel_episode is not None and track.cancel_episode.active):
        track = _cancel_rule(ctx, track, canceled, at)  # otherwise it would give the track back as it is
    if not canceled and current.delay_s is not None and not headway_based(ctx.schedule, key):
        assert current.stop_id is not None
        track = _delay_rule(ctx, track, current.delay_s, current.stop_id, at)
    ctx.trips[key.text] = track


def _withdraw_trip_update(ctx: _Context, update: TripUpdate) -> None:
    if update.start_date is None:
        start_date = resolve_start_date(ctx.schedule, update.trip_id, update.timestamp, ctx.config.match_slack)
        update = replace(update, start_date=start_date)
    key = trip_key_of(update)
    track = ctx.trips.get(key.text) if key is not None else None
    if track is None:
        return
    episodes = [e for e in (track.delay_episode, track.cancel_episode) if e is not None and e.active]
    heard = [t for t in (track.delay_time, *(e.last_event_time for e in episodes)) if t is not None]
    if any(update.timestamp < moment for moment in heard):
        return
    message = f"{ctx.label} trip {track.key.trip_id}: realtime withdrawn by the producer"
    for episode in episodes:
        _, transition = force_clear(episode, update.timestamp, float(track.delay_s or 0), message,
                                    episode_details(ctx, track))
        if transition is not None:
            ctx.transitions.append(transition)
    del ctx.trips[track.key.text]


def _withdraw_position(ctx: _Context, position: VehiclePosition) -> None:
    vehicle = ctx.vehicles.get(position.vehicle_id)
    if vehicle is None:
        return
    gap = vehicle.data_gap.episode
    heard = [t for t in (vehicle.position_time, gap.last_event_time if gap.active else None) if t is not None]
    if any(position.timestamp < moment for moment in heard):
        return
    if gap.active:
        details = _details(ctx, "data-gap", "vehicle", _parsed(vehicle.trip_key), vehicle_id=vehicle.vehicle_id)
        _, transition = force_clear(gap, position.timestamp, 0.0,
                                    f"{ctx.label} vehicle {vehicle.vehicle_id}: withdrawn by the producer", details)
        if transition is not None:
            ctx.transitions.append(transition)
    del ctx.vehicles[vehicle.vehicle_id]


def _apply_position(ctx: _Context, position: VehiclePosition) -> None:
    vehicle = ctx.vehicles.get(position.vehicle_id) or VehicleTrack(
        position.vehicle_id, DataGapState.new(DOMAIN, f"vehicle/{position.vehicle_id}")
    )
    if vehicle.position_time is not None and position.timestamp <= vehicle.position_time:
        return
    gap, cleared = record_observation(
        vehicle.data_gap, position.timestamp, _details(ctx, "data-gap", "vehicle", vehicle_id=position.vehicle_id)
    )
    if cleared is not None:
        ctx.transitions.append(replace(cleared, message=f"{ctx.label} vehicle {position.vehicle_id} reporting again"))
    vehicle = replace(vehicle, data_gap=gap, position_time=position.timestamp)
    previous = vehicle.along_m if vehicle.trip_key is not None else None
    match = match_position(
        ctx.schedule, ctx.paths, position,
        max_offset_m=ctx.config.max_offset_m, slack=ctx.config.match_slack, previous_along_m=previous,
    )  # fmt: skip
    if match is None:
        ctx.vehicles[position.vehicle_id] = replace(vehicle, trip_key=None, along_m=None, scheduled_offset_s=None)
        return
    run = run_of(ctx.schedule, match.key)
    assert run is not None
    trip = run.trip
    ctx.vehicles[position.vehicle_id] = replace(
        vehicle,
        trip_key=match.key.text,
        direction_id=match.direction_id,
        along_m=match.along_m,
        scheduled_offset_s=match.scheduled_offset_s,
        trip_start_time=run.start,
        headway_s=scheduled_headway_s(ctx.schedule, run),
        at_final_stop=match.at_final_stop,
        pattern=f"{trip.shape_id or ''}|{'-'.join(st.stop_id for st in trip.stop_times)}",
    )
    track = _track(ctx, match.key)
    if track is None or track.canceled:
        return
    track = replace(track, vehicle_id=position.vehicle_id)
    if headway_based(ctx.schedule, match.key):
        ctx.trips[match.key.text] = track
        return
    ctx.trips[match.key.text] = _delay_rule(ctx, track, match.delay_s, match.last_stop.stop_id, position.timestamp)


def headway_based(schedule: Schedule, key: TripKey) -> bool:
    """Whether the run is a frequencies.txt ``exact_times=0`` run, judged by headway, not by delay."""
    trip = schedule.trips.get(key.trip_id)
    return trip is not None and trip.exact_times is False


def _cancel_rule(ctx: _Context, track: TripTrack, canceled: bool, at: datetime) -> TripTrack:
    if not canceled and (track.cancel_episode is None or not track.cancel_episode.active):
        return replace(track, canceled=False) if track.canceled else track
    episode = track.cancel_episode or EpisodeState(DOMAIN, f"trip/{track.key.text}", TRIP_CANCELED_RULE)
    trip_id = track.key.trip_id
    if canceled:
        run = run_of(ctx.schedule, track.key)
        start = f" ({ctx.clock(run.start)})" if run is not None else ""
        message = f"{ctx.label} trip {trip_id}{start}: cancelled"
    else:
        message = f"{ctx.label} trip {trip_id}: running again"
    evaluation = Evaluation(
        event_time=at,
        severity=Severity.MINOR if canceled else None,
        observed_value=1.0 if canceled else 0.0,
        threshold=1.0 if canceled else None,
        below_clear_level=not canceled,
        message=message,
        details=_details(ctx, TRIP_CANCELED_RULE, "trip", track.key, vehicle_id=track.vehicle_id),
    )
    episode, transition = step(episode, evaluation, EpisodePolicy(update_interval=None))
    if transition is not None:
        ctx.transitions.append(transition)
    return replace(track, canceled=canceled, cancel_episode=episode)


def _delay_rule(ctx: _Context, track: TripTrack, delay: int, stop_id: str, at: datetime) -> TripTrack:
    config = ctx.config
    earlier = track.recent_delays_s
    if track.delay_time is not None and at <= track.delay_time:
        # "Two consecutive updates" means two observations: the same update again (an HTTP retry,
        # an unchanged feed pushed again, two API replicas polling one URL) is not a second one,
        # and a different delay with the same timestamp corrects the last one rather than adding.
        if at < track.delay_time or delay == track.delay_s:
            return track
        earlier = earlier[:-1]
    recent = (*earlier, delay)[-config.consecutive :]
    late_since = track.late_since if delay >= config.raise_delay_s else None
    if delay >= config.raise_delay_s and late_since is None:
        late_since = at
    sustained = min(recent) if len(recent) >= config.consecutive else None
    severity: Severity | None = None
    threshold: float | None = None
    if sustained is not None and sustained >= config.major_delay_s:
        severity, threshold = Severity.MAJOR, float(config.major_delay_s)
    elif sustained is not None and sustained >= config.raise_delay_s:
        severity, threshold = Severity.MINOR, float(config.raise_delay_s)
    episode = track.delay_episode or EpisodeState(DOMAIN, f"trip/{track.key.text}", TRIP_DELAY_RULE)
    if track.grouped and not episode.active:
        severity = threshold = None  # covered by the route's alert while it lasts
    # Nearly every update emits nothing: ask the episode first, build the message only for a transition.
    quiet = quiet_step(episode, at, severity, float(delay), delay < config.clear_delay_s, ctx.delay_policy)
    if quiet is not None:
        return _with_delay(track, recent, delay, stop_id, at, late_since, quiet)
    minutes = round(delay / 60)
    if delay >= config.clear_delay_s:
        since = f", since {ctx.clock(late_since)}" if late_since is not None else ""
        message = f"{ctx.label} trip {track.key.trip_id}: {minutes} min late at {ctx.stop_name(stop_id)}{since}"
    else:
        message = f"{ctx.label} trip {track.key.trip_id}: back on time at {ctx.stop_name(stop_id)} ({delay:+d} s)"
    evaluation = Evaluation(
        event_time=at,
        severity=severity,
        observed_value=float(delay),
        threshold=threshold,
        below_clear_level=delay < config.clear_delay_s,
        message=message,
        details=_details(ctx, TRIP_DELAY_RULE, "trip", track.key, unit="s", vehicle_id=track.vehicle_id,
                         stop_id=stop_id),  # episode_details of the track with this delay
    )
    episode, transition = step(episode, evaluation, ctx.delay_policy)
    if transition is not None:
        ctx.transitions.append(transition)
    return _with_delay(track, recent, delay, stop_id, at, late_since, episode)


def _with_delay(track: TripTrack, recent: tuple[int, ...], delay: int, stop_id: str, at: datetime,
                late_since: datetime | None, episode: EpisodeState) -> TripTrack:
    """``replace(track, ...)`` with a new delay, without re-running the frozen ``__init__`` (TripTrack
    has no ``__post_init__``, so copying its fields gives the same value): every update does it."""
    moved = object.__new__(TripTrack)
    fields = moved.__dict__
    fields.update(track.__dict__)
    fields["recent_delays_s"] = recent
    fields["delay_s"] = delay
    fields["delay_stop_id"] = stop_id
    fields["delay_time"] = at
    fields["late_since"] = late_since
    fields["delay_episode"] = episode
    return moved


def _fresh_delays(ctx: _Context, now: datetime) -> tuple[list[TripTrack], list[int]]:
    """The runs late at ``now`` (not cancelled, sorted by key) and every fresh delay, in one pass
    over the route's runs (it runs once per record)."""
    config = ctx.config
    oldest = now - config.stale_after  # fresh: now - delay_time <= stale_after
    raise_delay_s = config.raise_delay_s
    late: list[TripTrack] = []
    fresh: list[int] = []
    for track in ctx.trips.values():
        delay = track.delay_s
        if delay is None or track.delay_time is None or track.delay_time < oldest:
            continue
        fresh.append(delay)
        if delay >= raise_delay_s and not track.canceled:
            late.append(track)
    late.sort(key=lambda t: (t.key.trip_id, t.key.start_date))  # TripKey's order, without its __lt__
    return late, fresh


def _route_rules(ctx: _Context, state: RouteState, now: datetime) -> tuple[RouteState, list[int]]:
    """The route-delays rule and bunching; also every fresh delay (for the KPIs)."""
    config = ctx.config
    late, fresh = _fresh_delays(ctx, now)
    episode = state.route_episode or EpisodeState(DOMAIN, f"route/{ctx.route_id}", ROUTE_DELAYS_RULE)
    breach = len(late) >= config.route_late_count
    severity = Severity.MAJOR if breach else None
    # Nearly every record changes nothing here: ask the episode before building the message.
    quiet = quiet_step(episode, now, severity, float(len(late)), not breach, ctx.delay_policy)
    if quiet is not None:
        episode = quiet
    else:
        names = ", ".join(track.key.trip_id for track in late)
        worst = max((track.delay_s or 0 for track in late), default=0)
        message = (
            f"{ctx.label}: {len(late)} trips late at once ({names}; worst {round(worst / 60)} min)"
            if late
            else f"{ctx.label}: no trip late any more"
        )
        evaluation = Evaluation(
            event_time=now,
            severity=severity,
            observed_value=float(len(late)),
            threshold=float(config.route_late_count) if breach else None,
            below_clear_level=not breach,
            message=message,
            details=_details(ctx, ROUTE_DELAYS_RULE, "route").refine({
                "trip_ids": ",".join(track.key.trip_id for track in late),
                "vehicle_ids": ",".join(sorted({t.vehicle_id for t in late if t.vehicle_id})),
            }),
        )
        episode, transition = step(episode, evaluation, ctx.delay_policy)
        if transition is not None:
            ctx.transitions.append(transition)
    if episode.active:
        for track in late:
            grouped = replace(track, grouped=True)
            if track.delay_episode is not None and track.delay_episode.active:
                closed, cleared = force_clear(
                    track.delay_episode,
                    now,
                    float(track.delay_s or 0),
                    f"{ctx.label} trip {track.key.trip_id}: grouped into the route delay alert",
                    episode_details(ctx, track),
                )
                if cleared is not None:
                    ctx.transitions.append(cleared)
                grouped = replace(grouped, delay_episode=closed)
            ctx.trips[track.key.text] = grouped
    else:
        for key, track in list(ctx.trips.items()):
            if track.grouped:
                ctx.trips[key] = replace(track, grouped=False)
    bunching = _bunching(ctx, state, now)
    return replace(state, trips=dict(ctx.trips), route_episode=episode, bunching=bunching), fresh


def _bunching(ctx: _Context, state: RouteState, now: datetime) -> dict[str, EpisodeState]:
    config = ctx.config
    by_direction: dict[str, list[VehicleTrack]] = {}
    for vehicle in ctx.vehicles.values():
        fresh = vehicle.position_time is not None and now - vehicle.position_time <= config.stale_after
        if (
            fresh
            and vehicle.trip_key is not None
            and vehicle.scheduled_offset_s is not None
            and not vehicle.at_final_stop
        ):
            by_direction.setdefault(str(vehicle.direction_id), []).append(vehicle)
    episodes = dict(state.bunching)
    for direction in sorted(set(by_direction) | set(episodes)):
        vehicles = by_direction.get(direction, [])
        closest: tuple[float, float, VehicleTrack, VehicleTrack] | None = None  # (ratio, gap, leader, follower)
        by_pattern: dict[str, list[VehicleTrack]] = {}
        for vehicle in vehicles:
            by_pattern.setdefault(vehicle.pattern, []).append(vehicle)
        for group in by_pattern.values():
            group.sort(key=lambda v: v.scheduled_offset_s or 0.0, reverse=True)
            for leader, follower in pairwise(group):
                headway = follower.headway_s or leader.headway_s
                if not headway:
                    continue
                gap = (leader.scheduled_offset_s or 0.0) - (follower.scheduled_offset_s or 0.0)
                ratio = gap / headway
                if closest is None or ratio < closest[0]:
                    closest = (ratio, gap, leader, follower)
        episode = episodes.get(direction) or EpisodeState(DOMAIN, f"route/{ctx.route_id}/{direction}", BUNCHING_RULE)
        if closest is None:
            if episode.active:
                ratio_value, below = 1.0, True
            else:
                continue
            evaluation = Evaluation(
                now, None, ratio_value, below_clear_level=below, message=f"{ctx.label}: vehicles spread out again"
            )
        else:
            ratio, gap, leader, follower = closest
            breach = ratio < config.bunching_fraction
            headway = follower.headway_s or leader.headway_s or 0
            evaluation = Evaluation(
                event_time=now,
                severity=Severity.WARNING if breach else None,
                observed_value=round(ratio, 3),
                threshold=config.bunching_fraction if breach else None,
                below_clear_level=ratio >= config.bunching_clear_fraction,
                message=(
                    f"{ctx.label}: vehicles {leader.vehicle_id} and {follower.vehicle_id} bunched, "
                    f"{round(gap / 60, 1):g} min apart for a {round(headway / 60):d} min headway"
                ),
                details=_details(
                    ctx, BUNCHING_RULE, "route", vehicle_id=f"{leader.vehicle_id},{follower.vehicle_id}"
                ).refine({
                    "direction_id": direction,
                    "trip_ids": ",".join(
                        TripKey.parse(v.trip_key).trip_id for v in (leader, follower) if v.trip_key is not None
                    ),
                }),
            )
        episode, transition = step(episode, evaluation, EpisodePolicy(clear_after=config.clear_after))
        if transition is not None:
            ctx.transitions.append(transition)
        episodes[direction] = episode
    return episodes


def _kpis(ctx: _Context, now: datetime, fresh: list[int]) -> list[Kpi]:
    late = [d for d in fresh if d >= ctx.config.raise_delay_s]
    kpis = [Kpi("late-trips", ctx.route_id, float(len(late)), "", now)]
    if fresh:
        kpis.append(Kpi("mean-delay", ctx.route_id, round(sum(fresh) / len(fresh), 1), "s", now))
    return kpis
