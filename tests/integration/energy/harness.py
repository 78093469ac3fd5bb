"""Building blocks for the energy integration tests: the processor kit, a simulated night, the
oracle (the pure circuit step fed the same records) and an in-process API on a given broker."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from madina.auth import write_credentials
from madina.bus.topics import ALERTS, KPIS
from madina.streams.entities import EntityRecord
from madina_proto.energy.v1 import control_pb2, telemetry_pb2
from services.energy.api.http import create_http_app
from services.energy.api.main import build_runtime
from services.energy.api.state import EnergyRuntime
from services.energy.convert import batch_to_pb, generation_to_pb
from services.energy.domain.network import Network, load_network
from services.energy.domain.telemetry import GenerationReading, LampTelemetry
from services.energy.processor.app import circuit_processor, pv_processor
from services.energy.settings import EnergyProcessorSettings, EnergySettings
from services.energy.simulator import LightingWorld, report_json
from services.energy.topics import ALL, GENERATION, LIGHTING_COMMANDS, STREETLIGHT_TELEMETRY
from tests.support.processor_kit import ProcessorKit, Record

# No wall-clock ticks during a test: the simulated night runs on event time only.
TEST_ENV = {"MADINA_ENERGY_TICK_INTERVAL_S": "3600", "MADINA_CITIES": '["casablanca"]'}
KIT = ProcessorKit("energy-processor", "MADINA_ENERGY_PROCESSOR_PORT", ALL, env=TEST_ENV)
PV_KIT = ProcessorKit("energy-pv-processor", "MADINA_ENERGY_PV_PROCESSOR_PORT", ALL, env=TEST_ENV)
PV_SITE = "cas-pv-maarif-school"
OBEYS, TRIPS, DISOBEYS = "cas-cab-01-c1", "cas-cab-01-c2", "cas-cab-02-c1"
FAILING_LAMP_CIRCUIT = OBEYS
STEP = timedelta(minutes=5)
NIGHT_START = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)  # Casablanca is UTC+1: 16:00 local


def network() -> Network:
    return load_network(serving=["casablanca"])


@dataclass
class Night:
    """A scripted night and morning of three circuits: one obeys its commands and loses a lamp,
    one has its breaker trip at 21:00, one ignores the late dimming (its command times out)."""

    world: LightingWorld
    start: datetime = NIGHT_START
    hours: float = 19.0
    steps: list[tuple[datetime, list[LampTelemetry]]] = field(default_factory=list)

    @classmethod
    def scripted(cls, hours: float = 19.0) -> Night:
        net = network()
        world = LightingWorld(net, [net.circuits[c] for c in (OBEYS, TRIPS, DISOBEYS)], random.Random(13),
                              failures=False)
        world.overrides[DISOBEYS] = 100.0
        night = cls(world, hours=hours)
        moment = night.start
        failing_lamp = net.circuits[FAILING_LAMP_CIRCUIT].lamp_ids[3]
        while moment < night.start + timedelta(hours=hours):
            if moment == night.start + timedelta(hours=4):  # 20:00 local
                world.fail_lamp(failing_lamp)
            if moment == night.start + timedelta(hours=5):  # 21:00 local
                world.trip_breaker(TRIPS)
            reports = [r for circuit in world.circuits for r in world.circuit_reports(circuit, moment)]
            night.steps.append((moment, reports))
            moment += STEP
        return night

    def records(self) -> list[Record]:
        """The telemetry as the API publishes it: one batch per circuit per step, in order."""
        out: list[Record] = []
        for _, reports in self.steps:
            for circuit in self.world.circuits:
                mine = [r for r in reports if r.lamp_id in set(circuit.lamp_ids)]
                out.append((STREETLIGHT_TELEMETRY, circuit.id, batch_to_pb(circuit.id, mine)))
        return out


def sunny_day_with_a_failed_string(world: LightingWorld) -> list[GenerationReading]:
    """PV_SITE on a clear day after the night; from 10:00 to 13:00 UTC a string is out (20 % output)."""
    site = world.network.pv_sites[PV_SITE]
    readings = []
    moment = NIGHT_START.replace(hour=7, minute=30) + timedelta(days=1)
    while moment < NIGHT_START.replace(hour=15) + timedelta(days=1):
        reading = world.generation(site, moment, cloud=0.0)
        if 10 <= moment.hour < 13:
            reading = replace(reading, power_kw=round(reading.power_kw * 0.2, 3))
        readings.append(reading)
        moment += STEP
    return readings


def generation_records(readings: Sequence[GenerationReading]) -> list[Record]:
    return [(GENERATION, r.site_id, telemetry_pb2.GenerationObservedBatch(site_id=r.site_id,
                                                                          reports=[generation_to_pb(r)]))
            for r in readings]


def processor_settings() -> EnergyProcessorSettings:
    return EnergyProcessorSettings(cities=["casablanca"], energy_tick_interval_s=3600)


@dataclass
class Oracle:
    alerts: Counter[tuple[str, int, int]]
    events: list[Any]
    confirmations: list[control_pb2.LightingCommandConfirmed]
    states: dict[str, Any] = field(default_factory=dict)
    """Each entity's state after the last record."""


def oracle(records: Sequence[Record], pv: bool = False) -> Oracle:
    """The pure domain step (as the processor wraps it) fed ``records`` in order, per entity."""
    processor: Any = (pv_processor if pv else circuit_processor)(processor_settings())
    states: dict[str, Any] = {}
    alerts: Counter[tuple[str, int, int]] = Counter()
    events: list[Any] = []
    confirmations = []
    now = datetime.now(UTC)
    for spec, key, message in records:
        state = states.get(key) or processor.new_state(key)
        step = processor.step(state, EntityRecord(key, spec, message, now))
        states[key] = step.state
        for event in step.alerts:
            alerts[(event.alert_id, event.revision, int(event.state))] += 1
            events.append(event)
        confirmations += [m for _, _, m in step.records if isinstance(m, control_pb2.LightingCommandConfirmed)]
    return Oracle(alerts, events, confirmations, states)


def command_records(commands: Sequence[control_pb2.LightingCommand]) -> list[Record]:
    return [(LIGHTING_COMMANDS, c.circuit_id, c) for c in commands]


def interleave(commands: Sequence[Record], telemetry: Sequence[Record]) -> Iterator[Record]:
    """All commands first: the test publishes them before any telemetry and waits for them."""
    yield from commands
    yield from telemetry


PRINCIPALS = {"gateway": ["energy:publish"], "night-operator": ["energy:control", "energy:read"],
              "dashboard": ["energy:read"]}


@dataclass
class EnergyApi:
    runtime: EnergyRuntime
    tokens: dict[str, str]
    client: httpx.AsyncClient

    def headers(self, principal: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[principal]}"}


@contextlib.asynccontextmanager
async def running_energy_api(bootstrap: str, directory: Path, follow: bool = True) -> AsyncIterator[EnergyApi]:
    """The energy API as main.serve builds it (HTTP in-process through ASGI), producer started."""
    from madina.bus import ensure_topics

    await ensure_topics(bootstrap, [*ALL, ALERTS, KPIS], default_partitions=2)
    tokens = write_credentials(directory / "credentials.yaml", PRINCIPALS)
    settings = EnergySettings(kafka_bootstrap=bootstrap, credentials_file=directory / "credentials.yaml",
                              grpc_insecure=True, cities=["casablanca"])
    runtime = build_runtime(settings)
    await runtime.producer.start()
    runtime.producer_ready = True
    feeds = asyncio.create_task(runtime.follow_feeds()) if follow else None
    transport = httpx.ASGITransport(app=create_http_app(runtime))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://energy") as client:
            yield EnergyApi(runtime, tokens, client)
    finally:
        if feeds is not None:
            feeds.cancel()
            await asyncio.gather(feeds, return_exceptions=True)
        await runtime.producer.stop()

__all__ = ["report_json"]
