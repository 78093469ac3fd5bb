"""The waste simulator follows the planned rounds: trucks drive their routes in simulated time and
empty exactly their containers, in order, when they reach them; without plans a fixed cycle stands in.

The plan source here is a fake: plans are handed to ``plan_received`` as the topic follower would.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest
from google.protobuf.duration_pb2 import Duration

from madina.bus import reader
from madina.bus.alert_events import timestamp
from madina.simulation import SimulationContext
from madina_proto.waste.v1 import plan_pb2
from services.waste import simulator
from services.waste.domain.containers import Container, Stream, load_containers, load_fleet
from services.waste.domain.planning import DETOUR_FACTOR, haversine_m
from services.waste.simulator import (
    EMPTY_AT,
    KEEPS_UP_TO_SPEEDUP,
    PLAN_EVERY_HOURS,
    PLAN_PATH,
    PLAN_REPLY_S,
    ROUND_HOURS,
    SERVICE_S,
    TRUCK_SPEED_KMH,
    WasteGenerator,
    drive_route,
)
from services.waste.topics import LATEST_COLLECTION_PLANS

START = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
PLANS_FROM = "127.0.0.1:1"  # a broker to follow plans on (no follower runs here: plans are handed over)
SPEEDUP = 60.0
CONTAINERS = load_containers()
FLEET = load_fleet()
DEPOT = next(d for d in FLEET.depots if d.city == "berkane")
BERKANE_HOUSEHOLD = [c for c in CONTAINERS if c.city == "berkane" and c.stream is Stream.HOUSEHOLD]


def _generator() -> WasteGenerator:
    return WasteGenerator(SimulationContext(
        city="berkane", rng=random.Random(5), speedup=SPEEDUP, started_at=START, options={"waste_http_port": 1},
    ), CONTAINERS, FLEET)


def _plan(plan_time: datetime, routes: dict[str, list[Container]], *, depot_id: str = DEPOT.id,
          horizon: timedelta = timedelta(hours=10), plan_id: str = "") -> plan_pb2.CollectionPlanned:
    span = Duration()
    span.FromTimedelta(horizon)
    return plan_pb2.CollectionPlanned(
        plan_id=plan_id or f"{depot_id}/{plan_time.isoformat()}", depot_id=depot_id, plan_time=timestamp(plan_time),
        horizon=span,
        routes=[plan_pb2.CollectionRoute(truck_id=truck, container_ids=[c.id for c in stops])
                for truck, stops in routes.items()],
    )


def _leg_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    return haversine_m(a, b) * DETOUR_FACTOR


def _run(
    generator: WasteGenerator, until_s: float, step_s: float = 0.5, from_s: float = 0.0
) -> dict[str, list[datetime]]:
    """Step the generator's clock from ``from_s`` to ``until_s``; when each container's fill fell (was emptied)."""
    sensors = {s.container.id: s for s in generator.sensors}
    before = {cid: s.fill for cid, s in sensors.items()}
    emptied: dict[str, list[datetime]] = {}
    for step in range(int((until_s - from_s) / step_s) + 1):
        now = START + timedelta(seconds=from_s + step * step_s)
        generator.next_deliveries(now, 1)
        for cid, sensor in sensors.items():
            if sensor.fill < before[cid] - 0.2:
                emptied.setdefault(cid, []).append(now)
            before[cid] = sensor.fill
    return emptied


def test_a_truck_reaches_each_stop_after_driving_its_leg_and_serving_the_stops_before() -> None:
    depot = (34.90, -2.30)
    stops = [("a", (34.91, -2.30)), ("b", (34.91, -2.32)), ("c", (34.92, -2.32))]
    visits = drive_route(depot, stops, speed_kmh=18.0, service_s=[60.0, 90.0, 120.0])
    legs = [_leg_m(p, q) for p, q in pairwise([depot, *(s[1] for s in stops)])]
    assert [v.container_id for v in visits] == ["a", "b", "c"]
    assert [v.after_s for v in visits] == pytest.approx(
        [legs[0] / 5.0, (legs[0] + legs[1]) / 5.0 + 60.0, sum(legs) / 5.0 + 150.0])  # 18 km/h is 5 m/s
    # A plan that states a longer route (a street graph would): every leg stretches alike.
    planned = 2 * (sum(legs) + _leg_m(stops[-1][1], depot))
    stretched = drive_route(depot, stops, speed_kmh=18.0, service_s=[60.0, 90.0, 120.0], distance_m=planned)
    assert [v.after_s for v in stretched] == pytest.approx(
        [2 * legs[0] / 5.0, 2 * (legs[0] + legs[1]) / 5.0 + 60.0, 2 * sum(legs) / 5.0 + 150.0])


def test_a_planned_round_empties_exactly_its_containers_in_route_order_when_each_truck_reaches_them() -> None:
    generator = _generator()
    first, second, unplanned = BERKANE_HOUSEHOLD[:3], BERKANE_HOUSEHOLD[3:5], BERKANE_HOUSEHOLD[10]
    for sensor in generator.sensors:
        sensor.fill = 0.3
    for container in [*first, *second, unplanned]:
        next(s for s in generator.sensors if s.container.id == container.id).fill = 0.9
    departs = START + timedelta(seconds=30)
    generator.plan_received(_plan(departs, {"brk-zi-h1": first, "brk-zi-h2": second}))
    scheduled = {stop.container_id: stop.at for stop in generator.rounds[DEPOT.id].stops}

    emptied = _run(generator, until_s=300)

    assert emptied.keys() == {c.id for c in [*first, *second]}, "exactly the routes' containers, each once"
    assert all(len(times) == 1 for times in emptied.values())
    for route in (first, second):
        seen = [emptied[c.id][0] for c in route]
        assert seen == sorted(seen), "in the route's order"
        # Each at its scheduled time (to the step), and that time is a truck's: every leg driven at
        # an urban speed, every stop before it served for a minute or two (simulated, speedup x).
        points = [(DEPOT.lat, DEPOT.lon), *((c.lat, c.lon) for c in route)]
        previous, served = departs, 0
        for container, (a, b) in zip(route, pairwise(points), strict=True):
            at = scheduled[container.id]
            assert at <= emptied[container.id][0] < at + timedelta(seconds=0.5)
            gap_s = (at - previous).total_seconds() * SPEEDUP
            leg = _leg_m(a, b)
            assert leg / (TRUCK_SPEED_KMH[1] / 3.6) + served * SERVICE_S[0] <= gap_s + 1e-6
            assert gap_s <= leg / (TRUCK_SPEED_KMH[0] / 3.6) + served * SERVICE_S[1] + 1e-6
            previous, served = at, 1
    end = START + timedelta(seconds=300)
    for sensor in generator.sensors:
        if sensor.container.id in scheduled:  # emptied to a few %, filling again since
            refilled = sensor.rate_per_hour * (end - scheduled[sensor.container.id]).total_seconds() * SPEEDUP / 3600
            assert sensor.fill <= 0.05 + refilled + 1e-9
        elif sensor.container.id == unplanned.id:
            assert sensor.fill >= 0.9, "a full container no route visits stays full"


def test_without_plans_a_fixed_cycle_empties_the_fuller_containers_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    generator = _generator()
    round_s = ROUND_HOURS * 3600 / SPEEDUP
    with caplog.at_level(logging.WARNING, logger="services.waste.simulator"):
        emptied = _run(generator, until_s=2.5 * round_s, step_s=5)
    assert emptied, "the fixed cycle empties containers"
    assert {t for times in emptied.values() for t in times} == {
        START + timedelta(seconds=round_s), START + timedelta(seconds=2 * round_s)}
    assert sum("fixed cycle" in r.getMessage() for r in caplog.records) == 1


def test_while_plans_come_the_fixed_cycle_stays_off_and_unplanned_full_containers_stay_full() -> None:
    generator = _generator()
    for sensor in generator.sensors:
        sensor.fill = max(sensor.fill, EMPTY_AT + 0.05)
    interval_s = 0.8 * ROUND_HOURS * 3600 / SPEEDUP  # a round planned every 80 % of the fixed cycle
    for index in range(4):
        generator.plan_received(_plan(START + timedelta(seconds=index * interval_s), {}))  # nothing due
    emptied = _run(generator, until_s=3.5 * interval_s, step_s=5)
    assert emptied == {}
    assert not generator.on_fixed_cycle


def test_a_newer_plan_replaces_the_rest_of_the_older_one_and_a_repeated_or_older_plan_changes_nothing() -> None:
    generator = _generator()
    old, new = BERKANE_HOUSEHOLD[:4], BERKANE_HOUSEHOLD[20:22]
    for sensor in generator.sensors:
        sensor.fill = 0.9
    generator.plan_received(_plan(START, {"brk-zi-h1": old}))
    first_stop = generator.rounds[DEPOT.id].stops[0]
    reached_s = (first_stop.at - START).total_seconds() + 0.25  # the next stop is a minute on (a second here)
    assert _run(generator, until_s=reached_s, step_s=0.25).keys() == {old[0].id}
    newer = _plan(START + timedelta(seconds=reached_s), {"brk-zi-h1": new})
    generator.plan_received(newer)
    generator.plan_received(_plan(START, {"brk-zi-h1": old}))  # the older one again (a re-read)
    generator.plan_received(_plan(START + timedelta(seconds=2), {"brk-zi-h1": old}, plan_id="older"))
    assert generator.rounds[DEPOT.id].plan_id == newer.plan_id
    assert [stop.container_id for stop in generator.rounds[DEPOT.id].stops] == [c.id for c in new]
    assert _run(generator, until_s=600, from_s=reached_s + 0.25).keys() == {c.id for c in new}


def test_plans_of_another_citys_depot_and_rounds_over_before_the_start_are_ignored() -> None:
    generator = _generator()
    casablanca = next(d for d in FLEET.depots if d.city == "casablanca")
    generator.plan_received(_plan(START, {"cas-ain-sebaa-h1": BERKANE_HOUSEHOLD[:2]}, depot_id=casablanca.id))
    generator.plan_received(_plan(START - timedelta(hours=11), {"brk-zi-h1": BERKANE_HOUSEHOLD[:2]}))
    assert generator.rounds == {}
    # Made before the start but not over: the trucks leave when the simulation starts.
    generator.plan_received(_plan(START - timedelta(hours=1), {"brk-zi-h1": BERKANE_HOUSEHOLD[:1]}))
    stop = generator.rounds[DEPOT.id].stops[0]
    leg = _leg_m((DEPOT.lat, DEPOT.lon), (BERKANE_HOUSEHOLD[0].lat, BERKANE_HOUSEHOLD[0].lon))
    assert START < stop.at <= START + timedelta(seconds=leg / (TRUCK_SPEED_KMH[0] / 3.6) / SPEEDUP)


async def test_the_follower_hands_each_plan_over_and_retries_a_lost_broker_saying_so_once_per_outage(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    generator = WasteGenerator(SimulationContext(
        city="berkane", rng=random.Random(5), speedup=SPEEDUP, started_at=START, options={"waste_http_port": 1},
        bootstrap="127.0.0.1:1",
    ), CONTAINERS, FLEET)
    plan = _plan(START, {"brk-zi-h1": BERKANE_HOUSEHOLD[:2]})
    attempts = 0
    finished = asyncio.Event()

    async def read_topic(bootstrap: str, spec: Any, on_record: Any, *, caught_up: asyncio.Event) -> None:
        nonlocal attempts
        attempts += 1
        assert (bootstrap, spec) == ("127.0.0.1:1", LATEST_COLLECTION_PLANS)
        if attempts in (1, 2, 4):
            raise ConnectionError("broker away")
        if attempts == 3:
            on_record(DEPOT.id, None)  # a tombstone
            on_record(DEPOT.id, plan)
            caught_up.set()
            raise ConnectionError("lost again")
        finished.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(reader, "read_topic", read_topic)
    monkeypatch.setattr(simulator, "FOLLOW_RETRY_S", 0.0)
    with caplog.at_level(logging.WARNING, logger="services.waste.simulator"):
        follower = asyncio.create_task(generator.follow())
        await asyncio.wait_for(finished.wait(), 5)
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
    assert generator.rounds[DEPOT.id].plan_id == plan.plan_id
    warned = [r.__dict__.get("error") for r in caplog.records if "cannot follow" in r.getMessage()]
    assert warned == ["broker away", "lost again"], "the first failure, then the first after reading again"


def _answering_planner(
    generator: WasteGenerator, until_s: float, step_s: float, reply_s: float
) -> list[tuple[datetime, dict[str, Any]]]:
    """Step the generator; answer each round request ``reply_s`` (real) later with a plan routing the
    depot's household containers at or above EMPTY_AT, as the API would. The requests, with when."""
    requests: list[tuple[datetime, dict[str, Any]]] = []
    pending: list[tuple[datetime, dict[str, Any]]] = []
    for step in range(int(until_s / step_s) + 1):
        now = START + timedelta(seconds=step * step_s)
        for asked, body in [p for p in pending if p[0] + timedelta(seconds=reply_s) <= now]:
            pending.remove((asked, body))
            due = [s.container for s in generator.sensors
                   if s.container.stream is Stream.HOUSEHOLD and s.fill >= EMPTY_AT]
            horizon = timedelta(hours=body["horizon_h"])
            generator.plan_received(_plan(now, {"brk-zi-h1": due}, depot_id=body["depot_id"], horizon=horizon))
        for delivery in generator.next_deliveries(now, 1):
            if delivery.path == PLAN_PATH:
                requests.append((now, delivery.body))
                pending.append((now, delivery.body))
    return requests


@pytest.mark.parametrize("speedup", [60.0, 720.0, KEEPS_UP_TO_SPEEDUP])
def test_at_any_speedup_the_crews_ask_for_each_round_when_back_and_the_fixed_cycle_never_comes(
    speedup: float, caplog: pytest.LogCaptureFixture
) -> None:
    generator = WasteGenerator(SimulationContext(
        city="berkane", rng=random.Random(5), speedup=speedup, started_at=START, options={"waste_http_port": 1},
        bootstrap=PLANS_FROM,
    ), CONTAINERS, FLEET)
    hour_s = 3600 / speedup  # real seconds of a simulated hour
    with caplog.at_level(logging.WARNING, logger="services.waste.simulator"):
        requests = _answering_planner(generator, until_s=60 * hour_s, step_s=hour_s / 20, reply_s=1.0)
    assert not caplog.records and not generator.on_fixed_cycle, [r.getMessage() for r in caplog.records]
    assert [body for _, body in requests] == [{"depot_id": DEPOT.id, "horizon_h": PLAN_EVERY_HOURS / speedup}] * 5
    # Each when the previous round's plan is PLAN_EVERY_HOURS old (the first: the start), to the step;
    # the plan comes back a second after the request, and that round takes well under an hour.
    answered = [START, *(at + timedelta(seconds=1) for at, _ in requests[:-1])]
    for (asked, _), previous in zip(requests, answered, strict=True):
        lag_h = (asked - previous).total_seconds() / hour_s - PLAN_EVERY_HOURS
        assert 0 <= lag_h <= 1.5


def test_a_round_request_is_repeated_only_after_its_reply_time_and_the_fixed_cycle_waits_for_it() -> None:
    speedup = KEEPS_UP_TO_SPEEDUP  # eleven simulated hours in 11 s; a request's reply time is 30 simulated hours
    generator = WasteGenerator(SimulationContext(
        city="berkane", rng=random.Random(5), speedup=speedup, started_at=START, options={"waste_http_port": 1},
        bootstrap=PLANS_FROM,
    ), CONTAINERS, FLEET)
    asked, fixed_from = [], None
    for step in range(321):  # 80 s, nobody answering
        now = START + timedelta(seconds=step * 0.25)
        if any(delivery.path == PLAN_PATH for delivery in generator.next_deliveries(now, 1)):
            asked.append(now)
        if generator.on_fixed_cycle and fixed_from is None:
            fixed_from = now
    first = START + timedelta(seconds=PLAN_EVERY_HOURS * 3600 / speedup)
    assert asked == [first, first + timedelta(seconds=PLAN_REPLY_S), first + timedelta(seconds=2 * PLAN_REPLY_S)]
    assert fixed_from == first + timedelta(seconds=PLAN_REPLY_S), "the fixed cycle once the first request had its time"


def test_above_the_speedup_rounds_keep_up_to_the_simulator_says_so_at_start(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="services.waste.simulator"):
        WasteGenerator(SimulationContext(
            city="berkane", rng=random.Random(5), speedup=KEEPS_UP_TO_SPEEDUP * 2, started_at=START,
            options={"waste_http_port": 1}), CONTAINERS, FLEET)
    assert [r.__dict__.get("speedup") for r in caplog.records] == [KEEPS_UP_TO_SPEEDUP * 2]


def test_without_kafka_to_follow_plans_the_simulator_asks_for_none() -> None:
    generator = _generator()  # no bootstrap
    for step in range(100):
        now = START + timedelta(seconds=step * 20)  # 33 simulated hours at 60x
        assert all(delivery.path != PLAN_PATH for delivery in generator.next_deliveries(now, 1))
    assert generator.on_fixed_cycle


def test_the_local_simulator_may_ask_for_rounds() -> None:
    from madina.domains import DEVICE, local_principals

    assert "waste:plan" in local_principals()[DEVICE]
