"""``madina service energy-processor`` and ``madina service energy-pv-processor``: the energy
domain's pure steps run by the entity-processor runner (:mod:`madina.streams.entities`).

Two processors, because the runner keeps one entity kind per processor (all inputs keyed and
partitioned by it) and a PV site is not a circuit:

- **circuits** (``energy-processor``): street-light telemetry batches, lighting commands and
  clock ticks, all keyed by circuit id, through ``domain.circuit.step``: lamp and circuit alerts
  (one ``circuit-dark`` alert listing the lamps, their ``lamp-out`` alerts suppressed), data gaps,
  command confirmations and ``command-timeout``; hourly and daily kWh, baseline, savings and CO2
  KPIs; the circuit's lamp states, lamps in fault, voltage range and open alerts on the compacted
  status topic.
- **PV sites** (``energy-pv-processor``): generation batches and clock ticks keyed by site id,
  through ``domain.pv``: underperformance against clear-sky expectation, data gaps, hourly KPIs.
- **districts** (``energy-district-processor``): the circuits' closed periods, which the circuit
  processor forwards keyed by district on ``energy.circuit-consumption.v1``, folded by
  ``domain.district.fold_district`` into district totals (a circuit cannot see its district).

Every KPI goes to ``kpis.v1`` (compacted: the latest per series, for dashboards) and to
``energy.consumption-history.v1`` (one key per period: the history the API serves and rebuilds
when it starts).

Alerts go out exactly once (the runner); reports the domain refuses are dead-lettered one by one
while the rest of their batch flows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from google.protobuf.message import Message

from madina.bus.alert_events import timestamp
from madina.bus.topics import KPIS, TopicSpec
from madina.contract import InvalidRecord, required_time
from madina.streams.entities import EntityProcessor, EntityRecord, Step, Ticks, processor_main
from madina_proto.energy.v1 import status_pb2, telemetry_pb2
from services.energy.convert import (
    alert_event,
    batch_from_pb,
    batch_to_pb,
    circuit_consumption_from_pb,
    circuit_consumption_to_pb,
    circuit_status_to_pb,
    command_from_pb,
    confirmation_to_pb,
    generation_from_pb,
    generation_to_pb,
    history_key,
    indicator_to_pb,
    kpi_to_pb,
)
from services.energy.domain.circuit import CircuitContext, CircuitState, ClockTick, Event, StepResult, step
from services.energy.domain.config import EnergyConfig
from services.energy.domain.district import DistrictState, fold_district
from services.energy.domain.kpis import LIGHTING_ENERGY_KWH, EnergyKpi
from services.energy.domain.network import Network
from services.energy.domain.pv import PvExpectation, SiteState, apply_generation, check_site_silence
from services.energy.domain.sun import SunCalendar
from services.energy.settings import EnergyProcessorSettings
from services.energy.topics import (
    ALL,
    CIRCUIT_CONSUMPTION,
    CIRCUIT_INPUTS,
    CIRCUIT_STATUS,
    CIRCUIT_TICKS,
    COMMAND_CONFIRMATIONS,
    CONSUMPTION_HISTORY,
    DISTRICT_INPUTS,
    LIGHTING_COMMANDS,
    SITE_INPUTS,
    SITE_TICKS,
    STREETLIGHT_TELEMETRY,
)

SOURCE = "energy-processor"
PV_SOURCE = "energy-pv-processor"
DISTRICT_SOURCE = "energy-district-processor"
# A circuit's status is re-published when a lamp switches or dims, else at most every 15 minutes of
# event time: a status record per telemetry record cost a sixth of the worker's throughput.
STATUS_EVERY_S = 900.0


def kpi_records(kpis: list[EnergyKpi]) -> list[tuple[TopicSpec, str, Message]]:
    """Each KPI as the latest of its series (``kpis.v1``) and as a period of its history."""
    records: list[tuple[TopicSpec, str, Message]] = []
    for kpi in kpis:
        records.append((KPIS, kpi.indicator_key, indicator_to_pb(kpi)))
        records.append((CONSUMPTION_HISTORY, history_key(kpi), kpi_to_pb(kpi)))
    return records


def published_kpis(kpis: list[EnergyKpi]) -> list[EnergyKpi]:
    """A lamp publishes its energy only: its baseline, savings and CO2 are its circuit's business
    (four series per lamp outnumbered the telemetry records coming in)."""
    return [kpi for kpi in kpis if kpi.entity_kind != "lamp" or kpi.kpi_id == LIGHTING_ENERGY_KWH]


def circuit_events(record: EntityRecord) -> list[Event]:
    """The domain events one record carries (InvalidRecord when the wire value holds none)."""
    if record.spec is STREETLIGHT_TELEMETRY:
        return [batch_from_pb(record.value)]
    if record.spec is LIGHTING_COMMANDS:
        return [command_from_pb(record.value)]
    return [ClockTick(required_time(record.value, "tick_time"))]


def circuit_stepper(
    network: Network, config: EnergyConfig, sun: SunCalendar
) -> Callable[[CircuitState, EntityRecord], Step[CircuitState]]:
    contexts: dict[str, CircuitContext] = {}
    published: dict[str, tuple[object, float]] = {}  # circuit -> (lamp switch states, watermark) last sent

    def status_due(state: CircuitState) -> bool:
        switches = tuple((lamp_id, lamp.on, lamp.dimming_pct) for lamp_id, lamp in state.lamps.items())
        moment = state.watermark.timestamp() if state.watermark is not None else 0.0
        last = published.get(state.circuit_id)
        if last is not None and last[0] == switches and moment - last[1] < STATUS_EVERY_S:
            return False
        published[state.circuit_id] = (switches, moment)
        return True

    def circuit_step(state: CircuitState, record: EntityRecord) -> Step[CircuitState]:
        circuit_id = record.entity_id
        if circuit_id not in network.circuits:
            raise InvalidRecord(f"circuit_id: unknown circuit {circuit_id[:100]!r}")
        ctx = contexts.get(circuit_id)
        if ctx is None:
            ctx = contexts[circuit_id] = CircuitContext.of(network, circuit_id, config, sun)
        result: StepResult = step(state, circuit_events(record), ctx)
        records = kpi_records(published_kpis(result.kpis))
        if result.kpis:
            circuit = network.circuits[circuit_id]
            district_key = f"{circuit.city}/{circuit.district}"
            records += [(CIRCUIT_CONSUMPTION, district_key, m) for m in circuit_consumption_to_pb(result.kpis)]
        records += [(COMMAND_CONFIRMATIONS, circuit_id, confirmation_to_pb(c)) for c in result.confirmations]
        # On an alert change too (a tick's data gap included): the status lists the open alerts.
        if result.transitions or (record.spec is STREETLIGHT_TELEMETRY and status_due(result.state)):
            records.append((CIRCUIT_STATUS, circuit_id, circuit_status_to_pb(result.state, ctx.circuit)))
        return Step(
            result.state,
            alerts=[alert_event(t, network) for t in result.transitions],
            records=records,
            rejected=[(f"{r.code}: {r.detail}", batch_to_pb(circuit_id, [r.reading])) for r in result.rejected],
        )

    return circuit_step


def circuit_processor(settings: EnergyProcessorSettings) -> EntityProcessor[CircuitState]:
    network = settings.network()

    def clock_ticks(now: datetime) -> Iterator[tuple[str, telemetry_pb2.CircuitClockTick]]:
        for circuit_id in network.circuits:
            yield circuit_id, telemetry_pb2.CircuitClockTick(circuit_id=circuit_id, tick_time=timestamp(now))

    return EntityProcessor(
        app_id="madina-energy-processor",
        domain="energy",
        source=SOURCE,
        inputs=CIRCUIT_INPUTS,
        outputs=(KPIS, CONSUMPTION_HISTORY, CIRCUIT_CONSUMPTION, COMMAND_CONFIRMATIONS, CIRCUIT_STATUS),
        step=circuit_stepper(network, settings.config(), SunCalendar()),
        new_state=CircuitState.new,
        state_to_dict=CircuitState.to_dict,
        state_from_dict=lambda data, _id: CircuitState.from_dict(data),
        ticks=Ticks(CIRCUIT_TICKS, settings.energy_tick_interval_s, clock_ticks),
        table="circuit-state",
    )


def site_stepper(
    network: Network, config: EnergyConfig, expectation: PvExpectation
) -> Callable[[SiteState, EntityRecord], Step[SiteState]]:
    def site_step(state: SiteState, record: EntityRecord) -> Step[SiteState]:
        site = network.pv_sites.get(record.entity_id)
        if site is None:
            raise InvalidRecord(f"site_id: unknown PV site {record.entity_id[:100]!r}")
        if record.spec is SITE_TICKS:
            result = check_site_silence(state, required_time(record.value, "tick_time"), site,
                                        config.lighting.gap_factor)
        else:
            readings = [generation_from_pb(m, f"reports[{i}].") for i, m in enumerate(record.value.reports)]
            result = apply_generation(state, readings, site, expectation, config)
        return Step(
            result.state,
            alerts=[alert_event(t, network) for t in result.transitions],
            records=kpi_records(result.kpis),
            rejected=[(reason, telemetry_pb2.GenerationObservedBatch(
                site_id=site.id, reports=[generation_to_pb(reading)])) for reading, reason in result.rejected],
        )

    return site_step


def pv_processor(settings: EnergyProcessorSettings) -> EntityProcessor[SiteState]:
    network = settings.network()
    config = settings.config()
    expectation = PvExpectation(config.pv)
    # pvlib and pandas take seconds to load and each site's day a pvlib call: done here, before the
    # worker starts, not on the first record inside its event loop (where /healthz would stall).
    today = datetime.now(UTC)
    for site in network.pv_sites.values():
        expectation.at(site, today)

    def clock_ticks(now: datetime) -> Iterator[tuple[str, telemetry_pb2.SiteClockTick]]:
        for site_id in network.pv_sites:
            yield site_id, telemetry_pb2.SiteClockTick(site_id=site_id, tick_time=timestamp(now))

    return EntityProcessor(
        app_id="madina-energy-pv-processor",
        domain="energy",
        source=PV_SOURCE,
        inputs=SITE_INPUTS,
        outputs=(KPIS, CONSUMPTION_HISTORY),
        step=site_stepper(network, config, expectation),
        new_state=SiteState.new,
        state_to_dict=SiteState.to_dict,
        state_from_dict=lambda data, _id: SiteState.from_dict(data),
        ticks=Ticks(SITE_TICKS, settings.energy_tick_interval_s, clock_ticks),
        table="site-state",
    )


def district_step(state: DistrictState, record: EntityRecord) -> Step[DistrictState]:
    kpis = circuit_consumption_from_pb(record.value)
    new_state, totals = fold_district(state, kpis)
    return Step(new_state, records=kpi_records(totals))


def _district_of(_spec: TopicSpec, message: status_pb2.CircuitConsumptionClosed) -> str:
    return f"{message.district.city_id}/{message.district.district_id}"


def district_processor(settings: EnergyProcessorSettings) -> EntityProcessor[DistrictState]:
    return EntityProcessor(
        app_id="madina-energy-district-processor",
        domain="energy",
        source=DISTRICT_SOURCE,
        inputs=DISTRICT_INPUTS,
        outputs=(KPIS, CONSUMPTION_HISTORY),
        step=district_step,
        new_state=DistrictState,
        state_to_dict=DistrictState.to_dict,
        state_from_dict=lambda data, _id: DistrictState.from_dict(data),
        entity_of=_district_of,
        table="district-state",
    )


def main() -> int:
    return processor_main(EnergyProcessorSettings, circuit_processor, ALL, source=SOURCE,
                          port_of=lambda settings: settings.energy_processor_port)


def pv_main() -> int:
    return processor_main(EnergyProcessorSettings, pv_processor, ALL, source=PV_SOURCE,
                          port_of=lambda settings: settings.energy_pv_processor_port)


def district_main() -> int:
    return processor_main(EnergyProcessorSettings, district_processor, ALL, source=DISTRICT_SOURCE,
                          port_of=lambda settings: settings.energy_district_processor_port)
