"""Consumption history survives an API restart: it is read back from energy.consumption-history.v1
(one key per period), not kept only in the process that saw it arrive."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc

from madina.bus import EventProducer
from madina.streams.entities import EntityRecord
from madina_proto.energy.v1 import energy_service_pb2 as pb
from madina_proto.energy.v1 import energy_service_pb2_grpc as pb_grpc
from services.energy.api.main import build_grpc_server
from services.energy.convert import batch_to_pb
from services.energy.domain.district import DistrictState
from services.energy.processor.app import circuit_processor, district_step
from services.energy.simulator import LightingWorld
from services.energy.topics import CIRCUIT_CONSUMPTION, CONSUMPTION_HISTORY, STREETLIGHT_TELEMETRY
from tests.integration.energy.harness import EnergyApi, network, processor_settings, running_energy_api

CIRCUITS = ("cas-cab-01-c1", "cas-cab-01-c2")  # both in casablanca/casa-port
DISTRICT = "casablanca/casa-port"
EVENING = datetime(2025, 3, 10, 18, 0, tzinfo=UTC)  # a window no other test of the session uses
HOURS = 3
QUERIES = [("circuit", CIRCUITS[0]), ("district", DISTRICT), ("lamp", "cas-sl-0001")]


def history_records() -> list[tuple[str, Any]]:
    """What the circuit and district processors publish on the history topic for an evening."""
    net = network()
    processor = circuit_processor(processor_settings())
    world = LightingWorld(net, [net.circuits[c] for c in CIRCUITS], random.Random(5), failures=False)
    states = {c: processor.new_state(c) for c in CIRCUITS}
    district = DistrictState(DISTRICT)
    out: list[tuple[str, Any]] = []
    moment = EVENING
    while moment < EVENING + timedelta(hours=HOURS):
        for circuit in world.circuits:
            batch = batch_to_pb(circuit.id, world.circuit_reports(circuit, moment))
            step = processor.step(states[circuit.id], EntityRecord(circuit.id, STREETLIGHT_TELEMETRY, batch, moment))
            states[circuit.id] = step.state
            out += [(key, m) for spec, key, m in step.records if spec is CONSUMPTION_HISTORY]
            for message in (m for spec, _, m in step.records if spec is CIRCUIT_CONSUMPTION):
                folded = district_step(district, EntityRecord(DISTRICT, CIRCUIT_CONSUMPTION, message, moment))
                district = folded.state
                out += [(key, m) for spec, key, m in folded.records if spec is CONSUMPTION_HISTORY]
        moment += timedelta(minutes=5)
    return out


async def served(api: EnergyApi) -> dict[tuple[str, str], list[dict[str, Any]]]:
    answers = {}
    for kind, entity_id in QUERIES:
        response = await api.client.get("/v1/consumption", headers=api.headers("dashboard"), params={
            "entity_kind": kind, "entity_id": entity_id, "period": "hour",
            "start_time": EVENING.isoformat(), "end_time": (EVENING + timedelta(hours=HOURS)).isoformat()})
        assert response.status_code == 200, response.text
        answers[(kind, entity_id)] = response.json().get("periods", [])
    return answers


async def until_served(api: EnergyApi, hours: int) -> dict[tuple[str, str], list[dict[str, Any]]]:
    for _ in range(200):  # bounded: the feed reads a few hundred records
        answers = await served(api)
        if all(len(periods) == hours for periods in answers.values()):
            return answers
        await asyncio.sleep(0.05)
    return answers


async def test_consumption_history_served_before_an_api_restart_is_served_after_it(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    records = history_records()
    async with running_energy_api(kafka_bootstrap, tmp_path) as api:
        async with EventProducer(kafka_bootstrap, source="energy-district-processor") as producer:
            for key, message in records:
                await producer.send(CONSUMPTION_HISTORY, key, message)
        before = await until_served(api, HOURS - 1)  # the last hour is not closed yet
    async with running_energy_api(kafka_bootstrap, tmp_path) as restarted:
        await asyncio.wait_for(restarted.runtime.feeds_ready["history"].wait(), 30)
        after = await served(restarted)
        server = build_grpc_server(restarted.runtime, port=0)
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                request = pb.GetConsumptionRequest(entity_kind="district", entity_id=DISTRICT,
                                                   period=pb.PERIOD_HOUR)
                request.start_time.FromDatetime(EVENING)
                over_grpc = await pb_grpc.EnergyServiceStub(channel).GetConsumption(
                    request, metadata=(("authorization", f"Bearer {restarted.tokens['dashboard']}"),))
        finally:
            await server.stop(grace_s=1.0)

    assert after == before
    district, circuit = before[("district", DISTRICT)], before[("circuit", CIRCUITS[0])]
    assert len(district) == HOURS - 1 and len(before[("lamp", "cas-sl-0001")]) == HOURS - 1
    # The district is its two circuits together: more than either, with savings and CO2 avoided.
    assert all(d["energy_kwh"] > c["energy_kwh"] > 0 for d, c in zip(district, circuit, strict=True))
    assert all(d["savings_kwh"] > 0 and d["savings_co2_t"] > 0 for d in district)
    assert [p.energy_kwh for p in over_grpc.periods] == [d["energy_kwh"] for d in district]
