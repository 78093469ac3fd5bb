"""The energy transport's pure parts: settings overrides, the processor steps' refusals, the simulator's world,
the order of ListFaults."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from madina.bus.alert_events import timestamp
from madina.contract import InvalidRecord
from madina.streams.entities import EntityRecord
from madina_proto.alerts.v1 import alerts_pb2
from madina_proto.common.v1 import common_pb2
from madina_proto.energy.v1 import energy_service_pb2 as pb
from madina_proto.energy.v1 import telemetry_pb2
from services.energy import simulator
from services.energy.api import views
from services.energy.api.state import EnergyRuntime
from services.energy.domain.circuit import CircuitContext, CircuitState, TelemetryBatch, step
from services.energy.domain.network import load_network
from services.energy.processor.app import circuit_processor
from services.energy.settings import EnergyProcessorSettings
from services.energy.simulator import LightingWorld, report_json
from services.energy.topics import CIRCUIT_TICKS, STREETLIGHT_TELEMETRY


def test_settings_override_the_grid_factor_and_command_timeout_of_the_config_file() -> None:
    settings = EnergyProcessorSettings(energy_grid_emission_factor_t_per_mwh=0.5, energy_command_timeout_s=60)
    config = settings.config()
    assert config.grid.emission_factor_t_per_mwh == 0.5
    assert config.control.command_timeout_s == 60
    assert EnergyProcessorSettings().config().grid.emission_factor_t_per_mwh == 0.547


def test_circuit_step_refuses_an_unknown_circuit_and_a_tick_without_time() -> None:
    processor = circuit_processor(EnergyProcessorSettings(cities=["casablanca"]))
    now = datetime.now(UTC)
    with pytest.raises(InvalidRecord, match="circuit_id"):
        processor.step(CircuitState.new("nope"), EntityRecord(
            "nope", STREETLIGHT_TELEMETRY, telemetry_pb2.StreetlightTelemetryBatch(circuit_id="nope"), now))
    with pytest.raises(InvalidRecord, match="tick_time"):
        processor.step(CircuitState.new("cas-cab-01-c1"), EntityRecord(
            "cas-cab-01-c1", CIRCUIT_TICKS, telemetry_pb2.CircuitClockTick(circuit_id="cas-cab-01-c1"), now))


def test_simulated_lamps_dim_late_at_night_and_a_tripped_breaker_darkens_the_whole_circuit() -> None:
    network = load_network(serving=["casablanca"])
    circuit = network.circuits["cas-cab-01-c1"]
    world = LightingWorld(network, [circuit], random.Random(1), failures=False)
    evening = world.circuit_reports(circuit, datetime(2026, 11, 20, 20, 0, tzinfo=UTC))
    late = world.circuit_reports(circuit, datetime(2026, 11, 20, 23, 30, tzinfo=UTC))
    assert {r.dimming_pct for r in evening} == {100.0} and {r.dimming_pct for r in late} == {50.0}
    world.trip_breaker(circuit.id)
    dark = world.circuit_reports(circuit, datetime(2026, 11, 20, 23, 35, tzinfo=UTC))
    assert all(r.on and r.power_w < 1 for r in dark)
    assert all(b.energy_wh >= a.energy_wh for a, b in zip(evening, late, strict=True))


def test_list_faults_gives_the_newest_raised_first_and_pages_through_them() -> None:
    none: Any = None
    runtime = EnergyRuntime(settings=none, network=none, credentials=none, producer=none)
    for hour, alert_id in ((20, "a-first"), (22, "c-last"), (21, "b-middle")):
        runtime._on_alert(alert_id, alerts_pb2.AlertEvent(
            alert_id=alert_id, revision=1, domain="energy", state=alerts_pb2.ALERT_STATE_RAISED,
            raise_time=timestamp(datetime(2026, 11, 20, hour, tzinfo=UTC)),
            district=common_pb2.District(city_id="casablanca", district_id="maarif")))
    first = views.faults(runtime, pb.ListFaultsRequest(city_id="casablanca", page_size=2))
    assert [f.alert_id for f in first.faults] == ["c-last", "b-middle"]
    rest = views.faults(runtime, pb.ListFaultsRequest(page_size=2, page_token=first.next_page_token))
    assert [f.alert_id for f in rest.faults] == ["a-first"] and rest.next_page_token == ""


def test_simulated_failures_report_a_driver_fault_code_and_a_sagging_supply_that_raise_alerts(
    monkeypatch: pytest.MonkeyPatch, config, sun
) -> None:
    network = load_network(serving=["casablanca"])
    circuit = network.circuits["cas-cab-01-c1"]
    monkeypatch.setattr(simulator, "BREAKER_TRIP_PER_HOUR", 0.0)
    monkeypatch.setattr(simulator, "DRIVER_FAULT_SHARE", 1.0)
    world = LightingWorld(network, [circuit], random.Random(1))
    night = datetime(2026, 11, 20, 20, 0, tzinfo=UTC)
    healthy = world.circuit_reports(circuit, night)
    assert all(r.fault_code == "" and 228 <= r.voltage_v <= 234 for r in healthy)
    # Every lamp fails and the supply sags on the next report.
    monkeypatch.setattr(simulator, "LAMP_FAILURE_PER_HOUR", 1e6)
    monkeypatch.setattr(simulator, "SUPPLY_SAG_PER_HOUR", 1e6)
    later = [world.circuit_reports(circuit, night + timedelta(minutes=5 * i)) for i in (1, 2)]
    assert all(r.fault_code == "DRIVER_FAILURE" and r.voltage_v < 198 for r in later[-1])
    assert report_json(later[-1][0])["fault_code"] == "DRIVER_FAILURE"
    ctx = CircuitContext.of(network, circuit.id, config, sun)
    state = CircuitState.new(circuit.id)
    raised = []
    for reports in (healthy, *later):
        result = step(state, [TelemetryBatch(circuit.id, tuple(reports))], ctx)
        state, raised = result.state, raised + [t.rule_id for t in result.transitions]
    assert {"fault", "voltage"} <= set(raised)
