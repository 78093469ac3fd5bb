"""Wire <-> domain conversion of the energy contracts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from madina.alerts import AlertDetails, AlertState, AlertTransition, Severity
from madina.contract import InvalidRecord
from madina_proto.energy.v1 import control_pb2, telemetry_pb2
from services.energy import convert
from services.energy.domain import EnergyKpi, GenerationReading, LampTelemetry, LightingCommand

MOMENT = datetime(2024, 1, 15, 22, 0, tzinfo=UTC)


def test_lamp_telemetry_round_trips_including_absent_optionals():
    full = LampTelemetry("brk-sl-0001", MOMENT, True, 50.0, 18.0, 226.0, 1234.5, "DRIVER_FAILURE")
    bare = LampTelemetry("brk-sl-0002", MOMENT, False, 0.0, 0.7)
    batch = convert.batch_to_pb("brk-cab-01-c1", [full, bare])
    wire = telemetry_pb2.StreetlightTelemetryBatch.FromString(batch.SerializeToString())
    assert convert.batch_from_pb(wire, "brk-cab-01-c1").readings == (full, bare)


def test_batch_under_another_circuit_key_or_without_time_is_refused():
    batch = convert.batch_to_pb("brk-cab-01-c1", [LampTelemetry("brk-sl-0001", MOMENT, True, 50.0, 18.0)])
    with pytest.raises(InvalidRecord, match="key"):
        convert.batch_from_pb(batch, "brk-cab-01-c2")
    batch.reports[0].ClearField("observe_time")
    with pytest.raises(InvalidRecord, match=r"reports\[0\]\.observe_time"):
        convert.batch_from_pb(batch)


def test_generation_and_commands_round_trip():
    reading = GenerationReading("brk-pv-mairie", MOMENT, 12.5, 99.0, 640.0)
    assert convert.generation_from_pb(convert.generation_to_pb(reading)) == reading
    command = LightingCommand("c1", "brk-cab-01-c1", 50.0, MOMENT, MOMENT, "operator:amina", "plan", "s1", "23:00")
    assert convert.command_from_pb(convert.command_to_pb(command), "brk-cab-01-c1") == command
    bad = convert.command_to_pb(command)
    bad.dimming_pct = 150
    with pytest.raises(InvalidRecord, match="dimming_pct"):
        convert.command_from_pb(bad)


def test_schedule_takes_the_issuer_from_the_caller_not_the_body():
    message = control_pb2.DimmingSchedule(
        schedule_id="s1", city_id="berkane", district_id="centre-ville", reason="plan",
        steps=[control_pb2.ScheduleStep(trigger="sunset", dimming_pct=100)],
    )
    schedule = convert.schedule_from_pb(message, issuer="agency:onee")
    assert schedule.issuer == "agency:onee" and schedule.steps[0].trigger == "sunset"


def test_kpi_and_alert_events_carry_entity_and_labels(network):
    kpi = EnergyKpi("lighting-energy-kwh", "circuit", "brk-cab-01-c1", "berkane", "centre-ville", "hour", MOMENT, 1.5)
    message = convert.kpi_to_pb(kpi)
    assert message.entity.entity_id == "brk-cab-01-c1" and message.unit == "kWh"
    transition = AlertTransition(
        "a1", "energy", "brk-cab-01-c1", "circuit-dark", AlertState.RAISED, Severity.MAJOR, 1.0, 1.0, MOMENT, None,
        MOMENT, 1, "dark", AlertDetails(category="circuit-dark", source_kind="circuit", city_id="berkane",
                                        district_id="centre-ville", labels={"lamp_ids": "brk-sl-0001,brk-sl-0002"}),
    )
    event = convert.alert_event(transition, network)
    assert event.source.kind == "circuit" and event.labels["lamp_ids"].startswith("brk-sl-0001")
    assert event.district.district_id == "centre-ville"


def test_pure_domain_imports_no_transport():
    import subprocess
    import sys

    code = (
        "import sys, services.energy.domain\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('google', 'grpc', 'faust', 'aiokafka', 'fastapi', 'madina_proto')]\n"
        "print(','.join(sorted(bad)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
