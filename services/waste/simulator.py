"""Container fill sensors for `madina simulate` (the waste domain's generator).

Each container fills at a rate set by its district (busy central and industrial districts fill
household containers in about a day, quiet ones in three) and its stream (glass and paper slower),
with noise on every reading (echo sensors wobble a few points). A collection round passes every
:data:`ROUND_HOURS` simulated hours and empties what is at or above 60 % (the crew's rule of thumb);
the rest keeps filling. Scripted incidents make the alerts visible within a minute of start-up:

* a fire in one container (temperature climbing several degrees a minute from 20 s),
* one tipped over (45 s on, 90° for good),
* one with its lid left open, one with a dying battery.

After that, now and then (every :data:`INCIDENT_EVERY_S` of real time) another container, drawn
at random, catches fire or is knocked over for :data:`INCIDENT_S`, until the crew deals with it.

Readings go through the waste API's HTTP ingest, the path a real sensor takes. Timestamps are real
time; fill runs ``speedup`` times faster so a day's cycle is visible in minutes. All randomness
comes from the seeded ``rng``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from madina.simulation import Delivery, HttpPost, SimulationContext
from services.waste.domain.containers import Container, Stream, load_containers

BUSY_WORDS = ("centre", "medina", "maarif", "industri", "sebaa", "bernoussi")
HOURS_TO_FULL = {"busy": 24.0, "quiet": 72.0}
STREAM_FACTOR = {Stream.HOUSEHOLD: 1.0, Stream.PLASTIC: 0.8, Stream.PAPER: 0.6, Stream.GLASS: 0.4}
ROUND_HOURS = 12.0
EMPTY_AT = 0.6
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


class WasteGenerator:
    domain = "waste"

    def __init__(self, context: SimulationContext, containers: Sequence[Container] | None = None) -> None:
        from madina.settings import load_settings
        from services.waste.settings import WastePorts

        self.context = context
        self.rng: random.Random = context.rng
        chosen = [c for c in (containers if containers is not None else load_containers()) if c.city == context.city]
        if not chosen:
            raise ValueError(f"no waste containers in city {context.city!r}")
        self.sensors = [self._sensor(c) for c in chosen]
        port = context.options.get("waste_http_port") or load_settings(WastePorts).waste_http_port
        self.ingest_url = f"http://127.0.0.1:{port}"
        self._cursor = 0
        self._last_round = 0.0
        self._simulated_hours = 0.0
        self._last_now: datetime | None = None
        self.burning, self.tipped, self.lid_left_open, self.dying = (s.container.id for s in self.sensors[:4])
        # container id -> (FIRE or TIPPED, elapsed seconds when it began): the incidents drawn after start-up
        self.incidents: dict[str, tuple[str, float]] = {}
        self._incidents_drawn = 0

    def _sensor(self, container: Container) -> _Sensor:
        busy = any(word in container.district for word in BUSY_WORDS)
        hours = HOURS_TO_FULL["busy" if busy else "quiet"] / STREAM_FACTOR[container.stream]
        return _Sensor(container, self.rng.uniform(0.05, 0.7), self.rng.gauss(1.0, 0.15) / hours,
                       self.rng.uniform(60, 100))

    def next_deliveries(self, now: datetime, budget: int) -> list[Delivery]:
        self._advance(now)
        elapsed = (now - self.context.started_at).total_seconds()
        self._draw_incidents(elapsed)
        readings = [self._reading(self._next_sensor(), now, elapsed) for _ in range(min(budget, len(self.sensors)))]
        return [HttpPost(path="/v1/readings", body={"readings": readings}, count=len(readings))] if readings else []

    def _advance(self, now: datetime) -> None:
        if self._last_now is not None:
            hours = (now - self._last_now).total_seconds() / 3600 * self.context.speedup
            self._simulated_hours += hours
            for sensor in self.sensors:
                sensor.fill = min(1.0, sensor.fill + sensor.rate_per_hour * hours)
        self._last_now = now
        if self._simulated_hours - self._last_round >= ROUND_HOURS:
            self._last_round = self._simulated_hours
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
