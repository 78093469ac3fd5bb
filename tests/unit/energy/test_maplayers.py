"""The Street lights map layer: circuit statuses built from the evaluator's state after real lamp
reports, coloured by the alerts the status lists as open."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from madina.maplayers import Level
from madina_proto.energy.v1 import status_pb2
from services.energy.convert import circuit_status_to_pb
from services.energy.domain.circuit import CircuitContext, CircuitState, ClockTick, apply_telemetry, step
from services.energy.domain.telemetry import LampTelemetry
from services.energy.maplayers import streetlight_features
from services.energy.plugin import DOMAIN

CIRCUIT = "brk-cab-01-c1"
NIGHT = datetime(2024, 1, 15, 23, 0, tzinfo=UTC)
FIVE = timedelta(minutes=5)


@pytest.fixture
def ctx(network, config, sun):
    return CircuitContext.of(network, CIRCUIT, config, sun)


def _night(ctx: CircuitContext) -> CircuitState:
    """Seven lamps: one 20 min before the others (past the 3 x 5 min gap), six for two reports each
    (a lamp alert needs two breaching reports, a fault code one); the rest never report."""
    lamp = ctx.circuit.lamp_ids
    rated = ctx.lamps[lamp[0]].rated_power_w
    state = CircuitState.new(CIRCUIT)
    state = apply_telemetry(state, [LampTelemetry(lamp[5], NIGHT - 4 * FIVE, True, 100.0, rated)], ctx).state
    for moment in (NIGHT - FIVE, NIGHT):
        state = apply_telemetry(state, [
            LampTelemetry(lamp[0], moment, True, 100.0, 0.0, 225.0),  # out
            LampTelemetry(lamp[1], moment, True, 100.0, 0.0, 225.0, None, "DRIVER_FAILURE"),
            LampTelemetry(lamp[2], moment, True, 50.0, rated / 2, 226.0),
            LampTelemetry(lamp[3], moment, False, 0.0, 0.0),
            LampTelemetry(lamp[4], moment, True, 100.0, rated, 224.6),
            LampTelemetry(lamp[6], moment, True, 100.0, rated, 251.0),  # over the 242 V limit
        ], ctx).state
    return state


def _seen(message: status_pb2.CircuitStatusChanged) -> dict[str, tuple[Level, str]]:
    return {f.feature_id.rsplit("/", 1)[1]: (f.level, f.status) for f in streetlight_features(message)}


def test_each_lamp_is_coloured_by_its_open_alerts_and_otherwise_by_its_last_report(ctx) -> None:
    message = circuit_status_to_pb(_night(ctx), ctx.circuit)
    features = streetlight_features(message)
    lamp = ctx.circuit.lamp_ids
    assert [f.feature_id for f in features] == [f"energy/streetlight/{lamp_id}" for lamp_id in lamp]
    seen = _seen(message)
    assert seen[lamp[0]] == (Level.WARNING, "lamp out (0 W drawn)")  # MINOR
    assert seen[lamp[1]] == (Level.CRITICAL, "fault DRIVER_FAILURE; lamp out (0 W drawn)")  # MAJOR first
    assert seen[lamp[2]] == (Level.OK, "dimmed to 50 %")
    assert seen[lamp[3]] == (Level.OK, "off")
    assert seen[lamp[4]] == (Level.OK, "on")
    assert seen[lamp[5]] == (Level.UNKNOWN, "silent for 20 min")
    assert seen[lamp[6]] == (Level.WARNING, "supply 251 V")
    assert all(seen[lamp_id] == (Level.UNKNOWN, "no report yet") for lamp_id in lamp[7:])
    by_id = {f.feature_id.rsplit("/", 1)[1]: f for f in features}
    faulty = by_id[lamp[1]]
    registry = ctx.lamps[lamp[1]]
    assert (faulty.points, faulty.city_id) == (((registry.lat, registry.lon),), "berkane")
    assert faulty.label == f"Lamp {lamp[1]}"
    assert faulty.observe_time == NIGHT
    assert faulty.details == {"circuit": CIRCUIT, "cabinet": registry.cabinet, "power": "0.0 W", "voltage": "225 V",
                              "fault code": "DRIVER_FAILURE", "circuit faults": f"3 of {len(lamp)} lamps"}


def test_a_dark_circuit_colours_every_lamp_it_lists_critical(ctx) -> None:
    state = CircuitState.new(CIRCUIT)
    for i in range(3):
        readings = [LampTelemetry(lamp_id, NIGHT + i * FIVE, True, 100.0, 0.0) for lamp_id in ctx.circuit.lamp_ids]
        state = apply_telemetry(state, readings, ctx).state
    features = streetlight_features(circuit_status_to_pb(state, ctx.circuit))
    assert {(f.level, f.status) for f in features} == {(Level.CRITICAL, "circuit dark")}
    assert {f.details["circuit alerts"] for f in features} == {"circuit-dark"}


def test_a_silent_circuit_shows_its_lamps_unknown_once_its_data_gap_is_raised(ctx) -> None:
    state = apply_telemetry(CircuitState.new(CIRCUIT), [
        LampTelemetry(lamp_id, NIGHT, True, 100.0, ctx.lamps[lamp_id].rated_power_w) for lamp_id in ctx.circuit.lamp_ids
    ], ctx).state
    silent = step(state, [ClockTick(NIGHT + 4 * FIVE)], ctx)
    assert [t.rule_id for t in silent.transitions] == ["data-gap"]  # what makes the processor publish the status
    assert {level for level, _ in _seen(circuit_status_to_pb(silent.state, ctx.circuit)).values()} == {Level.UNKNOWN}


def test_lamps_the_registry_cannot_place_are_left_off(ctx) -> None:
    message = circuit_status_to_pb(_night(ctx), ctx.circuit)
    message.lamps.add(lamp_id="not-a-lamp", on=True, dimming_pct=100.0, power_w=0.0)
    assert "energy/streetlight/not-a-lamp" not in {f.feature_id for f in streetlight_features(message)}
    assert streetlight_features(status_pb2.CircuitStatusChanged(circuit_id="no-such-circuit")) == []


def test_every_declared_layer_loads_and_follows_an_energy_topic(ctx) -> None:
    assert [layer.name for layer in DOMAIN.map_layers] == ["Street lights"]
    for layer in DOMAIN.map_layers:
        assert layer.topic in DOMAIN.topics
        assert layer.topic.cleanup_policy == "compact", f"operations reads {layer.topic.name} whole at start"
        assert layer.load()(circuit_status_to_pb(_night(ctx), ctx.circuit))[0].domain == "energy"
