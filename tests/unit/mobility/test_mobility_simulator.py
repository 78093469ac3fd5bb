"""The mobility simulator: cancellations as GTFS-Realtime JSON, validations and car-park counts the ingest accepts."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.json_format import ParseDict
from google.transit import gtfs_realtime_pb2 as rt

from madina.simulation import HttpPost, SimulationContext
from services.mobility.api.http import ParkingOccupanciesIn, TicketValidationsIn
from services.mobility.api.publisher import check_parking, check_validation, parse_feed
from services.mobility.convert import feed_from_pb
from services.mobility.domain.gtfs import Schedule
from services.mobility.domain.parking import ParkingObservation, load_car_parks
from services.mobility.domain.realtime import TripRelationship
from services.mobility.domain.tickets import Validation
from services.mobility.simulator import MobilityGenerator

# A weekday at 12:30 local (UTC+1): buses on every line, the clone's minute, the first car park full.
NOON = datetime(2026, 11, 26, 11, 30, tzinfo=UTC)


def _round(schedule: Schedule, seed: int = 1, at: datetime = NOON) -> list[HttpPost]:
    generator = MobilityGenerator(SimulationContext(city="berkane", rng=random.Random(seed), speedup=1,
                                                    started_at=at, options={"mobility_http_port": 1}), schedule)
    return [d for d in generator.next_deliveries(at, 10_000) if isinstance(d, HttpPost)]


def _posted(posts: list[HttpPost], path: str) -> list[dict[str, Any]]:
    return [p.body for p in posts if p.path == path]


def test_cancelled_runs_send_a_canceled_trip_update_and_no_position(schedule: Schedule) -> None:
    # About one run in twenty is cancelled: the first round of the day with one running.
    rounds = (_round(schedule, at=NOON + timedelta(minutes=10 * step)) for step in range(72))
    posts = next(posts for posts in rounds if _posted(posts, "/v1/gtfs-rt"))
    bodies = _posted(posts, "/v1/gtfs-rt")
    assert len(bodies) == 1
    feed = parse_feed(ParseDict(bodies[0], rt.FeedMessage()).SerializeToString(), 1000)
    updates, _, _ = feed_from_pb(feed)
    assert updates and {u.relationship for u in updates} == {TripRelationship.CANCELED}
    reporting = {body["trip_id"] for body in _posted(posts, "/v1/vehicle-positions")}
    assert reporting and not reporting & {u.trip_id for u in updates}


def test_validations_and_counts_pass_the_ingest_checks_and_the_clone_validates_on_two_buses(
        schedule: Schedule) -> None:
    def validations_of(posts: list[HttpPost]) -> list[Any]:
        return [v for body in _posted(posts, "/v1/ticket-validations")
                for v in TicketValidationsIn.model_validate(body).ticket_validations]

    # The clone validates at half past, when two buses are far enough apart: the first such hour.
    rounds = (_round(schedule, at=NOON + timedelta(hours=hours)) for hours in range(24))
    posts = next(posts for posts in rounds
                 if any(v.validation_id.startswith("clone-") for v in validations_of(posts)))
    validations = validations_of(posts)
    for v in validations:
        check_validation(schedule, Validation(v.validation_id, v.card_hash, v.vehicle_id, v.route_id, v.lat, v.lon,
                                              v.timestamp.astimezone(UTC), v.stop_id))
    clones = [v for v in validations if v.validation_id.startswith("clone-")]
    assert len(clones) == 2 and clones[0].card_hash == clones[1].card_hash
    assert clones[0].vehicle_id != clones[1].vehicle_id
    counts = [c for body in _posted(posts, "/v1/parking-occupancy")
              for c in ParkingOccupanciesIn.model_validate(body).parking_occupancies]
    parks = load_car_parks()
    assert [c.car_park_id for c in counts] == ["BK-P1", "BK-P2", "BK-P3"]
    for c in counts:
        check_parking(parks, ParkingObservation(c.car_park_id, c.timestamp.astimezone(UTC), c.occupied_spaces,
                                                c.capacity_spaces))
    midday = [c for body in _posted(_round(schedule), "/v1/parking-occupancy")
              for c in ParkingOccupanciesIn.model_validate(body).parking_occupancies]
    assert midday[0].occupied_spaces == midday[0].capacity_spaces  # the first car park is full at midday


def test_same_seed_same_round(schedule: Schedule) -> None:
    assert _round(schedule, 3) == _round(schedule, 3)
    assert _round(schedule, 3, NOON + timedelta(hours=10))  # at night line 1 still runs


def test_the_simulators_cancellation_raises_the_trip_canceled_alert_in_the_processor_step(schedule: Schedule) -> None:
    from madina.streams.entities import EntityRecord
    from services.mobility.api.publisher import feed_batches
    from services.mobility.domain.avl import PathIndex
    from services.mobility.domain.evaluator import TRIP_CANCELED_RULE, MobilityConfig
    from services.mobility.processor.route_stream import StoredRoute, route_step
    from services.mobility.topics import TRIP_UPDATES

    rounds = ((step, _round(schedule, at=NOON + timedelta(minutes=10 * step))) for step in range(72))
    step_index, posts = next((i, posts) for i, posts in rounds if _posted(posts, "/v1/gtfs-rt"))
    feed = ParseDict(_posted(posts, "/v1/gtfs-rt")[0], rt.FeedMessage())
    batches = feed_batches(feed, schedule)
    assert not batches.dead
    step = route_step(schedule, PathIndex(schedule), MobilityConfig())
    at = NOON + timedelta(minutes=10 * step_index)
    raised = []
    for route_id, batch in batches.trip_updates.items():
        result = step(StoredRoute.new(route_id), EntityRecord(route_id, TRIP_UPDATES, batch, at))
        raised += [(a.rule_id, a.message) for a in result.alerts]
    assert raised and {rule for rule, _ in raised} == {TRIP_CANCELED_RULE}
    assert all(message.endswith(": cancelled") for _, message in raised)


def test_a_simulated_weekday_morning_raises_peak_delays_a_silent_bus_and_bunching_in_the_processor_step(
        schedule: Schedule) -> None:
    # The simulator's fixes through the ingest's keying and the processor's step, a round a minute
    # with the route clock ticking, 06:50-08:50 local (UTC+1): what the living city should show.
    from madina.streams.entities import EntityRecord
    from services.mobility.api.publisher import route_batches
    from services.mobility.domain.avl import PathIndex
    from services.mobility.domain.evaluator import BUNCHING_RULE, TRIP_DELAY_RULE, MobilityConfig
    from services.mobility.domain.realtime import VehiclePosition
    from services.mobility.processor.route_stream import StoredRoute, route_step, tick_message
    from services.mobility.topics import ROUTE_TICKS, VEHICLE_POSITIONS

    step = route_step(schedule, PathIndex(schedule), MobilityConfig())
    states: dict[str, StoredRoute] = {}
    raised: dict[str, set[str]] = {}
    start = datetime(2026, 11, 26, 5, 50, tzinfo=UTC)
    generator = MobilityGenerator(SimulationContext(city="berkane", rng=random.Random(1), speedup=1,
                                                    started_at=start, options={"mobility_http_port": 1}), schedule)
    for minute in range(120):
        at = start + timedelta(minutes=minute)
        posts = [d for d in generator.next_deliveries(at, 100_000) if isinstance(d, HttpPost)]
        fixes = [VehiclePosition(vehicle_id=f["vehicle_id"], lat=f["lat"], lon=f["lon"],
                                 timestamp=datetime.fromisoformat(f["timestamp"]), trip_id=f["trip_id"])
                 for f in _posted(posts, "/v1/vehicle-positions")]
        batches = route_batches(schedule, positions=fixes)
        assert not batches.dead
        records = [(route_id, VEHICLE_POSITIONS, batch) for route_id, batch in batches.positions.items()]
        records += [(route_id, ROUTE_TICKS, tick_message(route_id, at)) for route_id in sorted(states)]
        for route_id, spec, value in records:
            result = step(states.get(route_id) or StoredRoute.new(route_id), EntityRecord(route_id, spec, value, at))
            states[route_id] = result.state
            for alert in result.alerts:
                raised.setdefault(alert.rule_id, set()).add(route_id)
    assert "BK-1" in raised.get(TRIP_DELAY_RULE, set())  # peak congestion on the first line
    assert raised.get("data-gap")  # the bus silent for ten minutes every hour
    assert raised.get(BUNCHING_RULE)  # every other hour a bus runs onto its follower
