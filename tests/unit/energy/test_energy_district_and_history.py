"""District totals and the consumption history: what the circuit processor forwards, what the
district stage adds up, and what the API keeps of the history topic."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from madina.bus.topics import KPIS
from madina.contract import InvalidRecord
from madina.streams.entities import EntityRecord
from madina_proto.energy.v1 import status_pb2
from services.energy.api.state import EnergyRuntime
from services.energy.convert import batch_to_pb, circuit_consumption_from_pb, circuit_consumption_to_pb, kpi_to_pb
from services.energy.domain.district import DistrictState
from services.energy.domain.kpis import EnergyKpi
from services.energy.domain.network import load_network
from services.energy.processor.app import circuit_processor, district_step, kpi_records
from services.energy.settings import EnergyProcessorSettings, EnergySettings
from services.energy.simulator import LightingWorld
from services.energy.topics import CIRCUIT_CONSUMPTION, CONSUMPTION_HISTORY, STREETLIGHT_TELEMETRY
from services.operations.api.kpis import check_kpi

CIRCUITS = ("cas-cab-01-c1", "cas-cab-01-c2")  # both in casablanca/casa-port
DISTRICT = "casablanca/casa-port"
EVENING = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)


def _a_night_of_two_circuits() -> list[tuple[object, str, object]]:
    """Every record the circuit processor publishes for two circuits over three evening hours."""
    network = load_network(serving=["casablanca"])
    processor = circuit_processor(EnergyProcessorSettings(cities=["casablanca"]))
    world = LightingWorld(network, [network.circuits[c] for c in CIRCUITS], random.Random(3), failures=False)
    states = {c: processor.new_state(c) for c in CIRCUITS}
    out = []
    moment = EVENING
    while moment < EVENING + timedelta(hours=3):
        for circuit in world.circuits:
            batch = batch_to_pb(circuit.id, world.circuit_reports(circuit, moment))
            step = processor.step(states[circuit.id], EntityRecord(circuit.id, STREETLIGHT_TELEMETRY, batch, moment))
            states[circuit.id] = step.state
            out += step.records
        moment += timedelta(minutes=5)
    return out


@pytest.fixture(scope="module")
def night() -> list[tuple[object, str, object]]:
    return _a_night_of_two_circuits()


def test_circuit_processor_forwards_closed_hours_keyed_by_district(night) -> None:
    forwarded = [(key, m) for spec, key, m in night if spec is CIRCUIT_CONSUMPTION]
    assert forwarded and {key for key, _ in forwarded} == {DISTRICT}
    assert {m.circuit_id for _, m in forwarded} == set(CIRCUITS)
    assert all(m.period == "hour" and m.energy_kwh > 0 and m.baseline_energy_kwh > m.energy_kwh
               for _, m in forwarded)


def test_each_lamp_publishes_its_hourly_energy_on_kpis_and_in_the_history(night, network) -> None:
    lamp_kpis = [(spec, key) for spec, key, m in night
                 if m.DESCRIPTOR.name == "KpiObserved" and m.entity.kind == "lamp"]
    latest = {key for spec, key in lamp_kpis if spec is KPIS}
    history = {key for spec, key in lamp_kpis if spec is CONSUMPTION_HISTORY}
    lamps = {lamp for c in CIRCUITS for lamp in network.circuits[c].lamp_ids}
    assert latest == {f"lighting-energy-kwh-hour/{lamp}" for lamp in lamps}
    # History has one key per lamp and hour (several hours closed), so compaction keeps them all.
    assert len(history) > len(latest) and all(key.startswith("lighting-energy-kwh/lamp:") for key in history)


def test_every_kpi_on_kpis_is_keyed_as_its_contract_says(night) -> None:
    """``<kpi_id>/<entity id>`` (or ``<city>/<district>``), as the operations board checks it, and the
    period in the kpi id, so a series' hourly and daily values never share a key."""
    on_board = [(key, m) for spec, key, m in night if spec is KPIS]
    assert {m.entity.kind for _, m in on_board} == {"lamp", "circuit"}
    for key, message in on_board:
        assert check_kpi(key, message) is message
        assert message.kpi_id.endswith("-hour") and message.display_name.endswith("(hourly)")
    daily = EnergyKpi("lighting-energy-kwh", "district", DISTRICT, "casablanca", "casa-port", "day", EVENING, 1.0)
    [(_, key, message)] = [r for r in kpi_records([daily]) if r[0] is KPIS]
    assert key == f"lighting-energy-kwh-day/{DISTRICT}" and check_kpi(key, message) is message
    assert not message.HasField("entity")


def test_district_stage_sums_its_circuits_and_a_replayed_circuit_hour_does_not_double_count(night) -> None:
    forwarded = [m for spec, _, m in night if spec is CIRCUIT_CONSUMPTION]
    state = DistrictState(DISTRICT)
    totals: dict[str, float] = {}
    for message in [*forwarded, *forwarded[:3]]:  # the first three again, as a replay would
        step = district_step(state, EntityRecord(DISTRICT, CIRCUIT_CONSUMPTION, message, EVENING))
        state = step.state
        totals.update({key: m.value for spec, key, m in step.records if spec is CONSUMPTION_HISTORY})
    expected: dict[str, float] = defaultdict(float)
    for message in forwarded:
        start = message.period_start_time.ToDatetime(tzinfo=UTC).isoformat()
        expected[f"lighting-energy-kwh/district:{DISTRICT}:hour/{start}"] += message.energy_kwh
    energy = {key: value for key, value in totals.items() if key.startswith("lighting-energy-kwh/")}
    assert energy == pytest.approx(dict(expected))


def test_circuit_consumption_round_trips_and_a_bad_period_is_refused() -> None:
    start = datetime(2026, 11, 20, 18, tzinfo=UTC)
    kpis = [EnergyKpi(kpi_id, "circuit", "cas-cab-01-c1", "casablanca", "casa-port", "hour", start, value)
            for kpi_id, value in (("lighting-energy-kwh", 1.5), ("lighting-baseline-kwh", 4.0),
                                  ("lighting-savings-kwh", 2.5), ("lighting-savings-tco2", 0.00165))]
    [message] = circuit_consumption_to_pb(kpis)
    assert circuit_consumption_from_pb(message) == kpis
    with pytest.raises(InvalidRecord, match="period"):
        circuit_consumption_from_pb(status_pb2.CircuitConsumptionClosed(
            circuit_id="c", district=message.district, period="week", period_start_time=message.period_start_time))


def test_api_history_keeps_every_period_in_order_and_a_revised_period_replaces_its_value(network, tmp_path) -> None:
    (tmp_path / "credentials.yaml").write_text("{}\n")
    settings = EnergySettings(cities=["casablanca"], credentials_file=tmp_path / "credentials.yaml", grpc_insecure=True)
    runtime = EnergyRuntime(settings=settings, network=network,
                            credentials=None, producer=None)  # type: ignore[arg-type]
    hours = [datetime(2026, 11, 20, h, tzinfo=UTC) for h in (20, 18, 19)]  # from different partitions
    for value, hour in enumerate(hours):
        kpi = EnergyKpi("lighting-energy-kwh", "district", DISTRICT, "casablanca", "casa-port", "hour", hour, value)
        for _spec, key, message in kpi_records([kpi]):
            if _spec is CONSUMPTION_HISTORY:
                runtime._on_kpi(key, message)
    revised = EnergyKpi("lighting-energy-kwh", "district", DISTRICT, "casablanca", "casa-port", "hour", hours[1], 9.0)
    runtime._on_kpi(f"lighting-energy-kwh/{revised.scope}/{hours[1].isoformat()}", kpi_to_pb(revised))
    served = runtime.periods("lighting-energy-kwh", "district", DISTRICT, "hour")
    assert [(k.observe_time.ToDatetime(tzinfo=UTC).hour, k.value) for k in served] == [(18, 9.0), (19, 2.0), (20, 0.0)]
    assert runtime.knows("district", DISTRICT) and not runtime.knows("district", "casablanca/atlantis")
    assert runtime.knows("lamp", "cas-sl-0001") and not runtime.knows("circuit", DISTRICT)
