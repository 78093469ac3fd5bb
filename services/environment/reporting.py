"""What regulators and the public read about a station, in wire form: the station status's
NowCast and 24-hour AQI, yearly exceedances against their allowances and annual means, and the
KPIs on ``kpis.v1`` that the operations dashboard shows.

All of it is derived from the evaluator's :class:`~.domain.evaluator.StationState` (the pure
domain computes it; this module only maps it), so the processor, a replay or a test build the
same messages from the same state.

**Which AQI is "the AQI now".** Regulators publish the EPA NowCast for particles every hour
(AirNow and most agencies): it is ``StationStatus.nowcast_aqi`` and the KPI ``aqi-nowcast`` per
station (the dashboard shows the worst station per district). ``environment.aqi.v1`` keeps the
rolling-mean index it has always carried (every pollutant, published when it changes per
observation): its consumers read it as one series, and mixing a second method into the same
key would make the latest record depend on which one changed last. The 24-hour AQI of the
newest complete day is ``StationStatus.daily_aqi``.

**Exceedance KPIs** (``exceedances/<rule id>`` per station) are published when a station's
count or year changes, so a tile shows "n of N allowed" from the first closed period on; the band
level is 0 below the rule's warning fraction, 2 from it, 4 once the allowance is used up.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from google.protobuf.duration_pb2 import Duration

from madina.bus.alert_events import timestamp
from madina.bus.topics import KPIS, TopicSpec
from madina_proto.common.v1 import common_pb2
from madina_proto.environment.v1 import observations_pb2, station_pb2
from madina_proto.kpis.v1 import kpis_pb2
from services.environment.convert import aqi_event, district_of
from services.environment.domain.compliance import (
    DAY_PERIOD,
    AllowanceStatus,
    allowance_status,
    annual_means,
    local_day_bounds,
)
from services.environment.domain.evaluator import StationState
from services.environment.domain.hourly import hour_start
from services.environment.domain.measurands import MEASURANDS
from services.environment.domain.profiles import AnnualLimit, Rule
from services.environment.domain.stations import Station

AQI_BAND_LEVEL = {
    "Good": 0,
    "Moderate": 1,
    "Unhealthy for Sensitive Groups": 2,
    "Unhealthy": 3,
    "Very Unhealthy": 4,
    "Hazardous": 5,
}
AQI_KPI = "aqi"
NOWCAST_KPI = "aqi-nowcast"
EXCEEDANCES_KPI_PREFIX = "exceedances/"
ALLOWANCE_WARNING_BAND = 2
ALLOWANCE_BREACHED_BAND = 4


def nowcast_event(state: StationState, station: Station) -> observations_pb2.AirQualityIndexComputed | None:
    """The NowCast AQI, timed at the end of the newest complete clock hour behind it."""
    if state.nowcast_aqi is None or state.hours.newest is None:
        return None
    return aqi_event(state.nowcast_aqi, station, hour_start(state.hours.newest))


def daily_aqi_event(state: StationState, station: Station) -> observations_pb2.AirQualityIndexComputed | None:
    """The 24-hour AQI of the newest complete local day, timed at that day's end."""
    compliance = state.compliance
    if compliance.daily_aqi is None or compliance.daily_aqi_day is None:
        return None
    _, day_end = local_day_bounds(compliance.daily_aqi_day, ZoneInfo(station.timezone))
    return aqi_event(compliance.daily_aqi, station, day_end)


def exceedance_counts(
    state: StationState, station: Station, rules: Sequence[Rule]
) -> list[station_pb2.ExceedanceCount]:
    return [_exceedance_count(status) for status in allowance_status(state.compliance, rules, station)]


def _exceedance_count(status: AllowanceStatus) -> station_pb2.ExceedanceCount:
    period = Duration()
    period.FromSeconds(86_400 if status.period == DAY_PERIOD else 3_600)
    return station_pb2.ExceedanceCount(
        rule_id=status.rule_id,
        measurand=status.measurand,
        averaging_period=period,
        year=status.year,
        limit_value=status.limit_value,
        allowed_count=status.allowed,
        exceedance_count=status.count,
        remaining_count=status.remaining,
        breached=status.breached,
    )


def annual_mean_messages(
    state: StationState, station: Station, limits: Sequence[AnnualLimit]
) -> list[station_pb2.AnnualMean]:
    messages = []
    for row in annual_means(state.compliance, station, limits):
        message = station_pb2.AnnualMean(
            measurand=row.measurand,
            year=row.year,
            valid_hour_count=row.valid_hours,
            elapsed_hour_count=row.hours_elapsed,
            year_hour_count=row.hours_in_year,
            coverage_fraction=row.coverage,
            limit_id=row.limit_id or "",
            valid=row.valid,
        )
        if row.mean is not None:
            message.mean_value = row.mean
        if row.limit is not None:
            message.limit_value = row.limit
        if row.exceeds is not None:
            message.exceeds_limit = row.exceeds
        messages.append(message)
    return messages


def add_regulatory_status(
    status: station_pb2.StationStatus,
    state: StationState,
    station: Station,
    rules: Sequence[Rule],
    limits: Sequence[AnnualLimit],
) -> station_pb2.StationStatus:
    """``status`` with the NowCast and daily AQI, exceedance counts and annual means filled in."""
    nowcast = nowcast_event(state, station)
    if nowcast is not None:
        status.nowcast_aqi.CopyFrom(nowcast)
    daily = daily_aqi_event(state, station)
    if daily is not None:
        status.daily_aqi.CopyFrom(daily)
    status.exceedances.extend(exceedance_counts(state, station, rules))
    status.annual_means.extend(annual_mean_messages(state, station, limits))
    return status


def aqi_kpi(
    computed: observations_pb2.AirQualityIndexComputed,
    station: Station,
    kpi_id: str = AQI_KPI,
    display_name: str = "Air Quality Index (US EPA)",
) -> kpis_pb2.KpiObserved:
    return kpis_pb2.KpiObserved(
        domain="environment",
        kpi_id=kpi_id,
        display_name=display_name,
        district=district_of(station),
        entity=_entity(station),
        value=float(computed.aqi),
        band=computed.category,
        band_level=AQI_BAND_LEVEL.get(computed.category, 0),
        observe_time=computed.compute_time,
    )


def kpis_on_change(
    before: StationState, after: StationState, station: Station, rules: Sequence[Rule]
) -> list[tuple[TopicSpec, str, kpis_pb2.KpiObserved]]:
    """The NowCast KPI when its value changed, and the exceedance KPIs when a count or the year changed."""
    records: list[tuple[TopicSpec, str, kpis_pb2.KpiObserved]] = []
    nowcast = nowcast_event(after, station)
    previous = before.nowcast_aqi
    if nowcast is not None and (previous is None or previous.aqi != nowcast.aqi):
        kpi = aqi_kpi(nowcast, station, NOWCAST_KPI, "NowCast AQI (US EPA, PM2.5/PM10)")
        records.append((KPIS, f"{NOWCAST_KPI}/{station.id}", kpi))
    old, new = before.compliance, after.compliance
    if (old.year, old.exceedances) != (new.year, new.exceedances) and after.windows.max_event_time is not None:
        for status in allowance_status(new, rules, station):
            kpi = exceedance_kpi(status, _rule_of(rules, status.rule_id), station, after.windows.max_event_time)
            records.append((KPIS, f"{kpi.kpi_id}/{station.id}", kpi))
    return records


def exceedance_kpi(status: AllowanceStatus, rule: Rule, station: Station, at: datetime) -> kpis_pb2.KpiObserved:
    measurand = MEASURANDS[status.measurand]
    period = "1-day" if status.period == DAY_PERIOD else "1-hour"
    limit = f"{status.limit_value:g} {measurand.unit}".strip()
    profile = status.rule_id.split("/")[0]
    if status.breached:
        band_level = ALLOWANCE_BREACHED_BAND
    elif status.count > 0 and status.count >= rule.allowance_warning_at * status.allowed:
        band_level = ALLOWANCE_WARNING_BAND
    else:
        band_level = 0
    return kpis_pb2.KpiObserved(
        domain="environment",
        kpi_id=f"{EXCEEDANCES_KPI_PREFIX}{status.rule_id}",
        display_name=f"{measurand.label} {period} limit {limit} ({profile}): exceedances this year",
        district=district_of(station),
        entity=_entity(station),
        value=float(status.count),
        band=f"{status.count} of {status.allowed} allowed",
        band_level=band_level,
        observe_time=timestamp(at),
    )


def _rule_of(rules: Iterable[Rule], rule_id: str) -> Rule:
    return next(rule for rule in rules if rule.id == rule_id)


def _entity(station: Station) -> common_pb2.EntityRef:
    return common_pb2.EntityRef(domain="environment", kind="station", entity_id=station.id)
