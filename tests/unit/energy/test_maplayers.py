"""The Street lights map layer: circuit statuses built by the processor from real lamp reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from madina.maplayers import Level
from madina_proto.energy.v1 import status_pb2
from services.energy.convert import circuit_status_to_pb
from services.energy.domain.circuit import CircuitContext, CircuitState, apply_telemetry
from services.energy.domain.telemetry import LampTelemetry
from services.energy.maplayers import streetlight_features
from services.energy.plugin import DOMAIN

CIRCUIT = "brk-cab-01-c1"
NIGHT = datetime(2024, 1, 15, 23, 0, tzinfo=UTC)


@pytest.fixture
def ctx(network, config, sun):
    return CircuitContext.of(network, CIRCUIT, config, sun)


def _status(ctx: CircuitContext) -> status_pb2.CircuitStatusChanged:
    """Six lamps report: one 20 min before the others (past the 3 x 5 min gap), five now."""
    lamp = ctx.circuit.lamp_ids
    rated = ctx.lamps[lamp[0]].rated_power_w
    state = CircuitState.new(CIRCUIT)
    state = apply_telemetry(state, [LampTelemetry(lamp[5], NIGHT - timedelta(minutes=20), True, 100.0, rated)], ctx)[0]
    now = [
        LampTelemetry(lamp[0], NIGHT, True, 100.0, 0.0),  # out
        LampTelemetry(lamp[1], NIGHT, True, 100.0, 2 * rated),  # over power
        LampTelemetry(lamp[2], NIGHT, True, 50.0, rated / 2),
        LampTelemetry(lamp[3], NIGHT, False, 0.0, 0.0),
        LampTelemetry(lamp[4], NIGHT, True, 100.0, rated),
    ]
    return circuit_status_to_pb(apply_telemetry(state, now, ctx)[0], ctx.circuit)


def test_each_lamp_of_the_circuit_is_coloured_by_its_last_report(ctx) -> None:
    features = streetlight_features(_status(ctx))
    lamp = ctx.circuit.lamp_ids
    assert [f.feature_id for f in features] == [f"energy/streetlight/{lamp_id}" for lamp_id in lamp]
    seen = {f.feature_id.rsplit("/", 1)[1]: (f.level, f.status) for f in features}
    assert seen[lamp[0]] == (Level.WARNING, "lamp out (on, draws 0 W)")
    assert seen[lamp[1]][0] is Level.WARNING and seen[lamp[1]][1].startswith("over power (144 W")
    assert seen[lamp[2]] == (Level.OK, "dimmed to 50 %")
    assert seen[lamp[3]] == (Level.OK, "off")
    assert seen[lamp[4]] == (Level.OK, "on")
    assert seen[lamp[5]] == (Level.UNKNOWN, "silent for 20 min")
    assert all(seen[lamp_id] == (Level.UNKNOWN, "no report yet") for lamp_id in lamp[6:])
    first = features[0]
    registry = ctx.lamps[lamp[0]]
    assert (first.points, first.city_id, first.label) == (((registry.lat, registry.lon),), "berkane", f"Lamp {lamp[0]}")
    assert first.observe_time == NIGHT and first.details["circuit"] == CIRCUIT


def test_lamps_the_registry_cannot_place_are_left_off(ctx) -> None:
    message = _status(ctx)
    message.lamps.add(lamp_id="not-a-lamp", on=True, dimming_pct=100.0, power_w=0.0)
    assert "energy/streetlight/not-a-lamp" not in {f.feature_id for f in streetlight_features(message)}
    assert streetlight_features(status_pb2.CircuitStatusChanged(circuit_id="no-such-circuit")) == []


def test_every_declared_layer_loads_and_follows_an_energy_topic(ctx) -> None:
    assert [layer.name for layer in DOMAIN.map_layers] == ["Street lights"]
    for layer in DOMAIN.map_layers:
        assert layer.topic in DOMAIN.topics
        assert layer.load()(_status(ctx))[0].domain == "energy"
