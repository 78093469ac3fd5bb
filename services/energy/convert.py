"""Mapping between the energy service's wire messages (``madina.energy.v1``) and its pure domain values.

Inbound conversion is validation (through :mod:`madina.contract`): a wire value the domain cannot
hold raises :class:`~madina.contract.InvalidRecord` naming the field; the domain's own
plausibility rules (ranges, known ids) are applied by the evaluator and the APIs.
"""

from __future__ import annotations

from datetime import datetime

from madina.alerts import AlertTransition
from madina.bus.alert_events import timestamp, to_alert_event
from madina.contract import InvalidRecord, finite, optional_time, required_time
from madina.geo import load_cities
from madina_proto.alerts.v1 import alerts_pb2
from madina_proto.common.v1 import common_pb2
from madina_proto.energy.v1 import control_pb2, status_pb2, telemetry_pb2
from madina_proto.kpis.v1 import kpis_pb2
from services.energy.domain.circuit import CircuitState, TelemetryBatch
from services.energy.domain.dimming import CommandConfirmation, DimmingSchedule, LightingCommand, ScheduleStep
from services.energy.domain.health import circuit_health
from services.energy.domain.kpis import (
    DISPLAY_NAMES,
    LIGHTING_BASELINE_KWH,
    LIGHTING_ENERGY_KWH,
    LIGHTING_SAVINGS_KWH,
    LIGHTING_SAVINGS_TCO2,
    EnergyKpi,
)
from services.energy.domain.network import Circuit, Network
from services.energy.domain.telemetry import GenerationReading, LampTelemetry


def lamp_telemetry_from_pb(message: telemetry_pb2.StreetlightTelemetry, where: str = "") -> LampTelemetry:
    return LampTelemetry(
        lamp_id=message.lamp_id,
        observe_time=required_time(message, "observe_time", where),
        on=message.on,
        dimming_pct=message.dimming_pct,
        power_w=message.power_w,
        voltage_v=message.voltage_v if message.HasField("voltage_v") else None,
        energy_wh=message.energy_wh if message.HasField("energy_wh") else None,
        fault_code=message.fault_code,
    )


def lamp_telemetry_to_pb(reading: LampTelemetry) -> telemetry_pb2.StreetlightTelemetry:
    message = telemetry_pb2.StreetlightTelemetry(
        lamp_id=reading.lamp_id, on=reading.on, dimming_pct=reading.dimming_pct, power_w=reading.power_w,
        fault_code=reading.fault_code, observe_time=timestamp(reading.observe_time),
    )
    if reading.voltage_v is not None:
        message.voltage_v = reading.voltage_v
    if reading.energy_wh is not None:
        message.energy_wh = reading.energy_wh
    return message


def batch_from_pb(batch: telemetry_pb2.StreetlightTelemetryBatch, key: str = "") -> TelemetryBatch:
    """A telemetry record as the circuit evaluator takes it; the key must be the batch's circuit."""
    if key and key != batch.circuit_id:
        raise InvalidRecord(f"key {key[:200]!r} does not match circuit_id {batch.circuit_id[:200]!r}")
    return TelemetryBatch(
        batch.circuit_id,
        tuple(lamp_telemetry_from_pb(m, f"reports[{i}].") for i, m in enumerate(batch.reports)),
    )


def batch_to_pb(circuit_id: str, readings: list[LampTelemetry]) -> telemetry_pb2.StreetlightTelemetryBatch:
    return telemetry_pb2.StreetlightTelemetryBatch(
        circuit_id=circuit_id, reports=[lamp_telemetry_to_pb(r) for r in readings]
    )


def generation_from_pb(message: telemetry_pb2.GenerationObserved, where: str = "") -> GenerationReading:
    return GenerationReading(
        site_id=message.site_id,
        observe_time=required_time(message, "observe_time", where),
        power_kw=message.power_kw,
        energy_wh=message.energy_wh if message.HasField("energy_wh") else None,
        poa_irradiance_wm2=message.poa_irradiance_wm2 if message.HasField("poa_irradiance_wm2") else None,
    )


def generation_to_pb(reading: GenerationReading) -> telemetry_pb2.GenerationObserved:
    message = telemetry_pb2.GenerationObserved(
        site_id=reading.site_id, power_kw=reading.power_kw, observe_time=timestamp(reading.observe_time)
    )
    if reading.energy_wh is not None:
        message.energy_wh = reading.energy_wh
    if reading.poa_irradiance_wm2 is not None:
        message.poa_irradiance_wm2 = reading.poa_irradiance_wm2
    return message


def schedule_from_pb(message: control_pb2.DimmingSchedule, issuer: str) -> DimmingSchedule:
    """The issuer comes from the caller's authenticated identity, never from the request body."""
    return DimmingSchedule(
        schedule_id=message.schedule_id, city=message.city_id,
        steps=tuple(ScheduleStep(s.trigger, s.dimming_pct) for s in message.steps),
        issuer=issuer, reason=message.reason, district=message.district_id,
        circuit_ids=tuple(message.circuit_ids),
    )


def command_to_pb(command: LightingCommand) -> control_pb2.LightingCommand:
    return control_pb2.LightingCommand(
        command_id=command.command_id, circuit_id=command.circuit_id, dimming_pct=command.dimming_pct,
        effective_time=timestamp(command.effective_time), issue_time=timestamp(command.issue_time),
        issuer=command.issuer, reason=command.reason, schedule_id=command.schedule_id, trigger=command.trigger,
    )


def command_from_pb(message: control_pb2.LightingCommand, key: str = "") -> LightingCommand:
    if key and key != message.circuit_id:
        raise InvalidRecord(f"key {key[:200]!r} does not match circuit_id {message.circuit_id[:200]!r}")
    if not 0 <= message.dimming_pct <= 100:
        raise InvalidRecord(f"dimming_pct: {message.dimming_pct} outside 0..100")
    effective = required_time(message, "effective_time")
    issued: datetime = optional_time(message, "issue_time") or effective
    return LightingCommand(
        command_id=message.command_id, circuit_id=message.circuit_id, dimming_pct=message.dimming_pct,
        effective_time=effective, issue_time=issued, issuer=message.issuer, reason=message.reason,
        schedule_id=message.schedule_id, trigger=message.trigger,
    )


def confirmation_to_pb(confirmation: CommandConfirmation) -> control_pb2.LightingCommandConfirmed:
    return control_pb2.LightingCommandConfirmed(
        command_id=confirmation.command_id, circuit_id=confirmation.circuit_id,
        confirm_time=timestamp(confirmation.confirm_time), matched_lamp_count=confirmation.matched_lamps,
        late=confirmation.late,
    )


def circuit_status_to_pb(state: CircuitState, circuit: Circuit) -> status_pb2.CircuitStatusChanged:
    """The circuit's status for energy.circuit-status.v1: its reported lamps' last reports, and
    from the same state the lamps in fault, the voltage range and the open alerts."""
    health = circuit_health(state, circuit)
    message = status_pb2.CircuitStatusChanged(
        circuit_id=state.circuit_id, lamp_count=health.lamp_count, faulty_lamp_ids=health.faulty_lamp_ids)
    for lamp_id, lamp in sorted(state.lamps.items()):
        if lamp.last_time is None:
            continue
        lamp_state = message.lamps.add(
            lamp_id=lamp_id, last_observe_time=timestamp(lamp.last_time), on=lamp.on,
            dimming_pct=lamp.dimming_pct, power_w=lamp.power_w, fault_code=lamp.fault_code)
        if lamp.voltage_v is not None:
            lamp_state.voltage_v = lamp.voltage_v
    for alert in health.open_alerts:
        message.open_alerts.add(
            alert_id=alert.alert_id, source_id=alert.source_id, rule_id=alert.rule_id,
            severity=int(alert.severity),  # type: ignore[arg-type]
            raise_time=timestamp(alert.raise_time))
    if health.min_voltage_v is not None and health.max_voltage_v is not None:
        message.min_voltage_v, message.max_voltage_v = health.min_voltage_v, health.max_voltage_v
    if state.watermark is not None:
        message.change_time.CopyFrom(timestamp(state.watermark))
    return message


def district_pb(city_id: str, district_id: str) -> common_pb2.District:
    city = load_cities()[city_id]
    return common_pb2.District(city_id=city_id, district_id=district_id,
                               display_name=city.district(district_id).name)


def kpi_to_pb(kpi: EnergyKpi) -> kpis_pb2.KpiObserved:
    """A ``KpiObserved`` for ``energy.consumption-history.v1``, keyed by :func:`history_key`."""
    return _kpi_message(kpi, kpi.kpi_id, DISPLAY_NAMES[kpi.kpi_id])


def indicator_to_pb(kpi: EnergyKpi) -> kpis_pb2.KpiObserved:
    """A ``KpiObserved`` for ``kpis.v1``, keyed ``kpi.indicator_key``: the period is in its kpi id."""
    return _kpi_message(kpi, kpi.indicator_id, kpi.indicator_name)


def _kpi_message(kpi: EnergyKpi, kpi_id: str, display_name: str) -> kpis_pb2.KpiObserved:
    message = kpis_pb2.KpiObserved(
        domain="energy", kpi_id=kpi_id, display_name=display_name,
        district=common_pb2.District(city_id=kpi.city, district_id=kpi.district),
        value=kpi.value, unit=kpi.unit, observe_time=timestamp(kpi.period_start),
    )
    if kpi.entity_kind != "district":
        message.entity.CopyFrom(common_pb2.EntityRef(domain="energy", kind=kpi.entity_kind, entity_id=kpi.entity_id))
    return message


def history_key(kpi: EnergyKpi) -> str:
    """The ``energy.consumption-history.v1`` key: one per period, so compaction keeps every period."""
    return f"{kpi.kpi_id}/{kpi.scope}/{kpi.period_start.isoformat()}"


_CIRCUIT_COLUMNS = {
    LIGHTING_ENERGY_KWH: "energy_kwh", LIGHTING_BASELINE_KWH: "baseline_energy_kwh",
    LIGHTING_SAVINGS_KWH: "savings_kwh", LIGHTING_SAVINGS_TCO2: "savings_co2_t",
}


def circuit_consumption_to_pb(kpis: list[EnergyKpi]) -> list[status_pb2.CircuitConsumptionClosed]:
    """A circuit's closed-period KPIs of one step, one message per (period, start)."""
    periods: dict[tuple[str, datetime], status_pb2.CircuitConsumptionClosed] = {}
    for kpi in kpis:
        column = _CIRCUIT_COLUMNS.get(kpi.kpi_id)
        if kpi.entity_kind != "circuit" or column is None:
            continue
        message = periods.get((kpi.period, kpi.period_start))
        if message is None:
            message = periods[(kpi.period, kpi.period_start)] = status_pb2.CircuitConsumptionClosed(
                circuit_id=kpi.entity_id, district=common_pb2.District(city_id=kpi.city, district_id=kpi.district),
                period=kpi.period, period_start_time=timestamp(kpi.period_start))
        setattr(message, column, kpi.value)
    return list(periods.values())


def circuit_consumption_from_pb(message: status_pb2.CircuitConsumptionClosed) -> list[EnergyKpi]:
    """The circuit KPIs a ``CircuitConsumptionClosed`` carries (InvalidRecord when it holds none)."""
    if not message.circuit_id or not message.district.city_id or not message.district.district_id:
        raise InvalidRecord("circuit_id, district: required")
    if message.period not in ("hour", "day"):
        raise InvalidRecord(f"period: expected hour or day, got {message.period[:20]!r}")
    start = required_time(message, "period_start_time")
    return [EnergyKpi(kpi_id, "circuit", message.circuit_id, message.district.city_id,
                      message.district.district_id, message.period, start, finite(getattr(message, column), column))
            for kpi_id, column in _CIRCUIT_COLUMNS.items()]


def alert_event(transition: AlertTransition, network: Network) -> alerts_pb2.AlertEvent:
    """The wire form of an energy alert, placed at its lamp or PV site when it is about one."""
    location = None
    lamp = network.lamps.get(transition.source_id)
    site = network.pv_sites.get(transition.source_id)
    if lamp is not None:
        location = common_pb2.GeoPoint(latitude_deg=lamp.lat, longitude_deg=lamp.lon)
    elif site is not None:
        location = common_pb2.GeoPoint(latitude_deg=site.lat, longitude_deg=site.lon)
    return to_alert_event(transition, location=location)


