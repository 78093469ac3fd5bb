"""Energy's KPIs where they are read: on the operations dashboard's board (``kpis.v1`` read as the
operations API reads it), and the district totals the district processor makes of what the
circuit processor forwards on ``energy.circuit-consumption.v1`` (both as real workers).

Both tests read topics from their beginning, so each has a broker of its own.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from google.protobuf.message import Message

from madina.bus.topics import KPIS, TopicSpec
from madina.streams.entities import EntityRecord
from madina_proto.kpis.v1 import kpis_pb2
from services.energy.convert import batch_to_pb
from services.energy.domain.circuit import CircuitState
from services.energy.domain.district import DistrictState
from services.energy.domain.network import Network
from services.energy.domain.pv import PvExpectation, SiteState
from services.energy.domain.sun import SunCalendar
from services.energy.processor.app import circuit_stepper, district_step, site_stepper
from services.energy.simulator import LightingWorld
from services.energy.topics import ALL, CIRCUIT_CONSUMPTION, CONSUMPTION_HISTORY, STREETLIGHT_TELEMETRY
from services.operations.api.kpis import KpiBoard, follow_kpis
from tests.integration.energy.harness import (
    KIT,
    NIGHT_START,
    TEST_ENV,
    generation_records,
    network,
    processor_settings,
    sunny_day_with_a_failed_string,
)
from tests.support.processor_kit import ProcessorKit, ProcessorProcess, Record, produce, read_all

DISTRICT_KIT = ProcessorKit("energy-district-processor", "MADINA_ENERGY_DISTRICT_PROCESSOR_PORT", ALL, env=TEST_ENV)
CIRCUITS = ("cas-cab-01-c1", "cas-cab-01-c2")  # both in casablanca/casa-port
DISTRICT = "casablanca/casa-port"
# 21:30 to 23:40 UTC: the 21:00 and 22:00 UTC hours close, and at 23:00 UTC (midnight in Casablanca,
# UTC+1) the city-local day closes too, so hourly and daily values of one series both come out.
EVENING = datetime(2026, 11, 20, 21, 30, tzinfo=UTC)
STEPS = 27


@pytest.fixture
def kafka_bootstrap(broker: str) -> str:
    return broker


@functools.cache
def seed_network() -> Network:
    return network()  # parsed once: it takes seconds


def telemetry() -> list[Record]:
    """Two circuits of one district reporting every 5 min, one batch per circuit per step."""
    net = seed_network()
    world = LightingWorld(net, [net.circuits[c] for c in CIRCUITS], random.Random(11), failures=False)
    return [(STREETLIGHT_TELEMETRY, circuit.id, batch_to_pb(circuit.id, world.circuit_reports(circuit, moment)))
            for moment in (EVENING + timedelta(minutes=5 * n) for n in range(STEPS)) for circuit in world.circuits]


def circuit_outputs(records: Sequence[Record]) -> list[tuple[TopicSpec, str, Message]]:
    """What the circuit processor's own step publishes for ``records``, in order."""
    step_of = circuit_stepper(seed_network(), processor_settings().config(), SunCalendar())  # as circuit_processor
    states: dict[str, CircuitState] = {}
    out: list[tuple[TopicSpec, str, Message]] = []
    for spec, key, message in records:
        step = step_of(states.get(key) or CircuitState.new(key), EntityRecord(key, spec, message, EVENING))
        states[key] = step.state
        out += step.records
    return out


def district_outputs(forwarded: Sequence[tuple[TopicSpec, str, Message]]) -> list[tuple[TopicSpec, str, Message]]:
    """The district step fed the circuits' closed periods, per district, in order."""
    states: dict[str, DistrictState] = {}
    out: list[tuple[TopicSpec, str, Message]] = []
    for _spec, key, message in forwarded:
        step = district_step(states.get(key) or DistrictState(key), EntityRecord(key, CIRCUIT_CONSUMPTION, message,
                                                                                 EVENING))
        states[key] = step.state
        out += step.records
    return out


def latest(records: Sequence[tuple[TopicSpec, str, Message]], spec: TopicSpec) -> dict[str, Message]:
    return {key: message for record_spec, key, message in records if record_spec is spec}


async def test_energy_kpis_of_lamps_circuits_districts_and_pv_sites_reach_the_operations_board(
    kafka_bootstrap: str,
) -> None:
    circuits = circuit_outputs(telemetry())
    districts = district_outputs([r for r in circuits if r[0] is CIRCUIT_CONSUMPTION])
    net = seed_network()
    config = processor_settings().config()
    site_step = site_stepper(net, config, PvExpectation(config.pv))
    sites: list[tuple[TopicSpec, str, Message]] = []
    site: SiteState | None = None
    world = LightingWorld(net, [], random.Random(11), failures=False)
    for spec, key, message in generation_records(sunny_day_with_a_failed_string(world)):
        step = site_step(site or SiteState.new(key), EntityRecord(key, spec, message, NIGHT_START))
        site = step.state
        sites += step.records
    published = [r for r in [*circuits, *districts, *sites] if r[0] is KPIS]
    await produce(kafka_bootstrap, published)

    board = KpiBoard()
    follower = asyncio.create_task(follow_kpis(kafka_bootstrap, board))
    try:
        await asyncio.wait_for(board.ready.wait(), 30)
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)

    expected = latest(published, KPIS)
    assert {key for (domain, key) in board.latest if domain == "energy"} == set(expected)
    rows = {(r["kpi_id"], (r["entity"] or {}).get("entity_id") or f"{r['district']['city_id']}/"
             f"{r['district']['district_id']}"): r for r in board.indicators() if r["domain"] == "energy"}
    for key, message in expected.items():
        assert isinstance(message, kpis_pb2.KpiObserved)
        row = rows[(message.kpi_id, key.partition("/")[2])]
        assert (row["value"], row["display_name"]) == (message.value, message.display_name)
    kinds = {(r["entity"] or {"kind": "district"})["kind"] for r in rows.values()}
    assert kinds == {"lamp", "circuit", "district", "pv-site"}
    # A series' hourly and daily values are two indicators, not one key overwritten by the other.
    assert {"lighting-energy-kwh-hour", "lighting-energy-kwh-day"} <= {kpi_id for kpi_id, _ in rows}
    lamp = net.circuits[CIRCUITS[0]].lamp_ids[0]
    assert {("lighting-energy-kwh-hour", lamp), ("lighting-energy-kwh-day", lamp),
            ("lighting-energy-kwh-hour", DISTRICT), ("lighting-energy-kwh-day", DISTRICT)} <= set(rows)


async def test_district_processor_adds_up_the_circuits_closed_periods_as_the_domain_does(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    await KIT.create_topics(kafka_bootstrap)
    # Both workers start (each waits on its /healthz) while the oracle runs here.
    starting = asyncio.gather(
        asyncio.to_thread(KIT.start, kafka_bootstrap, tmp_path / "circuits", name="circuits"),
        asyncio.to_thread(DISTRICT_KIT.start, kafka_bootstrap, tmp_path / "districts", name="districts"),
        return_exceptions=True)
    try:
        records = telemetry()
        forwarded = [r for r in circuit_outputs(records) if r[0] is CIRCUIT_CONSUMPTION]
        expected = {key: m.value for key, m in latest(district_outputs(forwarded), CONSUMPTION_HISTORY).items()
                    if isinstance(m, kpis_pb2.KpiObserved)}
    finally:
        started = await starting
    workers = [worker for worker in started if isinstance(worker, ProcessorProcess)]
    try:
        for failed in (s for s in started if isinstance(s, BaseException)):
            raise failed
        circuits, districts = workers
        assert len(expected) == 4 * 3  # 4 KPIs for 2 hours and a day: the oracle has something to say
        await produce(kafka_bootstrap, records)
        got: dict[str, float] = {}
        for _ in range(120):  # bounded; a few seconds once both workers run
            history = await read_all(kafka_bootstrap, CONSUMPTION_HISTORY.name, timeout_s=0.5)
            got = {r.key.decode(): kpis_pb2.KpiObserved.FromString(r.value).value for r in history
                   if r.key.decode().partition("/")[2].startswith("district:")}
            if got == pytest.approx(expected):
                break
            await asyncio.sleep(0.25)
        assert got == pytest.approx(expected), (
            f"{circuits.summary()}\n--- district processor ---\n{districts.summary()}")
        assert not await read_all(kafka_bootstrap, f"{CIRCUIT_CONSUMPTION.name}.dlq", timeout_s=0.5)
    finally:
        for worker in workers:
            worker.stop()
