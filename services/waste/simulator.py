"""Container fill sensors for `madina simulate` (the waste domain's generator).

Each container fills at a rate set by its district (busy central and industrial districts fill
household containers in about a day, quiet ones in three) and its stream (glass and paper slower),
with noise on every reading (echo sensors wobble a few points).

Containers are emptied by the rounds the platform plans. The generator follows each depot's newest
plan on the compacted ``waste.latest-collection-plans.v1`` (what the operations map shows; the waste
API has no read endpoint for plans, and a crew's app on the bus is what this stands for). When a new
plan for a depot of the simulated city appears, its trucks leave at the plan's time and drive their
routes in simulated time: each leg at a speed drawn between :data:`TRUCK_SPEED_KMH` for the route,
:data:`SERVICE_S` per stop, and each container is emptied (to a few %) when its truck reaches it.
Containers no route visits keep filling, so a full container the plan missed stays full. A newer
plan for a depot replaces what its trucks had not reached of the older one (it was planned from
fresher predictions, which still include those containers). A plan whose round was over before the
simulation started is ignored; one made shortly before it starts when the simulation does.

The crews also ask for their rounds, so planned rounds keep up at any speedup to
:data:`KEEPS_UP_TO_SPEEDUP`: the API's own clock (``MADINA_WASTE_ROUND_INTERVAL_S``, off by
default; `make run` sets 600 s, which at a speedup of 60 is 10 simulated hours, but at 720 is 5
simulated days) runs in real time and knows nothing of the simulation's speed. When a depot's
trucks are back and its newest plan is :data:`PLAN_EVERY_HOURS` simulated hours old, the generator
posts to ``/v1/collection-plans`` (that depot, a horizon of :data:`PLAN_EVERY_HOURS` simulated
hours in real time) with its token, as a crew's dispatcher would; the plan comes back over the
topic like any other. A request gets :data:`PLAN_REPLY_S` of real time to be answered before the
next one (a refused request, such as a load the trucks cannot carry, is logged by the runner as a
failed delivery); with no Kafka to follow it asks for none. At the default speedup the API's clock
plans first and the generator asks for nothing. A plan's round trip takes a second or two of real
time, so above :data:`KEEPS_UP_TO_SPEEDUP` rounds lag many simulated hours: the generator says so
at start.

When no plan has come for :data:`ROUND_HOURS` simulated hours, and a request has had
:data:`PLAN_REPLY_S` to be answered (no broker, the API down, or it refuses the simulator's
token), a round on a fixed cycle empties what is at or above 60 % (the crew's rule of thumb), so
the living city still shows collections; this is logged once each time it starts.

Scripted incidents make the alerts visible within a minute of start-up:

* a fire in one container (temperature climbing several degrees a minute from 20 s),
* one tipped over (45 s on, 90° for good),
* one with its lid left open, one with a dying battery.

After that, now and then (every :data:`INCIDENT_EVERY_S` of real time) another container, drawn
at random, catches fire or is knocked over for :data:`INCIDENT_S`, until the crew deals with it.

Readings go through the waste API's HTTP ingest, the path a real sensor takes. Timestamps are real
time; fill and trucks run ``speedup`` times faster so a day's cycle is visible in minutes. The
readings' randomness comes from the seeded ``rng``; a truck's (speed, time per stop, what it leaves
in a container) from its plan and truck ids, so when plans arrive does not change the readings.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise

from madina.contract import required_time
from madina.simulation import Delivery, HttpPost, SimulationContext
from madina_proto.waste.v1 import plan_pb2
from services.waste.domain.containers import Container, Depot, Fleet, Stream, load_containers, load_fleet
from services.waste.domain.planning import DETOUR_FACTOR, haversine_m
from services.waste.topics import LATEST_COLLECTION_PLANS

log = logging.getLogger(__name__)

BUSY_WORDS = ("centre", "medina", "maarif", "industri", "sebaa", "bernoussi")
HOURS_TO_FULL = {"busy": 24.0, "quiet": 72.0}
STREAM_FACTOR = {Stream.HOUSEHOLD: 1.0, Stream.PLASTIC: 0.8, Stream.PAPER: 0.6, Stream.GLASS: 0.4}
ROUND_HOURS = 12.0  # the fixed cycle, only while no plan comes
# Simulated hours between a depot's plan and its request for the next: a little over what `make
# run`'s 600 s clock gives at the default speedup (10 h), so that clock plans first when it keeps up.
PLAN_EVERY_HOURS = 11.0
PLAN_REPLY_S = 30.0  # real seconds a plan request waits for its plan (the planner's time limit is 7 s)
PLAN_PATH = "/v1/collection-plans"
# A plan's round trip (request, routing, topic) takes a second or two of real time: up to this
# speedup that is at most a simulated hour or two, within a round's slack; above it rounds lag.
KEEPS_UP_TO_SPEEDUP = 3600.0
EMPTY_AT = 0.6
# A collection truck in town: stop-start streets and traffic, well under the 50 km/h limit.
TRUCK_SPEED_KMH = (15.0, 25.0)
# Per stop: pull up, hook and lift the container, tip it, set it back.
SERVICE_S = (60.0, 120.0)
LEFT_AFTER_EMPTYING = (0.0, 0.05)
FOLLOW_RETRY_S = 10.0
FIRE_AFTER_S = 20.0
TIPPED_AFTER_S = 45.0
INCIDENT_EVERY_S = 900.0
INCIDENT_S = 1200.0  # long enough for tipped-over's 15 minutes of tilted readings
FIRE = "fire"
TIPPED = "tipped"


@dataclass
class _Sensor:
    container: Container
    fill: float
    rate_per_hour: float
    battery: float


@dataclass(frozen=True)
class Visit:
    """A truck reaching a container, ``after_s`` simulated seconds after it left the depot."""

    container_id: str
    after_s: float


def drive_route(
    depot: tuple[float, float],
    stops: Sequence[tuple[str, tuple[float, float]]],
    *,
    speed_kmh: float,
    service_s: Sequence[float],
    distance_m: float = 0.0,
) -> list[Visit]:
    """When a truck leaving ``depot`` reaches each of ``stops`` (container id, (lat, lon)) in order,
    driving at ``speed_kmh`` and spending ``service_s[i]`` at stop ``i``.

    Legs are measured as the planner measures them (great circle x its detour factor). Given the
    route's planned ``distance_m`` (depot to depot), they are scaled to it, so the truck drives
    the distance the plan states even if a planner measures streets otherwise.
    """
    points = [depot, *(location for _, location in stops), depot]
    legs = [haversine_m(a, b) * DETOUR_FACTOR for a, b in pairwise(points)]
    scale = distance_m / sum(legs) if distance_m > 0 and sum(legs) > 0 else 1.0
    metres_per_s = speed_kmh / 3.6
    clock = 0.0
    visits = []
    for (container_id, _), leg, service in zip(stops, legs[:-1], service_s, strict=True):  # the last leg: home
        clock += leg * scale / metres_per_s
        visits.append(Visit(container_id, clock))
        clock += service
    return visits


@dataclass(frozen=True)
class _Stop:
    at: datetime  # real time the truck reaches the container
    container_id: str
    fill_left: float


@dataclass
class _Round:
    """A depot's round being driven: its plan, and the stops its trucks have not reached, by time."""

    plan_id: str
    plan_time: datetime
    stops: deque[_Stop] = field(default_factory=deque)


class WasteGenerator:
    domain = "waste"

    def __init__(
        self, context: SimulationContext, containers: Sequence[Container] | None = None, fleet: Fleet | None = None
    ) -> None:
        from madina.settings import load_settings
        from services.waste.settings import WasteSeedFiles

        # The same containers and fleet as the API and the processor: a reading for a container the
        # city does not have would be refused, and one the city has but we do not simulate stays silent.
        settings = load_settings(WasteSeedFiles)
        if containers is None:
            containers = load_containers(settings.waste_containers_file)
        if fleet is None:
            fleet = load_fleet(settings.waste_fleet_file)
        self.context = context
        self.rng: random.Random = context.rng
        chosen = [c for c in containers if c.city == context.city]
        if not chosen:
            raise ValueError(f"no waste containers in city {context.city!r}")
        self.sensors = [self._sensor(c) for c in chosen]
        self._by_id = {sensor.container.id: sensor for sensor in self.sensors}
        self.depots: dict[str, Depot] = {depot.id: depot for depot in fleet.depots if depot.city == context.city}
        # Without a broker to follow, a requested plan would never come back: ask for none.
        self.dispatching = [depot_id for depot_id in self.depots if context.bootstrap and fleet.trucks_at(depot_id)]
        self.asked_at: dict[str, datetime] = {}  # depot id -> when (real time) its unanswered request went
        port = context.options.get("waste_http_port") or settings.waste_http_port
        if context.speedup > KEEPS_UP_TO_SPEEDUP:
            log.warning("speedup too high for planned collection rounds to keep up: a plan takes a second or "
                        "two to come back, many simulated hours at this speed; containers will overflow between rounds",
                        extra={"speedup": context.speedup, "keeps_up_to_speedup": KEEPS_UP_TO_SPEEDUP})
        self.ingest_url = f"http://127.0.0.1:{port}"
        self._cursor = 0
        self._last_now: datetime | None = None
        self.rounds: dict[str, _Round] = {}  # depot id -> the round its trucks drive
        self._last_round_at = context.started_at  # the newest plan's start, or the last fixed round
        self.on_fixed_cycle = False
        self.burning, self.tipped, self.lid_left_open, self.dying = (s.container.id for s in self.sensors[:4])
        # container id -> (FIRE or TIPPED, elapsed seconds when it began): the incidents drawn after start-up
        self.incidents: dict[str, tuple[str, float]] = {}
        self._incidents_drawn = 0

    def _sensor(self, container: Container) -> _Sensor:
        busy = any(word in container.district for word in BUSY_WORDS)
        hours = HOURS_TO_FULL["busy" if busy else "quiet"] / STREAM_FACTOR[container.stream]
        return _Sensor(container, self.rng.uniform(0.05, 0.7), self.rng.gauss(1.0, 0.15) / hours,
                       self.rng.uniform(60, 100))

    async def follow(self) -> None:
        """Follow the depots' newest plans until cancelled, reconnecting after a failure.

        A failure is logged once until the topic has been read again: a broker that stays away
        would otherwise fill the log every :data:`FOLLOW_RETRY_S`.
        """
        from madina.bus import reader

        if not self.context.bootstrap:
            log.warning("no Kafka to follow collection plans from: containers are emptied on a fixed cycle")
            return

        def on_plan(_depot_id: str, plan: plan_pb2.CollectionPlanned | None) -> None:
            if plan is not None:
                self.plan_received(plan)

        said = False
        while True:
            read = asyncio.Event()
            try:
                await reader.read_topic(self.context.bootstrap, LATEST_COLLECTION_PLANS, on_plan, caught_up=read)
            except Exception as error:  # the broker away: the fixed cycle covers, and we try again
                if read.is_set() or not said:
                    log.warning("cannot follow collection plans; retrying", extra={"error": str(error)})
                said = True
                await asyncio.sleep(FOLLOW_RETRY_S)

    def plan_received(self, plan: plan_pb2.CollectionPlanned) -> None:
        """Send the depot's trucks on ``plan``'s routes, unless the depot is another city's or the plan
        is not newer than the one they drive, or its round was over before the simulation began."""
        depot = self.depots.get(plan.depot_id)
        if depot is None:
            return
        plan_time = required_time(plan, "plan_time")
        driving = self.rounds.get(depot.id)
        if driving is not None and (plan.plan_id == driving.plan_id or plan_time <= driving.plan_time):
            return
        started = self.context.started_at
        if plan_time + plan.horizon.ToTimedelta() <= started:
            return
        departs = max(plan_time, started)
        stops = []
        for route in plan.routes:
            # Its own random stream: when a plan arrives must not shift the readings' stream.
            truck_rng = random.Random(f"{plan.plan_id}/{route.truck_id}")
            containers = [self._by_id[cid].container for cid in route.container_ids if cid in self._by_id]
            visits = drive_route(
                (depot.lat, depot.lon), [(c.id, (c.lat, c.lon)) for c in containers],
                speed_kmh=truck_rng.uniform(*TRUCK_SPEED_KMH),
                service_s=[truck_rng.uniform(*SERVICE_S) for _ in containers],
                distance_m=route.distance_m,
            )
            stops += [_Stop(departs + timedelta(seconds=visit.after_s / self.context.speedup), visit.container_id,
                            truck_rng.uniform(*LEFT_AFTER_EMPTYING)) for visit in visits]
        stops.sort(key=lambda stop: stop.at)
        self.rounds[depot.id] = _Round(plan.plan_id, plan_time, deque(stops))
        self.asked_at.pop(depot.id, None)  # answered (or planned on the API's clock: as good)
        self._last_round_at = max(self._last_round_at, departs)
        if self.on_fixed_cycle:
            log.info("collection plans again: following them", extra={"plan_id": plan.plan_id})
            self.on_fixed_cycle = False

    def next_deliveries(self, now: datetime, budget: int) -> list[Delivery]:
        self._advance(now)
        elapsed = (now - self.context.started_at).total_seconds()
        self._draw_incidents(elapsed)
        readings = [self._reading(self._next_sensor(), now, elapsed) for _ in range(min(budget, len(self.sensors)))]
        posts = [HttpPost(path="/v1/readings", body={"readings": readings}, count=len(readings))] if readings else []
        return [*posts, *self._round_requests(now)]

    def _round_requests(self, now: datetime) -> list[HttpPost]:
        """A request for the next round of each depot whose trucks are back, whose newest plan (or
        the start) is :data:`PLAN_EVERY_HOURS` simulated hours old, and whose last request has had
        :data:`PLAN_REPLY_S` to be answered."""
        requests = []
        for depot_id in self.dispatching:
            driving = self.rounds.get(depot_id)
            if driving is not None and driving.stops:
                continue
            since = max(driving.plan_time, self.context.started_at) if driving is not None else self.context.started_at
            asked = self.asked_at.get(depot_id)
            if self._simulated_hours(now - since) < PLAN_EVERY_HOURS or (
                    asked is not None and (now - asked).total_seconds() < PLAN_REPLY_S):
                continue
            self.asked_at[depot_id] = now
            requests.append(HttpPost(path=PLAN_PATH, count=0, body={
                "depot_id": depot_id, "horizon_h": PLAN_EVERY_HOURS / self.context.speedup}))
        return requests

    def _simulated_hours(self, real: timedelta) -> float:
        return real.total_seconds() / 3600 * self.context.speedup

    def _advance(self, now: datetime) -> None:
        if self._last_now is not None:
            hours = self._simulated_hours(now - self._last_now)
            for sensor in self.sensors:
                sensor.fill = min(1.0, sensor.fill + sensor.rate_per_hour * hours)
        self._last_now = now
        for driving in self.rounds.values():
            while driving.stops and driving.stops[0].at <= now:
                stop = driving.stops.popleft()
                sensor = self._by_id[stop.container_id]
                # Emptied at stop.at, and filling again since.
                sensor.fill = min(1.0, stop.fill_left + sensor.rate_per_hour * self._simulated_hours(now - stop.at))
        if now >= self._fixed_round_due():
            self._fixed_round(now)

    def _fixed_round_due(self) -> datetime:
        """:data:`ROUND_HOURS` (simulated) after the last round; at a speedup where a request made at
        :data:`PLAN_EVERY_HOURS` would have less than :data:`PLAN_REPLY_S` to be answered, later."""
        speedup = self.context.speedup
        wait_s = max(ROUND_HOURS * 3600 / speedup, PLAN_EVERY_HOURS * 3600 / speedup + PLAN_REPLY_S)
        return self._last_round_at + timedelta(seconds=wait_s)

    def _fixed_round(self, now: datetime) -> None:
        if not self.on_fixed_cycle:
            log.warning("no collection plan for a round's time: emptying on the fixed cycle until one comes",
                        extra={"city": self.context.city, "round_hours": ROUND_HOURS, "empty_at": EMPTY_AT})
            self.on_fixed_cycle = True
        self._last_round_at = now
        for sensor in self.sensors:
            if sensor.fill >= EMPTY_AT:
                sensor.fill = self.rng.uniform(0.0, 0.05)

    def _draw_incidents(self, elapsed: float) -> None:
        for container_id, (_, began) in list(self.incidents.items()):
            if elapsed - began >= INCIDENT_S:
                del self.incidents[container_id]
        while (self._incidents_drawn + 1) * INCIDENT_EVERY_S <= elapsed:
            self._incidents_drawn += 1
            candidates = [s.container.id for s in self.sensors[4:] if s.container.id not in self.incidents]
            if candidates:
                kind = self.rng.choice((FIRE, TIPPED))
                self.incidents[self.rng.choice(candidates)] = (kind, self._incidents_drawn * INCIDENT_EVERY_S)

    def _next_sensor(self) -> _Sensor:
        sensor = self.sensors[self._cursor % len(self.sensors)]
        self._cursor += 1
        return sensor

    def _reading(self, sensor: _Sensor, now: datetime, elapsed: float) -> dict[str, object]:
        cid = sensor.container.id
        temperature = 22.0 + self.rng.gauss(0, 1.0)
        incident, began = self.incidents.get(cid, ("", 0.0))
        if cid == self.burning and elapsed > FIRE_AFTER_S:
            began, incident = FIRE_AFTER_S, FIRE
        if incident == FIRE:
            temperature = min(140.0, temperature + 0.5 * (elapsed - began))  # half a degree a second
        battery = 8.0 if cid == self.dying else sensor.battery
        tipped = incident == TIPPED or (cid == self.tipped and elapsed > TIPPED_AFTER_S)
        tilt = 90.0 if tipped else abs(self.rng.gauss(0, 2))
        return {
            "container_id": cid,
            "observe_time": now.isoformat().replace("+00:00", "Z"),
            "fill_ratio": round(min(1.0, max(0.0, sensor.fill + self.rng.gauss(0, 0.02))), 3),
            "temperature_c": round(temperature, 1),
            "tilt_deg": round(tilt, 1),
            "lid_open": cid == self.lid_left_open,
            "battery_percent": round(battery, 1),
        }


def create(context: SimulationContext) -> WasteGenerator:
    return WasteGenerator(context)
