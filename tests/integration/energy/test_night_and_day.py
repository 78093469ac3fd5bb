"""A simulated night and day through the energy API's HTTP ingest and both processors, on a broker
of its own: exactly the alerts, confirmations and commands the pure domain code gives for the same
input; a dimming command round trip (confirmed where the lamps obey, command-timeout where they do
not) with who sent it and why on the command topic; a PV string failure raising and clearing
pv-underperformance; bad telemetry dead-lettered while the rest flows; each circuit's newest status
on energy.circuit-status.v1 carrying the open alerts, lamps in fault and voltage the pure domain
gives, and the map layer colouring the lamps by them. One test, because each processor takes
seconds to start."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from madina.bus.producer import HEADER_DLQ_REASON
from madina.maplayers import Level
from madina_proto.alerts.v1 import alerts_pb2
from madina_proto.energy.v1 import control_pb2, status_pb2, telemetry_pb2
from services.energy.convert import circuit_status_to_pb, lamp_telemetry_to_pb
from services.energy.maplayers import streetlight_features
from services.energy.topics import CIRCUIT_STATUS, COMMAND_CONFIRMATIONS, LIGHTING_COMMANDS, STREETLIGHT_TELEMETRY
from tests.integration.energy.harness import (
    DISOBEYS,
    KIT,
    OBEYS,
    PV_KIT,
    PV_SITE,
    STEP,
    TRIPS,
    Night,
    command_records,
    generation_records,
    oracle,
    report_json,
    running_energy_api,
    sunny_day_with_a_failed_string,
)
from tests.support.processor_kit import assert_exactly_once, produce, produce_raw, read_all, settled_alerts


async def test_night_and_day_through_http_gives_the_oracles_alerts_commands_and_confirmations(
    broker: str, tmp_path: Path
) -> None:
    night = Night.scripted(hours=19)
    sunny = sunny_day_with_a_failed_string(night.world)
    await KIT.create_topics(broker)
    processor = KIT.start(broker, tmp_path)
    (tmp_path / "pv").mkdir()
    pv = PV_KIT.start(broker, tmp_path / "pv", name="pv")
    try:
        async with running_energy_api(broker, tmp_path) as api:
            schedule = {
                "schedule_id": "winter-nights", "city_id": "casablanca", "circuit_ids": [OBEYS, DISOBEYS],
                "steps": [{"trigger": "sunset", "dimming_pct": 100}, {"trigger": "23:00", "dimming_pct": 50}],
                "reason": "late-night dimming, council decision 2026-41",
                "start_time": night.start.isoformat(),
                "end_time": (night.start + timedelta(hours=night.hours)).isoformat(),
            }
            response = await api.client.post("/v1/dimming-schedules", json=schedule,
                                              headers=api.headers("night-operator"))
            assert response.status_code == 202, response.text
            assert len(response.json()["commands"]) == 4  # two steps on two circuits
            forbidden = await api.client.post("/v1/dimming-schedules", json=schedule, headers=api.headers("gateway"))
            assert forbidden.status_code == 403
            # The commands reach the circuits' streams before any telemetry (the oracle's order).
            for _ in range(300):
                if processor.applied() >= 4:
                    break
                await asyncio.sleep(0.1)
            for _, reports in night.steps:
                posted = await api.client.post("/v1/streetlight-telemetry",
                                               json={"reports": [report_json(r) for r in reports]},
                                               headers=api.headers("gateway"))
                assert posted.status_code == 202, posted.text
            for reading in sunny:
                posted = await api.client.post("/v1/generation", json={
                    "site_id": reading.site_id, "observe_time": reading.observe_time.isoformat(),
                    "power_kw": reading.power_kw}, headers=api.headers("gateway"))
                assert posted.status_code == 202, posted.text
            # Poison straight onto the topic (the API would refuse it): an undecodable record, and a
            # batch under OBEYS holding a lamp of another circuit.
            stray = telemetry_pb2.StreetlightTelemetryBatch(circuit_id=OBEYS, reports=[lamp_telemetry_to_pb(
                replace(night.steps[-1][1][0], lamp_id=night.world.network.circuits[TRIPS].lamp_ids[0],
                        observe_time=night.steps[-1][0] + STEP))])
            await produce_raw(broker, STREETLIGHT_TELEMETRY.name, OBEYS.encode(), b"\x0a\xffnot protobuf")
            await produce(broker, [(STREETLIGHT_TELEMETRY, OBEYS, stray)])

            commands = [control_pb2.LightingCommand.FromString(r.value)
                        for r in await read_all(broker, LIGHTING_COMMANDS.name)]
            assert {(c.issuer, c.reason) for c in commands} == {("night-operator", schedule["reason"])}
            expected = oracle([*command_records(commands), *night.records(), (STREETLIGHT_TELEMETRY, OBEYS, stray)])
            expected_pv = oracle(generation_records(sunny), pv=True)
            events = await settled_alerts(broker, sum((expected.alerts + expected_pv.alerts).values()), timeout_s=60)
            assert_exactly_once(events, expected.alerts + expected_pv.alerts)
            assert [alerts_pb2.AlertState.Name(e.state) for e in events if e.category == "pv-underperformance"][::11] \
                == ["ALERT_STATE_RAISED", "ALERT_STATE_CLEARED"]
            dead = await read_all(broker, STREETLIGHT_TELEMETRY.dead_letter.name)
            reasons = sorted(dict(r.headers)[HEADER_DLQ_REASON].decode() for r in dead)
            assert len(dead) == 2 and reasons[1].startswith("wrong_circuit"), reasons

            confirmed = [control_pb2.LightingCommandConfirmed.FromString(r.value)
                         for r in await read_all(broker, COMMAND_CONFIRMATIONS.name)]
            assert sorted(c.SerializeToString() for c in confirmed) == sorted(
                c.SerializeToString() for c in expected.confirmations)
            late_dimming = {c.command_id: c.circuit_id for c in commands if c.trigger == "23:00"}
            assert {c.circuit_id for c in confirmed if c.command_id in late_dimming} == {OBEYS}
            raised = {(e.category, e.source.entity_id) for e in events if e.state == alerts_pb2.ALERT_STATE_RAISED}
            assert ("command-timeout", DISOBEYS) in raised
            assert ("circuit-dark", TRIPS) in raised
            assert not any(kind == "lamp-out" and entity in night.world.network.circuits[TRIPS].lamp_ids
                           for kind, entity in raised), "lamp-out is suppressed under circuit-dark"

            # The read API serves the open faults from alerts.v1 and lamp states from the status topic.
            failing = night.world.network.circuits[OBEYS].lamp_ids[3]
            for _ in range(100):
                got = await api.client.get(f"/v1/lamps/{failing}/status", headers=api.headers("dashboard"))
                assert got.status_code == 200, got.text
                status = got.json()
                if status["status"].get("active_alerts") and status["status"].get("last_observe_time"):
                    break
                await asyncio.sleep(0.1)
            assert [a["category"] for a in status["status"]["active_alerts"]] == ["lamp-out"]
            assert 228 <= status["status"]["voltage_v"] <= 234  # the simulated supply
            faults = (await api.client.get("/v1/faults?city_id=casablanca", headers=api.headers("dashboard"))).json()
            assert {f["category"] for f in faults["faults"]} >= {"circuit-dark", "lamp-out", "command-timeout"}
            # Hourly energy, savings and CO2 of a circuit, and a PV site's generation, from kpis.v1.
            for _ in range(100):
                hours = (await api.client.get(f"/v1/consumption?entity_kind=circuit&entity_id={OBEYS}",
                                              headers=api.headers("dashboard"))).json()
                generated = (await api.client.get(f"/v1/pv-sites/{PV_SITE}/generation",
                                                  headers=api.headers("dashboard"))).json()
                if len(hours.get("periods", ())) >= 15 and generated.get("periods"):
                    break
                await asyncio.sleep(0.1)
            assert all(p["savings_kwh"] > 0 and p["savings_co2_t"] > 0 for p in hours["periods"]
                       if p["energy_kwh"] > 0.1), hours
            assert hours["emission_factor_t_per_mwh"] == 0.547  # data/energy.yaml: IFI 2021, Morocco, combined margin
            assert any(p["performance_ratio"] < 0.5 for p in generated["periods"]), generated

            # Each circuit's newest status tells what its alerts tell: any alert change publishes one.
            net = night.world.network
            wanted = {c: circuit_status_to_pb(expected.states[c], net.circuits[c]) for c in (OBEYS, TRIPS, DISOBEYS)}
            newest = await _newest_statuses(broker, wanted)
            assert {c: _health(m) for c, m in newest.items()} == {c: _health(m) for c, m in wanted.items()}
            dark = newest[TRIPS]
            assert ("circuit-dark", TRIPS) in {(a.rule_id, a.source_id) for a in dark.open_alerts}
            assert list(dark.faulty_lamp_ids) == list(net.circuits[TRIPS].lamp_ids)
            assert list(newest[OBEYS].faulty_lamp_ids) == [failing]
            assert 228 <= newest[OBEYS].min_voltage_v <= newest[OBEYS].max_voltage_v <= 234
            seen = {f.feature_id.rsplit("/", 1)[1]: (f.level, f.status) for f in streetlight_features(newest[OBEYS])}
            assert seen[failing][0] is Level.WARNING and seen[failing][1].startswith("lamp out")
            assert {f.level for f in streetlight_features(dark)} == {Level.CRITICAL}
    finally:
        processor.stop()
        pv.stop()


def _health(status: status_pb2.CircuitStatusChanged) -> tuple[object, ...]:
    alerts = sorted((a.alert_id, a.rule_id, a.source_id, a.severity) for a in status.open_alerts)
    return alerts, list(status.faulty_lamp_ids), status.lamp_count


async def _newest_statuses(
    broker: str, wanted: dict[str, status_pb2.CircuitStatusChanged]
) -> dict[str, status_pb2.CircuitStatusChanged]:
    """The newest status of each circuit once it tells what ``wanted`` does (bounded: the status
    records of the last alert changes may still be on their way)."""
    newest: dict[str, status_pb2.CircuitStatusChanged] = {}
    for _ in range(100):
        for record in await read_all(broker, CIRCUIT_STATUS.name):
            newest[record.key.decode()] = status_pb2.CircuitStatusChanged.FromString(record.value)
        if all(c in newest and _health(newest[c]) == _health(m) for c, m in wanted.items()):
            break
        await asyncio.sleep(0.1)
    return newest
