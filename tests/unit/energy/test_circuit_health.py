"""What a circuit's status tells an operator: lamps in fault, supply voltage, open alerts
(domain.health), and its wire form on energy.circuit-status.v1 (convert.circuit_status_to_pb)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from madina.alerts import AlertState, Severity
from madina_proto.alerts.v1 import alerts_pb2
from services.energy.convert import circuit_status_to_pb
from services.energy.domain import CircuitContext, CircuitState, ClockTick, LampTelemetry, TelemetryBatch, step
from services.energy.domain.health import circuit_health

CIRCUIT = "brk-cab-01-c1"
NIGHT = datetime(2024, 1, 15, 23, 0, tzinfo=UTC)
NEXT_NOON = datetime(2024, 1, 16, 12, 0, tzinfo=UTC)  # Berkane is UTC+1: full day
FIVE = timedelta(minutes=5)


@pytest.fixture
def ctx(network, config, sun):
    return CircuitContext.of(network, CIRCUIT, config, sun)


def batch(ctx, moment, *, watts=None, on=True, dimming=100.0, voltage=225.0, fault="", lamps=None):
    """Every lamp of ``lamps`` (default: the circuit's) reporting; ``watts`` None means healthy."""
    readings = []
    for lamp_id in lamps if lamps is not None else ctx.circuit.lamp_ids:
        power = ctx.lamps[lamp_id].rated_power_w * dimming / 100 if watts is None else watts
        readings.append(LampTelemetry(lamp_id, moment, on, dimming, power, voltage, None, fault))
    return TelemetryBatch(CIRCUIT, tuple(readings))


def merged(*batches):
    return TelemetryBatch(CIRCUIT, tuple(r for b in batches for r in b.readings))


def run(ctx, *events, state=None):
    state = state or CircuitState.new(CIRCUIT)
    transitions = []
    for event in events:
        result = step(state, [event], ctx)
        state = result.state
        transitions += result.transitions
    return state, transitions


def test_a_lamp_reporting_a_fault_code_is_in_fault_with_its_alert_open(ctx):
    failing, *others = ctx.circuit.lamp_ids
    state, transitions = run(ctx, merged(batch(ctx, NIGHT, lamps=[failing], fault="DRIVER_FAILURE"),
                                         batch(ctx, NIGHT, lamps=others)))
    health = circuit_health(state, ctx.circuit)
    assert health.faulty_lamp_ids == (failing,)
    [alert] = health.open_alerts
    raised = next(t for t in transitions if t.state is AlertState.RAISED)
    assert (alert.alert_id, alert.source_id, alert.rule_id, alert.severity, alert.raise_time) == (
        raised.alert_id, failing, "fault", Severity.MAJOR, NIGHT)
    assert health.lamp_count == len(ctx.circuit.lamp_ids)


def test_a_lamp_out_at_night_is_in_fault_once_its_alert_is_raised_and_not_after_it_clears(ctx):
    dark, *others = ctx.circuit.lamp_ids

    def at(i, watts):
        return merged(batch(ctx, NIGHT + i * FIVE, lamps=[dark], watts=watts),
                      batch(ctx, NIGHT + i * FIVE, lamps=others))

    once, _ = run(ctx, at(0, 0.0))
    assert circuit_health(once, ctx.circuit).faulty_lamp_ids == ()  # one report is not enough to alert
    twice, _ = run(ctx, at(1, 0.0), state=once)
    health = circuit_health(twice, ctx.circuit)
    assert health.faulty_lamp_ids == (dark,)
    assert [(a.rule_id, a.source_id, a.severity) for a in health.open_alerts] == [("lamp-out", dark, Severity.MINOR)]
    repaired, transitions = run(ctx, *(at(2 + i, None) for i in range(4)), state=twice)
    assert [t.rule_id for t in transitions if t.state is AlertState.CLEARED] == ["lamp-out"]
    assert circuit_health(repaired, ctx.circuit).faulty_lamp_ids == ()
    assert circuit_health(repaired, ctx.circuit).open_alerts == ()


def test_a_dark_circuit_names_its_lamps_in_fault_into_the_next_day_until_it_is_lit(ctx):
    dark, _ = run(ctx, *(batch(ctx, NIGHT + i * FIVE, watts=0.0) for i in range(3)))
    health = circuit_health(dark, ctx.circuit)
    assert health.faulty_lamp_ids == ctx.circuit.lamp_ids
    assert [(a.rule_id, a.source_id) for a in health.open_alerts] == [("circuit-dark", CIRCUIT)]
    # By day the lamps are switched off: nothing tells a dark lamp from a healthy one, and the
    # circuit-dark alert, which the day cannot judge, stays open with the lamps it listed.
    day, _ = run(ctx, batch(ctx, NEXT_NOON, on=False, dimming=0.0, watts=0.5), state=dark)
    assert circuit_health(day, ctx.circuit).faulty_lamp_ids == ctx.circuit.lamp_ids
    evening = NEXT_NOON + timedelta(hours=11)
    lit, transitions = run(ctx, *(batch(ctx, evening + i * FIVE) for i in range(4)), state=day)
    assert [t.rule_id for t in transitions if t.state is AlertState.CLEARED] == ["circuit-dark"]
    assert circuit_health(lit, ctx.circuit).faulty_lamp_ids == ()
    assert lit.dark_lamps == ()


def test_the_voltage_range_covers_the_lamps_that_measure_it(ctx):
    low, high, unmeasured, *rest = ctx.circuit.lamp_ids
    state, _ = run(ctx, merged(batch(ctx, NIGHT, lamps=[low], voltage=212.5),
                               batch(ctx, NIGHT, lamps=[high], voltage=236.0),
                               batch(ctx, NIGHT, lamps=[unmeasured], voltage=None),
                               batch(ctx, NIGHT, lamps=rest, voltage=230.0)))
    health = circuit_health(state, ctx.circuit)
    assert (health.min_voltage_v, health.max_voltage_v) == (212.5, 236.0)
    assert health.faulty_lamp_ids == ()
    unmeasured_only, _ = run(ctx, batch(ctx, NIGHT, voltage=None))
    assert circuit_health(unmeasured_only, ctx.circuit).min_voltage_v is None


def test_a_silent_lamp_has_its_data_gap_open_but_is_not_in_fault(ctx):
    quiet, *others = ctx.circuit.lamp_ids
    state, _ = run(ctx, batch(ctx, NIGHT), *(batch(ctx, NIGHT + i * FIVE, lamps=others) for i in range(1, 8)),
                   ClockTick(NIGHT + 8 * FIVE))
    health = circuit_health(state, ctx.circuit)
    assert [(a.rule_id, a.source_id) for a in health.open_alerts] == [("data-gap", quiet)]
    assert health.faulty_lamp_ids == ()


def test_voltage_fault_code_and_dark_lamps_round_trip_and_are_left_out_when_absent(ctx):
    failing, *others = ctx.circuit.lamp_ids
    faulty, _ = run(ctx, merged(batch(ctx, NIGHT, lamps=[failing], fault="DRIVER_FAILURE", voltage=None),
                                batch(ctx, NIGHT, lamps=others)))
    data = json.loads(json.dumps(faulty.to_dict()))
    assert CircuitState.from_dict(data) == faulty
    assert "voltage_v" not in data["lamps"][failing] and data["lamps"][failing]["fault_code"] == "DRIVER_FAILURE"
    assert data["lamps"][others[0]]["voltage_v"] == 225.0 and "fault_code" not in data["lamps"][others[0]]
    assert "dark_lamps" not in data
    dark, _ = run(ctx, *(batch(ctx, NIGHT + i * FIVE, watts=0.0) for i in range(3)))
    assert CircuitState.from_dict(json.loads(json.dumps(dark.to_dict()))).dark_lamps == ctx.circuit.lamp_ids


def test_the_wire_status_carries_each_lamps_voltage_and_fault_and_the_circuits_summary(ctx):
    failing, unmeasured, *others = ctx.circuit.lamp_ids
    state, _ = run(ctx, merged(batch(ctx, NIGHT, lamps=[failing], fault="DRIVER_FAILURE", voltage=205.0),
                               batch(ctx, NIGHT, lamps=[unmeasured], voltage=None),
                               batch(ctx, NIGHT, lamps=others)))
    message = circuit_status_to_pb(state, ctx.circuit)
    lamps = {lamp.lamp_id: lamp for lamp in message.lamps}
    assert (lamps[failing].fault_code, lamps[failing].voltage_v) == ("DRIVER_FAILURE", 205.0)
    assert not lamps[unmeasured].HasField("voltage_v") and lamps[unmeasured].fault_code == ""
    assert list(message.faulty_lamp_ids) == [failing] and message.lamp_count == len(ctx.circuit.lamp_ids)
    assert (message.min_voltage_v, message.max_voltage_v) == (205.0, 225.0)
    [alert] = message.open_alerts
    assert (alert.source_id, alert.rule_id, alert.severity) == (failing, "fault", alerts_pb2.SEVERITY_MAJOR)
    assert alert.raise_time.ToDatetime(tzinfo=UTC) == NIGHT
    assert message.change_time.ToDatetime(tzinfo=UTC) == NIGHT
