"""Ticket ridership and fraud signal; car-park occupancy and the car-park-full alert."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from madina.alerts import AlertState
from services.mobility.domain.parking import (
    CarParkState,
    ParkingObservation,
    ParkingPolicy,
    apply_parking,
    check_parking_silence,
)
from services.mobility.domain.tickets import CardState, FraudPolicy, Validation, check_card, ridership

T0 = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)


def _v(vid, vehicle, lat, lon, minutes, card="c1", route="BK-1"):
    return Validation(vid, card, vehicle, route, lat, lon, T0 + timedelta(minutes=minutes))


def test_card_on_two_vehicles_too_far_apart_too_quickly_is_a_fraud_signal() -> None:
    state, signal = check_card(CardState(), _v("a", "BK-E01", 34.9335, -2.3360, 0))
    assert signal is None
    state, signal = check_card(state, _v("b", "CA-T07", 33.5990, -7.6090, 10))  # Berkane -> Casablanca in 10 min
    assert signal is not None and signal.implied_speed_kmh > 1000


def test_plausible_transfer_is_not_fraud() -> None:
    state, _ = check_card(CardState(), _v("a", "BK-E01", 34.9335, -2.3360, 0))
    _, signal = check_card(state, _v("b", "BK-E05", 34.9215, -2.3200, 12))  # 2 km in 12 min
    assert signal is None
    _, same_bus = check_card(state, _v("c", "BK-E01", 34.9020, -2.3200, 1))
    assert same_bus is None


def test_card_state_round_trips() -> None:
    state, _ = check_card(CardState(), _v("a", "BK-E01", 34.9335, -2.3360, 0))
    assert CardState.from_dict(state.to_dict()) == state
    assert FraudPolicy().max_speed_kmh == 80.0


def test_ridership_counts_per_route_and_local_hour_once_per_validation() -> None:
    tz = ZoneInfo("Africa/Casablanca")
    validations = [
        _v("a", "BK-E01", 0, 0, 5), _v("a", "BK-E01", 0, 0, 5), _v("b", "BK-E01", 0, 0, 59),
        _v("c", "BK-E01", 0, 0, 61), _v("d", "BK-E02", 0, 0, 10, route="BK-2"),
    ]  # fmt: skip
    counts = ridership(validations, tz)
    assert counts == {
        ("BK-1", datetime(2026, 11, 26, 7, tzinfo=UTC)): 2,
        ("BK-1", datetime(2026, 11, 26, 8, tzinfo=UTC)): 1,
        ("BK-2", datetime(2026, 11, 26, 7, tzinfo=UTC)): 1,
    }


def test_car_park_alert_only_after_staying_full_for_the_configured_time() -> None:
    policy = ParkingPolicy(full_for=timedelta(minutes=15), clear_after=timedelta(minutes=5))
    state = CarParkState.new("BK-P1")
    transitions = []
    for minute, occupied in [(0, 200), (10, 200), (16, 200), (20, 150), (30, 150)]:
        state, changes = apply_parking(
            state, ParkingObservation("BK-P1", T0 + timedelta(minutes=minute), occupied, 200), policy
        )
        transitions.append((minute, changes[0].state if changes else None))
    assert transitions == [(0, None), (10, None), (16, AlertState.RAISED), (20, None), (30, AlertState.CLEARED)]
    assert state.free == 50
    assert CarParkState.from_dict(state.to_dict()) == state


def test_fraud_alert_raises_on_the_clone_and_clears_after_an_hour_of_plausible_validations() -> None:
    from services.mobility.domain.tickets import apply_card_validation

    state = CardState.new("c1")
    states = []
    for validation in [_v("a", "BK-E01", 34.9335, -2.3360, 0), _v("b", "CA-T07", 33.5990, -7.6090, 10),
                       _v("b", "CA-T07", 33.5990, -7.6090, 10), _v("c", "CA-T07", 33.5991, -7.6091, 40),
                       _v("d", "CA-T08", 33.5995, -7.6080, 101)]:
        result = apply_card_validation(state, validation)
        state = result.state
        states.append((validation.validation_id, result.duplicate,
                       result.transition.state if result.transition else None))
    assert states == [("a", False, None), ("b", False, AlertState.RAISED), ("b", True, None), ("c", False, None),
                      ("d", False, AlertState.CLEARED)]
    assert CardState.from_dict(state.to_dict()) == state


def test_route_ridership_counts_once_per_id_and_forgets_hours_older_than_kept() -> None:
    from services.mobility.domain.tickets import RouteRidership, count_route_validation, remembered_id

    tz = ZoneInfo("UTC")
    state = RouteRidership("BK-1")
    hours = []
    for validation, stop in [(_v("a", "BK-E01", 0, 0, 5), "S1"), (_v("a", "BK-E01", 0, 0, 6), "S1"),
                             (_v("b", "BK-E01", 0, 0, 65), "S2"), (_v("c", "BK-E01", 0, 0, 5 + 60 * 30), "S1"),
                             (_v("d", "BK-E01", 0, 0, 7), "S2")]:
        hours.append(count_route_validation(state, replace(validation, stop_id=stop), tz, keep=timedelta(hours=26)))
    assert hours == [T0, None, T0 + timedelta(hours=1), T0 + timedelta(hours=30), None]  # "d" is too old now
    assert state.totals == {T0 + timedelta(hours=30): 1}
    assert state.stops == {"S1": {T0 + timedelta(hours=30): 1}}  # S2's hour left with the hour: S2 too
    assert list(state.recent_ids) == [remembered_id("a"), remembered_id("b"), remembered_id("c")]
    assert RouteRidership.from_dict(state.to_dict()) == state


def test_a_route_remembers_a_fixed_size_of_each_validation_id() -> None:
    from services.mobility.domain.tickets import ROUTE_REMEMBERS_IDS, RouteRidership, count_route_validation

    # Ids of up to 200 characters from validators: the route's state must stay small, since one
    # state holds every stop of the route and a state too large to write stops the processor.
    state = RouteRidership("BK-1")
    for n in range(ROUTE_REMEMBERS_IDS + 10):
        validation = replace(_v(f"{n:0>200}", "BK-E01", 0, 0, 5), stop_id="S1")
        assert count_route_validation(state, validation, ZoneInfo("UTC")) == T0
    assert len(state.recent_ids) == ROUTE_REMEMBERS_IDS and {len(i) for i in state.recent_ids} == {16}
    assert count_route_validation(state, replace(_v(f"{ROUTE_REMEMBERS_IDS + 9:0>200}", "BK-E01", 0, 0, 5),
                                                 stop_id="S1"), ZoneInfo("UTC")) is None  # still a repeat


def test_route_ridership_totals_are_the_sum_of_its_stops_every_hour() -> None:
    from services.mobility.domain.tickets import RouteRidership, count_route_validation

    tz = ZoneInfo("Africa/Casablanca")
    state = RouteRidership("BK-1")
    validations = [replace(_v(f"v{n}", "BK-E01", 0, 0, n * 7), stop_id=f"S{n % 3}") for n in range(40)]
    for validation in validations:
        count_route_validation(state, validation, tz)
    assert state.totals == {hour: sum(hours.get(hour, 0) for hours in state.stops.values()) for hour in state.totals}
    assert {("BK-1", hour): count for hour, count in state.totals.items()} == ridership(validations, tz)
    for stop, hours in state.stops.items():
        assert {("BK-1", hour): count for hour, count in hours.items()} == ridership(
            [v for v in validations if v.stop_id == stop], tz)


def test_route_ridership_refuses_another_routes_validation() -> None:
    from services.mobility.domain.tickets import RouteRidership, count_route_validation

    with pytest.raises(ValueError, match="BK-2"):
        count_route_validation(RouteRidership("BK-1"), _v("a", "BK-E02", 0, 0, 1, route="BK-2"), ZoneInfo("UTC"))


def test_car_park_whose_counts_stop_raises_data_gap_once_and_its_next_count_clears_it() -> None:
    policy = ParkingPolicy(silent_after=timedelta(minutes=20))
    state, _ = apply_parking(CarParkState.new("BK-P1"), ParkingObservation("BK-P1", T0, 50, 200), policy)
    checks = []
    for minute in (10, 20, 21, 25):
        state, transition = check_parking_silence(state, T0 + timedelta(minutes=minute), policy, "Place du 20 Août")
        checks.append((minute, transition.state if transition else None))
    assert checks == [(10, None), (20, None), (21, AlertState.RAISED), (25, None)]
    raised_state = state
    assert raised_state.data_gap.episode.active
    state, changes = apply_parking(state, ParkingObservation("BK-P1", T0 + timedelta(minutes=30), 60, 200), policy)
    [cleared] = changes
    assert cleared.state is AlertState.CLEARED and cleared.rule_id == "data-gap"
    assert cleared.alert_id == raised_state.data_gap.episode.alert_id
    assert cleared.message == "Car park BK-P1: counting again after 30 min of silence"
    assert state.occupied == 60 and CarParkState.from_dict(state.to_dict()) == state


def test_car_park_silence_alert_names_the_car_park_and_its_limit() -> None:
    policy = ParkingPolicy(silent_after=timedelta(minutes=20))
    state, _ = apply_parking(CarParkState.new("BK-P1"), ParkingObservation("BK-P1", T0, 50, 200), policy)
    _, raised = check_parking_silence(state, T0 + timedelta(minutes=45), policy, "Place du 20 Août")
    assert raised is not None and raised.domain == "mobility" and raised.rule_id == "data-gap"
    assert raised.message == "Car park Place du 20 Août: no count for 45 min (limit 20 min)"
    assert raised.details.source_kind == "car-park" and raised.details.labels["car_park_id"] == "BK-P1"


def test_a_registered_car_park_never_heard_from_is_silent_after_the_limit_from_the_first_check() -> None:
    policy = ParkingPolicy(silent_after=timedelta(minutes=20))
    state, first = check_parking_silence(CarParkState.new("BK-P2"), T0, policy)
    assert first is None and state.data_gap.watched_since == T0
    state, early = check_parking_silence(state, T0 + timedelta(minutes=20), policy)
    _, raised = check_parking_silence(state, T0 + timedelta(minutes=21), policy)
    assert early is None and raised is not None
    assert raised.message == "Car park BK-P2: no count since monitoring began 21 min ago (limit 20 min)"


def test_a_car_park_state_stored_before_the_silence_watch_still_loads() -> None:
    old = CarParkState.new("BK-P1").to_dict()
    del old["data_gap"]
    assert CarParkState.from_dict(old) == CarParkState.new("BK-P1")
