"""GTFS-Realtime delay semantics, as the reference defines them, for one trip run.

:func:`resolve_trip` combines a trip's static schedule with its latest :class:`TripUpdate` into
a :class:`TripStatus` with a prediction (or an explicit "unknown") for every stop:

* A StopTimeEvent's ``delay`` (seconds, positive late) gives the prediction ``schedule + delay``;
  when ``time`` is present it *is* the prediction and the delay is derived from it against the
  schedule (time takes precedence over delay).
* A delay propagates downstream (arrival -> departure -> next stops) until the next
  StopTimeUpdate that gives one. The trip-level ``TripUpdate.delay`` applies from the first stop
  until the first StopTimeUpdate. Stops before any information are UNKNOWN, never on time.
* SKIPPED: the vehicle does not stop there (no times); the delay propagates over it.
* NO_DATA: no realtime for this stop, and this propagates: later stops are UNKNOWN until a
  StopTimeUpdate with data.
* CANCELED / DELETED trips: every stop is cancelled. ADDED / NEW trips have no schedule; their
  stops and times come from the update alone (NEW may carry ``scheduled_time`` to derive a delay).
  DUPLICATED copies the original trip's schedule to TripProperties' start date/time under
  TripProperties' trip id. UNSCHEDULED (frequency trips without schedule) is UNKNOWN.
* ``uncertainty`` is carried onto each prediction (propagated ones keep their source's).
* No update, or one older than ``stale_after`` at ``now``, means the trip is UNKNOWN.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import NamedTuple

from madina.alerts.timeutil import require_utc
from services.mobility.domain.gtfs import Schedule, Timetable, parse_gtfs_date, parse_gtfs_time
from services.mobility.domain.realtime import (
    StopRelationship,
    StopTimeEvent,
    StopTimeUpdate,
    TripRelationship,
    TripUpdate,
)
from services.mobility.domain.servicedays import ScheduledRun, TripKey, run_of, run_timing, trip_key

DEFAULT_STALE_AFTER = timedelta(minutes=5)


class TripState(StrEnum):
    """What is known about a trip run."""

    UNKNOWN = "UNKNOWN"
    PREDICTED = "PREDICTED"
    CANCELED = "CANCELED"
    DELETED = "DELETED"
    ADDED = "ADDED"
    DUPLICATED = "DUPLICATED"


class StopState(StrEnum):
    """Where a stop's prediction comes from."""

    UPDATED = "UPDATED"
    """From this stop's own StopTimeUpdate."""
    PROPAGATED = "PROPAGATED"
    """Delay carried from an earlier StopTimeUpdate (or the trip-level delay)."""
    SKIPPED = "SKIPPED"
    NO_DATA = "NO_DATA"
    UNKNOWN = "UNKNOWN"
    CANCELED = "CANCELED"


@dataclass(frozen=True, slots=True)
class Prediction:
    """A predicted event: time, delay against the schedule (when there is one), uncertainty."""

    time: datetime
    delay_s: int | None
    uncertainty_s: int | None


@dataclass(frozen=True, slots=True)
class StopStatus:
    """One stop of a trip run after applying realtime."""

    stop_sequence: int
    stop_id: str
    state: StopState
    scheduled_arrival: datetime | None
    scheduled_departure: datetime | None
    arrival: Prediction | None = None
    departure: Prediction | None = None


@dataclass(frozen=True)
class TripStatus:
    """A trip run's realtime picture; ``reason`` says why it is UNKNOWN."""

    key: TripKey
    state: TripState
    stops: tuple[StopStatus, ...]
    update_time: datetime | None = None
    route_id: str | None = None
    vehicle_id: str | None = None
    reason: str = ""
    unmatched_updates: int = 0

    def delay_at(self, now: datetime) -> tuple[StopStatus, int] | None:
        """The delay where the vehicle is: at the next stop it has not yet left (or the last stop).

        ``None`` when that stop has no known delay (UNKNOWN/NO_DATA) or the trip is not predicted.
        """
        if self.state not in (TripState.PREDICTED, TripState.DUPLICATED, TripState.ADDED):
            return None
        now = require_utc(now, "now")
        candidates = [stop for stop in self.stops if stop.state not in (StopState.SKIPPED, StopState.CANCELED)]
        for stop in candidates:
            event = stop.departure or stop.arrival
            if event is None:
                if stop.state in (StopState.UNKNOWN, StopState.NO_DATA):
                    continue
                return None
            if event.time >= now:
                chosen = stop.arrival if stop.arrival is not None and stop.arrival.time >= now else event
                return (stop, chosen.delay_s) if chosen.delay_s is not None else None
        for stop in reversed(candidates):
            event = stop.arrival or stop.departure
            if event is not None and event.delay_s is not None:
                return stop, event.delay_s
        return None


def unknown(key: TripKey, run: ScheduledRun | None, reason: str, update: TripUpdate | None = None) -> TripStatus:
    """Status of a run without usable realtime: every stop UNKNOWN, never "on time"."""
    stops = _scheduled_stops(run, StopState.UNKNOWN) if run is not None else ()
    return TripStatus(
        key,
        TripState.UNKNOWN,
        stops,
        update.timestamp if update is not None else None,
        run.trip.route_id if run is not None else (update.route_id if update else None),
        update.vehicle_id if update is not None else None,
        reason,
    )


def trip_key_of(update: TripUpdate) -> TripKey | None:
    """The run an update speaks about (DUPLICATED: the new copy), or ``None`` without a start date."""
    if update.relationship is TripRelationship.DUPLICATED:
        start_date = update.new_start_date or update.start_date
        return trip_key(update.new_trip_id or update.trip_id, start_date) if start_date else None
    return trip_key(update.trip_id, update.start_date) if update.start_date else None


def resolve_trip(
    schedule: Schedule,
    update: TripUpdate | None,
    now: datetime,
    *,
    key: TripKey | None = None,
    stale_after: timedelta = DEFAULT_STALE_AFTER,
) -> TripStatus:
    """Apply ``update`` to its trip's schedule at ``now`` (see the module docstring for the rules)."""
    now = require_utc(now, "now")
    if update is None:
        if key is None:
            raise ValueError("without an update, say which trip run (key)")
        return unknown(key, run_of(schedule, key), "no trip update")
    key = key or trip_key_of(update)
    if key is None:
        return unknown(TripKey(update.trip_id, ""), None, "update has no start_date", update)
    relationship = update.relationship
    if relationship is TripRelationship.DUPLICATED:
        run = _duplicated_run(schedule, update)
        original = None
    else:
        run = run_of(schedule, key)
        original = run
    if now - update.timestamp > stale_after:
        return unknown(key, run, f"last update is older than {int(stale_after.total_seconds())} s", update)
    route_id = run.trip.route_id if run is not None else update.route_id
    if relationship in (TripRelationship.CANCELED, TripRelationship.DELETED):
        state = TripState.CANCELED if relationship is TripRelationship.CANCELED else TripState.DELETED
        stops = _scheduled_stops(original, StopState.CANCELED) if original is not None else ()
        return TripStatus(key, state, stops, update.timestamp, route_id, update.vehicle_id)
    if relationship in (TripRelationship.ADDED, TripRelationship.NEW):
        return TripStatus(
            key, TripState.ADDED, _unscheduled_stops(update.stop_time_updates), update.timestamp, route_id,
            update.vehicle_id,
        )  # fmt: skip
    if relationship in (TripRelationship.UNSCHEDULED, TripRelationship.REPLACEMENT):
        return unknown(key, run, f"{relationship.value} trips are not predicted", update)
    if run is None:
        return unknown(key, None, "trip run is not in the schedule", update)
    stops, unmatched = _apply(run, update)
    state = TripState.DUPLICATED if relationship is TripRelationship.DUPLICATED else TripState.PREDICTED
    return TripStatus(key, state, stops, update.timestamp, route_id, update.vehicle_id, "", unmatched)


class CurrentDelay(NamedTuple):
    """What the alert rules need of a resolved trip: its state and the delay where the vehicle is."""

    state: TripState
    stop_id: str | None = None
    delay_s: int | None = None


_MICROSECOND = timedelta(microseconds=1)
_US = 1_000_000


def current_delay(
    schedule: Schedule,
    update: TripUpdate | None,
    now: datetime,
    *,
    key: TripKey | None = None,
    stale_after: timedelta = DEFAULT_STALE_AFTER,
) -> CurrentDelay:
    """``resolve_trip(...)``'s state and ``delay_at(now)``, without a status for every stop.

    The processor asks this for every trip update, so a SCHEDULED update (nearly all of them) is
    worked out on the trip's :class:`~services.mobility.domain.gtfs.Timetable` in integer
    microseconds from its service day's origin (the same arithmetic as the datetimes of
    :func:`resolve_trip`, so the same answers) and stops at the first stop ``delay_at`` would
    choose; between two stops with updates the delay carried is constant, so that stop is found by
    bisection over the departures rather than stop by stop. Any other relationship takes
    :func:`resolve_trip` itself.
    """
    now = require_utc(now, "now")
    if update is None or update.relationship is not TripRelationship.SCHEDULED:
        status = resolve_trip(schedule, update, now, key=key, stale_after=stale_after)
        found = status.delay_at(now)
        return CurrentDelay(status.state, found[0].stop_id, found[1]) if found else CurrentDelay(status.state)
    key = key or trip_key_of(update)
    if key is None or now - update.timestamp > stale_after:
        return CurrentDelay(TripState.UNKNOWN)
    timing = run_timing(schedule, key)
    if timing is None:
        return CurrentDelay(TripState.UNKNOWN)
    timetable, origin = timing.timetable, timing.origin
    now_us = (now - origin) // _MICROSECOND
    stop_ids, arrivals, departures = timetable.stop_ids, timetable.arrivals_s, timetable.departures_s
    matched = _match_timetable(timetable, update.stop_time_updates)[0] if update.stop_time_updates else {}
    carried = update.delay_s  # the delay carried downstream (see _apply); None: nothing known
    # The last stop with a prediction, for when every prediction is already past (delay_at's end).
    last: tuple[int, int] | None = None
    start = 0  # the first stop not looked at yet
    for index in sorted(matched) if len(matched) > 1 else matched:
        if carried is not None and start < index:  # stops start..index-1 have no update: carried applies
            not_left = _first_not_left(timetable, start, index, carried, now_us)
            if not_left is not None:
                return CurrentDelay(TripState.PREDICTED, stop_ids[not_left], carried)
            last = (index - 1, carried)
        start = index + 1
        stop_update = matched[index]
        relationship = stop_update.relationship
        if relationship is StopRelationship.NO_DATA:
            carried = None
            continue
        if relationship is StopRelationship.SKIPPED:
            continue
        if relationship is StopRelationship.UNSCHEDULED or not (stop_update.arrival or stop_update.departure):
            if carried is None:
                continue  # UNKNOWN
            last = (index, carried)
            if (departures[index] + carried) * _US >= now_us:
                return CurrentDelay(TripState.PREDICTED, stop_ids[index], carried)
            continue
        arrival = _predict_us(arrivals[index], stop_update.arrival, origin) if stop_update.arrival else None
        if arrival is None and carried is not None:
            arrival = ((arrivals[index] + carried) * _US, carried)
        if arrival is not None:
            carried = arrival[1]
        departure = _predict_us(departures[index], stop_update.departure, origin) if stop_update.departure else None
        if departure is None and carried is not None:
            departure = ((departures[index] + carried) * _US, carried)
        if departure is not None:
            carried = departure[1]
        event = departure or arrival
        if event is None:
            return CurrentDelay(TripState.PREDICTED)  # an updated stop without a prediction: delay_at gives up
        last = (index, (arrival or event)[1])
        if event[0] >= now_us:
            chosen = arrival if arrival is not None and arrival[0] >= now_us else event
            return CurrentDelay(TripState.PREDICTED, stop_ids[index], chosen[1])
    if carried is not None and start < len(stop_ids):
        not_left = _first_not_left(timetable, start, len(stop_ids), carried, now_us)
        if not_left is not None:
            return CurrentDelay(TripState.PREDICTED, stop_ids[not_left], carried)
        last = (len(stop_ids) - 1, carried)
    if last is not None:
        return CurrentDelay(TripState.PREDICTED, stop_ids[last[0]], last[1])
    return CurrentDelay(TripState.PREDICTED)


def _first_not_left(timetable: Timetable, start: int, stop: int, carried: int, now_us: int) -> int | None:
    """The first stop of ``start..stop-1`` whose departure, ``carried`` seconds late, is not before
    ``now_us``, or ``None``: by bisection over a timetable whose departures never go back."""
    departures = timetable.departures_s
    if not timetable.departures_sorted:
        return next((i for i in range(start, stop) if (departures[i] + carried) * _US >= now_us), None)
    # (departure + carried) * _US >= now_us  <=>  departure >= ceil(now_us / _US - carried), in integers
    index = bisect_left(departures, -((carried * _US - now_us) // _US), start, stop)
    return index if index < stop else None


def _predict_us(scheduled_s: int, event: StopTimeEvent, origin: datetime) -> tuple[int, int] | None:
    """:func:`_predict` as (microseconds past ``origin``, delay)."""
    if event.time is not None:
        time_us = (event.time - origin) // _MICROSECOND
        return time_us, round((time_us - scheduled_s * _US) / _US)
    if event.delay_s is not None:
        return (scheduled_s + event.delay_s) * _US, event.delay_s
    return None


def _duplicated_run(schedule: Schedule, update: TripUpdate) -> ScheduledRun | None:
    """The original trip's schedule moved to TripProperties' start date and time."""
    trip = schedule.trips.get(update.trip_id)
    start_date = update.new_start_date or update.start_date
    if trip is None or start_date is None:
        return None
    tz = schedule.timezone_of(trip)
    shift = parse_gtfs_time(update.new_start_time) - trip.start_s if update.new_start_time else 0
    stop_times = tuple(
        type(st)(st.stop_sequence, st.stop_id, st.arrival_s + shift, st.departure_s + shift, st.shape_dist_traveled)
        for st in trip.stop_times
    )
    copy = type(trip)(
        update.new_trip_id or trip.trip_id, trip.route_id, trip.service_id, trip.direction_id, trip.headsign,
        trip.shape_id, stop_times, trip.feed_id,
    )  # fmt: skip
    return ScheduledRun(copy, parse_gtfs_date(start_date), tz)


def _scheduled_stops(run: ScheduledRun, state: StopState) -> tuple[StopStatus, ...]:
    return tuple(
        StopStatus(st.stop_sequence, st.stop_id, state, run.arrival(st), run.departure(st))
        for st in run.trip.stop_times
    )


def _match(run: ScheduledRun, updates: Sequence[StopTimeUpdate]) -> tuple[dict[int, StopTimeUpdate], int]:
    return _match_timetable(Timetable.of(run.trip), updates)


def _match_timetable(
    timetable: Timetable, updates: Sequence[StopTimeUpdate]
) -> tuple[dict[int, StopTimeUpdate], int]:
    """Index of the stop each update is for: by stop_sequence, else the next stop with its stop_id."""
    stop_ids = timetable.stop_ids
    by_sequence = timetable.index_of_sequence
    matched: dict[int, StopTimeUpdate] = {}
    cursor = 0
    unmatched = 0
    for update in updates:
        index: int | None = None
        if update.stop_sequence is not None:
            index = by_sequence.get(update.stop_sequence)
            if index is not None and update.stop_id is not None and stop_ids[index] != update.stop_id:
                index = None
        elif update.stop_id is not None:
            index = next((i for i in range(cursor, len(stop_ids)) if stop_ids[i] == update.stop_id), None)
        if index is None:
            unmatched += 1
            continue
        matched[index] = update
        cursor = index + 1
    return matched, unmatched


def _apply(run: ScheduledRun, update: TripUpdate) -> tuple[tuple[StopStatus, ...], int]:
    matched, unmatched = _match(run, update.stop_time_updates)
    # The delay being carried downstream: (seconds, uncertainty), or None when nothing is known.
    carried: tuple[int, int | None] | None = (update.delay_s, None) if update.delay_s is not None else None
    stops: list[StopStatus] = []
    for index, st in enumerate(run.trip.stop_times):
        scheduled_arrival, scheduled_departure = run.arrival(st), run.departure(st)
        stop_update = matched.get(index)
        relationship = stop_update.relationship if stop_update is not None else None
        if relationship is StopRelationship.NO_DATA:
            carried = None
            stops.append(
                StopStatus(st.stop_sequence, st.stop_id, StopState.NO_DATA, scheduled_arrival, scheduled_departure)
            )
            continue
        if relationship is StopRelationship.SKIPPED:
            stops.append(
                StopStatus(st.stop_sequence, st.stop_id, StopState.SKIPPED, scheduled_arrival, scheduled_departure)
            )
            continue
        if (
            stop_update is None
            or relationship is StopRelationship.UNSCHEDULED
            or not (stop_update.arrival or stop_update.departure)
        ):
            if carried is None:
                state = StopState.UNKNOWN
                arrival = departure = None
            else:
                state = StopState.PROPAGATED
                arrival = _shifted(scheduled_arrival, carried)
                departure = _shifted(scheduled_departure, carried)
            stops.append(
                StopStatus(
                    st.stop_sequence, st.stop_id, state, scheduled_arrival, scheduled_departure, arrival, departure
                )
            )
            continue
        arrival = _predict(scheduled_arrival, stop_update.arrival) if stop_update.arrival else None
        if arrival is None and carried is not None:
            arrival = _shifted(scheduled_arrival, carried)
        if arrival is not None and arrival.delay_s is not None:
            carried = (arrival.delay_s, arrival.uncertainty_s)
        departure = _predict(scheduled_departure, stop_update.departure) if stop_update.departure else None
        if departure is None and carried is not None:
            departure = _shifted(scheduled_departure, carried)
        if departure is not None and departure.delay_s is not None:
            carried = (departure.delay_s, departure.uncertainty_s)
        stops.append(
            StopStatus(
                st.stop_sequence,
                st.stop_id,
                StopState.UPDATED,
                scheduled_arrival,
                scheduled_departure,
                arrival,
                departure,
            )
        )
    return tuple(stops), unmatched


def _predict(scheduled: datetime, event: StopTimeEvent) -> Prediction | None:
    if event.time is not None:
        delay = round((event.time - scheduled).total_seconds())
        return Prediction(event.time, delay, event.uncertainty_s)
    if event.delay_s is not None:
        return Prediction(scheduled + timedelta(seconds=event.delay_s), event.delay_s, event.uncertainty_s)
    return None


def _shifted(scheduled: datetime, carried: tuple[int, int | None]) -> Prediction:
    delay, uncertainty = carried
    return Prediction(scheduled + timedelta(seconds=delay), delay, uncertainty)


def _unscheduled_stops(updates: Sequence[StopTimeUpdate]) -> tuple[StopStatus, ...]:
    """Stops of an ADDED/NEW trip: only absolute times exist (a delay only against ``scheduled_time``)."""
    stops: list[StopStatus] = []
    for position, update in enumerate(updates):
        events: list[Prediction | None] = []
        for event in (update.arrival, update.departure):
            if event is None or event.time is None:
                events.append(None)
                continue
            delay = (
                round((event.time - event.scheduled_time).total_seconds()) if event.scheduled_time is not None else None
            )
            events.append(Prediction(event.time, delay, event.uncertainty_s))
        state = {
            StopRelationship.SKIPPED: StopState.SKIPPED,
            StopRelationship.NO_DATA: StopState.NO_DATA,
        }.get(update.relationship, StopState.UPDATED if any(events) else StopState.UNKNOWN)
        stops.append(
            StopStatus(
                update.stop_sequence if update.stop_sequence is not None else position + 1,
                update.stop_id or "",
                state,
                None,
                None,
                events[0],
                events[1],
            )
        )
    return tuple(stops)
