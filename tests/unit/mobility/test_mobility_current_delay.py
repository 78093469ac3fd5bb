"""``current_delay`` (the processor's per-update path) answers exactly what ``resolve_trip(...).delay_at`` does.

The oracle is the full per-stop resolution; thousands of generated updates (every stop
relationship, delays and absolute times with sub-second parts, trip-level delays, stops by
sequence or by id, unmatched ones, every trip relationship) are compared with it at instants
before, during and after the run.
"""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime, timedelta

from services.mobility.domain.delays import CurrentDelay, _first_not_left, current_delay, resolve_trip
from services.mobility.domain.realtime import (
    StopRelationship,
    StopTimeEvent,
    StopTimeUpdate,
    TripRelationship,
    TripUpdate,
)
from services.mobility.domain.servicedays import TripKey, run_of

START_DATE = "20261126"


def _event(rng: random.Random, scheduled: datetime) -> StopTimeEvent | None:
    kind = rng.choice(["none", "delay", "time", "both", "uncertainty"])
    if kind == "none":
        return None
    delay = rng.choice([-120, 0, 59, 300, 700, rng.randint(-900, 1800)])
    time = scheduled + timedelta(seconds=rng.randint(-600, 1500), microseconds=rng.choice([0, 400_000, 500_000]))
    return StopTimeEvent(
        delay_s=delay if kind in ("delay", "both") else None,
        time=time if kind in ("time", "both") else None,
        uncertainty_s=rng.choice([None, 30]),
    )


def _update(rng: random.Random, schedule, trip_id: str) -> tuple[TripUpdate, datetime]:
    run = run_of(schedule, TripKey(trip_id, START_DATE))
    assert run is not None
    stop_times = run.trip.stop_times
    updates = []
    for _ in range(rng.choice([0, 1, 1, 2, 3, 5])):
        st = rng.choice(stop_times)
        by = rng.choice(["sequence", "sequence", "id", "both", "wrong-id", "unknown-sequence"])
        updates.append(StopTimeUpdate(
            stop_sequence=st.stop_sequence if by in ("sequence", "both", "wrong-id") else (
                999 if by == "unknown-sequence" else None),
            stop_id=st.stop_id if by in ("id", "both") else ("nowhere" if by == "wrong-id" else None),
            arrival=_event(rng, run.arrival(st)),
            departure=_event(rng, run.departure(st)),
            relationship=rng.choice([StopRelationship.SCHEDULED] * 5 + list(StopRelationship)),
        ))
    if rng.random() < 0.7:  # feeds mostly list stops in order
        updates.sort(key=lambda u: u.stop_sequence or 0)
    now = run.start + timedelta(seconds=rng.randint(-1800, int((run.end - run.start).total_seconds()) + 1800),
                                microseconds=rng.choice([0, 1, 999_999]))
    update = TripUpdate(
        trip_id=trip_id,
        start_date=rng.choice([START_DATE] * 8 + [None, "20261129"]),  # a Sunday: no run of weekday trips
        relationship=rng.choice([TripRelationship.SCHEDULED] * 12 + list(TripRelationship)),
        timestamp=now - timedelta(seconds=rng.choice([0, 10, 400])),
        delay_s=rng.choice([None, None, 0, 240, -60]),
        stop_time_updates=tuple(updates),
        new_trip_id=trip_id + "-dup",
        new_start_date=START_DATE,
        new_start_time="10:00:00",
    )
    return update, now


def _oracle(schedule, update: TripUpdate, now: datetime) -> CurrentDelay:
    status = resolve_trip(schedule, update, now)
    found = status.delay_at(now)
    return CurrentDelay(status.state, found[0].stop_id, found[1]) if found else CurrentDelay(status.state)


def test_current_delay_equals_resolve_trip_delay_at_on_generated_updates(schedule) -> None:
    rng = random.Random(20261126)
    trip_ids = sorted(t for t in schedule.trips if run_of(schedule, TripKey(t, START_DATE)) is not None)
    answered = 0
    for _ in range(4000):
        update, now = _update(rng, schedule, rng.choice(trip_ids))
        expected = _oracle(schedule, update, now)
        assert current_delay(schedule, update, now) == expected, (update, now)
        answered += expected.delay_s is not None
    assert answered > 1000  # the comparison is not only between two "unknown"s


def test_current_delay_of_no_update_is_unknown(schedule) -> None:
    key = TripKey("3-0815", START_DATE)
    now = datetime(2026, 11, 26, 7, 20, tzinfo=UTC)
    assert current_delay(schedule, None, now, key=key) == _oracle_key(schedule, key, now)


def _oracle_key(schedule, key: TripKey, now: datetime) -> CurrentDelay:
    return CurrentDelay(resolve_trip(schedule, None, now, key=key).state)


def test_first_stop_not_left_found_by_bisection_is_the_one_a_walk_finds(schedule) -> None:
    # current_delay bisects departures that never go back (every loaded feed's); a timetable that
    # does go back is walked stop by stop. Both must name the same stop, including at the bounds.
    rng = random.Random(7)
    for trip in sorted(schedule.trips.values(), key=lambda t: t.trip_id)[:300]:
        timetable = schedule.timetable(trip)
        assert timetable.departures_sorted
        walked = dataclasses.replace(timetable, departures_sorted=False)
        departures = timetable.departures_s
        for _ in range(20):
            start = rng.randrange(len(departures))
            stop = rng.randint(start, len(departures))
            carried = rng.choice([-300, 0, 59, 700, rng.randint(-900, 1800)])
            at_a_stop = rng.choice(departures) + carried
            now_s = rng.choice([at_a_stop, rng.randint(departures[0] - 3600, departures[-1] + 3600)])
            now_us = now_s * 1_000_000 + rng.choice([-1, 0, 1, 999_999])
            case = (trip.trip_id, start, stop, carried, now_us)
            assert _first_not_left(timetable, start, stop, carried, now_us) == _first_not_left(
                walked, start, stop, carried, now_us), case
