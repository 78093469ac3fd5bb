"""The energy domain's simulator: a city's street lights through nights and days, and its PV sites.

:class:`LightingWorld` is the simulated hardware, deterministic for a seed: lamps switch on at
dusk and off at dawn, dim to ``LATE_DIMMING_PCT`` from ``LATE_HOUR`` (city-local) until dawn,
count their energy, and now and then a lamp fails (it reports on but draws almost nothing; half
the controllers also report the driver's fault code), a circuit's breaker trips (every lamp of it
dark at once) or a circuit's supply sags under the voltage limit for an hour; PV sites follow a
clear-sky bell scaled by the day's cloud cover. :class:`EnergyGenerator` (``madina simulate``) posts what the world
reports to the energy API's HTTP ingest, as a real gateway does. Integration tests drive the
same world at fixed times and feed the same reports to the pure domain code as the oracle.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from madina.simulation import Delivery, HttpPost, SimulationContext
from services.energy.domain.network import Circuit, Lamp, Network, PvSite, load_network
from services.energy.domain.sun import Phase, SunCalendar
from services.energy.domain.telemetry import GenerationReading, LampTelemetry

LATE_HOUR = 23  # city-local hour from which the lights dim
LATE_DIMMING_PCT = 50.0
IDLE_W = 0.8  # a controller's own draw with the lamp off
LAMP_FAILURE_PER_HOUR = 0.002
DRIVER_FAULT_SHARE = 0.5  # of failed lamps whose controller reports the fault code, not just no draw
DRIVER_FAULT_CODE = "DRIVER_FAILURE"
BREAKER_TRIP_PER_HOUR = 0.01
SUPPLY_SAG_PER_HOUR = 0.005
SUPPLY_SAG = timedelta(hours=1)
SAG_VOLTAGE_V = (186.0, 194.0)  # under the 198 V floor of data/energy.yaml


@dataclass
class LampHardware:
    lamp: Lamp
    energy_wh: float = 0.0
    failed: bool = False
    fault_code: str = ""
    last: datetime | None = None


@dataclass
class LightingWorld:
    """Simulated lamps and PV sites of some circuits; ``rng`` drives failures and clouds."""

    network: Network
    circuits: Sequence[Circuit]
    rng: random.Random
    sun: SunCalendar = field(default_factory=SunCalendar)
    failures: bool = True
    tripped: set[str] = field(default_factory=set)
    sags: dict[str, datetime] = field(default_factory=dict)  # circuit id -> when its supply sag ends
    lamps: dict[str, LampHardware] = field(default_factory=dict)
    # circuit id -> level: a command the world obeys at night from then on.
    overrides: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for circuit in self.circuits:
            for lamp_id in circuit.lamp_ids:
                self.lamps[lamp_id] = LampHardware(self.network.lamps[lamp_id])

    def fail_lamp(self, lamp_id: str) -> None:
        self.lamps[lamp_id].failed = True

    def trip_breaker(self, circuit_id: str) -> None:
        self.tripped.add(circuit_id)

    def scheduled_level(self, lamp: Lamp, moment: datetime) -> float:
        phase = self.sun.phase(lamp.lat, lamp.lon, moment)
        if phase is Phase.DAY:
            return 0.0
        override = self.overrides.get(lamp.circuit)
        if override is not None:
            return override
        local = moment.astimezone(ZoneInfo(self.network.timezones[lamp.city]))
        return LATE_DIMMING_PCT if local.hour >= LATE_HOUR or local.hour < 6 else 100.0

    def circuit_reports(self, circuit: Circuit, moment: datetime) -> list[LampTelemetry]:
        """What every lamp of ``circuit`` reports at ``moment`` (which must move forward)."""
        return [self._report(self.lamps[lamp_id], moment) for lamp_id in circuit.lamp_ids]

    def _report(self, hw: LampHardware, moment: datetime) -> LampTelemetry:
        hours = (moment - hw.last).total_seconds() / 3600 if hw.last else 0.0
        circuit_id = hw.lamp.circuit
        if self.failures and hours and self.rng.random() < LAMP_FAILURE_PER_HOUR * hours:
            hw.failed = True
            hw.fault_code = DRIVER_FAULT_CODE if self.rng.random() < DRIVER_FAULT_SHARE else ""
        if self.failures and hours and self.rng.random() < BREAKER_TRIP_PER_HOUR * hours / len(self.circuits):
            self.tripped.add(circuit_id)
        if self.failures and hours and self.rng.random() < SUPPLY_SAG_PER_HOUR * hours / len(self.circuits):
            self.sags[circuit_id] = moment + SUPPLY_SAG
        level = self.scheduled_level(hw.lamp, moment)
        on = level > 0
        if not on:
            power = IDLE_W
        elif hw.failed or hw.lamp.circuit in self.tripped:
            power = 0.3
        else:
            power = hw.lamp.rated_power_w * level / 100 * (0.97 + 0.06 * self.rng.random())
        hw.energy_wh += power * hours
        hw.last = moment
        sagging = self.sags.get(circuit_id, moment) > moment
        voltage = self.rng.uniform(*SAG_VOLTAGE_V) if sagging else 228 + 6 * self.rng.random()
        return LampTelemetry(
            lamp_id=hw.lamp.id, observe_time=moment, on=on, dimming_pct=level, power_w=round(power, 2),
            voltage_v=round(voltage, 1), energy_wh=round(hw.energy_wh, 3), fault_code=hw.fault_code,
        )

    def generation(self, site: PvSite, moment: datetime, cloud: float) -> GenerationReading:
        """A PV site's report under ``cloud`` cover (0 clear .. 1 overcast)."""
        times = self.sun.times(site.lat, site.lon, moment.date())
        sunrise, sunset = times.at("sunrise").timestamp(), times.at("sunset").timestamp()
        posix = moment.timestamp()
        shape = math.sin(math.pi * (posix - sunrise) / (sunset - sunrise)) if sunrise < posix < sunset else 0.0
        clear_kw = site.inverter_power_kw * 0.85 * max(shape, 0.0) ** 1.3
        power = clear_kw * (1 - 0.75 * cloud) * (0.95 + 0.05 * self.rng.random())
        return GenerationReading(site_id=site.id, observe_time=moment, power_kw=round(power, 3))


def report_json(report: LampTelemetry) -> dict[str, object]:
    """A report as a gateway posts it to ``/v1/streetlight-telemetry``."""
    body: dict[str, object] = {"lamp_id": report.lamp_id, "observe_time": report.observe_time.isoformat(),
                               "on": report.on, "dimming_pct": report.dimming_pct, "power_w": report.power_w}
    if report.voltage_v is not None:
        body["voltage_v"] = report.voltage_v
    if report.energy_wh is not None:
        body["energy_wh"] = report.energy_wh
    if report.fault_code:
        body["fault_code"] = report.fault_code
    return body


class EnergyGenerator:
    """``madina simulate``: the city's circuits and PV sites, posted to the energy API."""

    domain = "energy"

    def __init__(self, context: SimulationContext, network: Network | None = None) -> None:
        from madina.settings import load_settings
        from services.energy.settings import EnergyPorts

        self.context = context
        network = network or load_network(serving=[context.city])
        circuits = [c for c in network.circuits.values() if c.city == context.city]
        if not circuits:
            raise ValueError(f"no street-light circuits in city {context.city!r}")
        self.world = LightingWorld(network, circuits, context.rng)
        self.sites = [s for s in network.pv_sites.values() if s.city == context.city]
        port = context.options.get("energy_http_port") or load_settings(EnergyPorts).energy_http_port
        self.ingest_url = f"http://127.0.0.1:{port}"
        self._cursor = 0
        self._last: datetime | None = None

    def next_deliveries(self, now: datetime, budget: int) -> list[Delivery]:
        moment = self.context.simulated_time(now).astimezone(UTC)
        if self._last is not None and moment <= self._last:
            return []
        self._last = moment
        reports: list[dict[str, object]] = []
        circuits = self.world.circuits
        while len(reports) < budget:
            circuit = circuits[self._cursor % len(circuits)]
            self._cursor += 1
            reports.extend(report_json(r) for r in self.world.circuit_reports(circuit, moment))
            if self._cursor % len(circuits) == 0:
                break
        deliveries: list[Delivery] = [HttpPost("/v1/streetlight-telemetry", {"reports": reports}, len(reports))]
        if self.sites and self._cursor % len(circuits) == 0:
            cloud = 0.8 if moment.toordinal() % 3 == 0 else 0.1  # every third day is cloudy
            pv = [self.world.generation(site, moment, cloud) for site in self.sites]
            deliveries.append(HttpPost("/v1/generation", {"reports": [
                {"site_id": r.site_id, "observe_time": r.observe_time.isoformat(), "power_kw": r.power_kw}
                for r in pv]}, len(pv)))
        return deliveries


def create(context: SimulationContext) -> EnergyGenerator:
    return EnergyGenerator(context)
