"""The read RPCs' answers, built once as protobuf for gRPC and HTTP alike (HTTP sends MessageToDict)."""

from __future__ import annotations

from datetime import UTC, datetime

from madina.bus.alert_events import timestamp
from madina.inputs import echo
from madina_proto.energy.v1 import energy_service_pb2 as pb
from services.energy.api.publisher import Rejected
from services.energy.api.state import EnergyRuntime
from services.energy.domain.kpis import (
    DAY,
    HOUR,
    LIGHTING_BASELINE_KWH,
    LIGHTING_ENERGY_KWH,
    LIGHTING_SAVINGS_KWH,
    LIGHTING_SAVINGS_TCO2,
    PV_ENERGY_KWH,
    PV_EXPECTED_KWH,
    PV_PERFORMANCE_RATIO,
)

PERIODS = {pb.PERIOD_UNSPECIFIED: HOUR, pb.PERIOD_HOUR: HOUR, pb.PERIOD_DAY: DAY}
ENTITY_KINDS = ("lamp", "circuit", "district")
MAX_PAGE = 500


class NotFound(LookupError):
    """An id the network does not hold."""


def lamp_status(runtime: EnergyRuntime, lamp_id: str) -> pb.LampStatus:
    lamp = runtime.network.lamps.get(lamp_id)
    if lamp is None:
        raise NotFound(f"lamp_id: unknown lamp {echo(lamp_id)}")
    status = pb.LampStatus(
        lamp_id=lamp.id, circuit_id=lamp.circuit, cabinet_id=lamp.cabinet, city_id=lamp.city,
        district_id=lamp.district, rated_power_w=lamp.rated_power_w,
        active_alerts=runtime.alerts_about(lamp.id, lamp.circuit),
    )
    state = runtime.lamp_state(lamp_id)
    if state is not None:
        status.last_observe_time.CopyFrom(state.last_observe_time)
        status.on, status.dimming_pct, status.power_w = state.on, state.dimming_pct, state.power_w
        status.fault_code = state.fault_code
        if state.HasField("voltage_v"):
            status.voltage_v = state.voltage_v
    return status


def faults(runtime: EnergyRuntime, request: pb.ListFaultsRequest) -> pb.ListFaultsResponse:
    size = request.page_size or 100
    if not 0 < size <= MAX_PAGE:
        raise Rejected(f"page_size: 1..{MAX_PAGE}")
    try:
        first = int(request.page_token or "0")
    except ValueError:
        raise Rejected("page_token: not a token this service issued") from None
    found = runtime.faults(request.city_id, request.district_id)
    page = found[first : first + size]
    more = first + size < len(found)
    return pb.ListFaultsResponse(faults=page, next_page_token=str(first + size) if more else "")


def _in(moment: datetime, start: datetime | None, end: datetime | None) -> bool:
    return (start is None or moment >= start) and (end is None or moment < end)


def consumption(
    runtime: EnergyRuntime, kind: str, entity_id: str, period: int, start: datetime | None, end: datetime | None
) -> pb.GetConsumptionResponse:
    if kind not in ENTITY_KINDS:
        raise Rejected(f"entity_kind: expected one of {', '.join(ENTITY_KINDS)}")
    if not runtime.knows(kind, entity_id):
        raise NotFound(f"entity_id: unknown {kind} {echo(entity_id)}")
    name = PERIODS[period]  # type: ignore[index]
    columns = [runtime.periods(kpi, kind, entity_id, name) for kpi in
               (LIGHTING_ENERGY_KWH, LIGHTING_BASELINE_KWH, LIGHTING_SAVINGS_KWH, LIGHTING_SAVINGS_TCO2)]
    rows: dict[datetime, list[float]] = {}
    for column, series in enumerate(columns):
        for kpi in series:
            moment = kpi.observe_time.ToDatetime(tzinfo=UTC)
            rows.setdefault(moment, [0.0] * 4)[column] = kpi.value
    response = pb.GetConsumptionResponse(emission_factor_t_per_mwh=runtime.emission_factor_t_per_mwh)
    for moment, (energy, baseline, savings, co2) in sorted(rows.items()):
        if _in(moment, start, end):
            response.periods.append(pb.ConsumptionPeriod(
                period_start_time=timestamp(moment), energy_kwh=energy, baseline_energy_kwh=baseline,
                savings_kwh=savings, savings_co2_t=co2))
    return response


def generation(
    runtime: EnergyRuntime, site_id: str, period: int, start: datetime | None, end: datetime | None
) -> pb.GetGenerationResponse:
    if site_id not in runtime.network.pv_sites:
        raise NotFound(f"site_id: unknown PV site {echo(site_id)}")
    if PERIODS[period] != HOUR:  # type: ignore[index]
        raise Rejected("period: PV generation is published per hour")
    rows: dict[datetime, list[float]] = {}
    for column, kpi_id in enumerate((PV_ENERGY_KWH, PV_EXPECTED_KWH, PV_PERFORMANCE_RATIO)):
        for kpi in runtime.periods(kpi_id, "pv-site", site_id, HOUR):
            moment = kpi.observe_time.ToDatetime(tzinfo=UTC)
            rows.setdefault(moment, [0.0] * 3)[column] = kpi.value
    response = pb.GetGenerationResponse()
    for moment, (energy, expected, ratio) in sorted(rows.items()):
        if _in(moment, start, end):
            response.periods.append(pb.GenerationPeriod(
                period_start_time=timestamp(moment), energy_kwh=energy, expected_energy_kwh=expected,
                performance_ratio=ratio))
    return response
