"""Calendar-year compliance: exceedances against yearly allowances, daily and annual means.

EU limit values are not breached by one bad hour or day: each allows a number of exceedances
per calendar year (Directive 2008/50/EC Annex XI B: PM10 1 day 50 µg/m³ 35 times, NO2 1 hour
200 µg/m³ 18 times, SO2 1 hour 350 µg/m³ 24 times and 1 day 125 µg/m³ 3 times; Directive (EU)
2024/2881 Annex I Section 1 Table 1 from 2030: PM2.5 and PM10 1 day 25 and 45 µg/m³, NO2 and
SO2 1 day 50 µg/m³ and CO 1 day 4 mg/m³ 18 times each, NO2 and SO2 1 hour 200 and 350 µg/m³
3 times). A rule carries its allowance as ``allowed_exceedances`` (see :mod:`.profiles`).

**What is counted.** Periods are *closed* once the station's newest event time is past their end
by the allowed lateness (no sample can change them after that, since later ones are refused):

* a clock hour with a valid hourly mean (:mod:`.hourly`) counts one exceedance for each 1-hour
  rule whose limit value (the mildest level) it is above;
* a local calendar day (the station's time zone; 23 or 25 hours across a DST change) has a valid
  daily mean when 75 % of its hours hold a valid hourly value (18 of 24, Annex XI A of
  2008/50/EC), and counts one exceedance for each 1-day rule it is above. A day without enough
  hours is *insufficient data*: reported with ``mean`` ``None``, never counted.

Each period is closed exactly once (``closed_hour``, ``closed_day``), so replaying records can
never count twice. Counts are kept per local calendar year and start again at 0 on 1 January.

**Alerts.** Per station, rule and year, two alerts with deterministic ids
(``alert_id(domain, station, "<rule>/allowance-warning", <local 1 Jan of the year>)``):
``allowance-warning`` (WARNING) once ``allowance_warning_at`` of the allowance is used, and
``allowance-exceeded`` (MAJOR) once the count is above the allowance, i.e. the limit value is
breached for the year. They are RAISED once and CLEARED when the year ends (the first period of
the next year is closed); the count itself is in the station's status, not in UPDATED floods.

**Annual means** are the mean of the year's valid hourly values, with their coverage; the EU asks
90 % of the year's hours for a valid annual mean (Annex XI A of 2008/50/EC). Kept for the
current and the previous year.

**Daily AQI.** The EPA daily (24-hour) PM AQI is computed from the newest closed day's valid
PM2.5 and PM10 daily means, once that day is complete.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from madina.alerts import AlertDetails, AlertState, AlertTransition, Severity, alert_id
from madina.alerts.timeutil import time_from_text, time_to_text
from services.environment.domain import aqi as aqi_inputs
from services.environment.domain.aqi import AqiResult, compute_aqi
from services.environment.domain.hourly import HourlyStore, hour_index, hour_start, quarters_needed
from services.environment.domain.measurands import MEASURANDS, StationKind, format_value
from services.environment.domain.profiles import AnnualLimit, Rule
from services.environment.domain.stations import Station

DOMAIN = "environment"
HOUR_PERIOD = "hour"
DAY_PERIOD = "day"
WARNING_SUFFIX = "allowance-warning"
EXCEEDED_SUFFIX = "allowance-exceeded"
VALID_DAY_FRACTION = 0.75
AIR_MEASURANDS = tuple(name for name, m in MEASURANDS.items() if m.kind is StationKind.AIR)
_DAILY_AQI_INPUTS = {"pm25_ugm3": aqi_inputs.PM25_24H, "pm10_ugm3": aqi_inputs.PM10_24H}


def period_of(rule: Rule) -> str | None:
    """``"hour"`` or ``"day"`` for a rule whose exceedances are counted, else ``None``."""
    if rule.allowed_exceedances is None:
        return None
    return HOUR_PERIOD if rule.window_hours == 1 else DAY_PERIOD


@dataclass(frozen=True)
class DailyMean:
    """A closed local day's mean of one measurand; ``mean`` is ``None`` for insufficient data."""

    day: date
    mean: float | None
    valid_hours: int
    hours_in_day: int

    def to_dict(self) -> dict[str, Any]:
        return {"day": self.day.isoformat(), "mean": self.mean, "valid_hours": self.valid_hours,
                "hours_in_day": self.hours_in_day}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DailyMean:
        return cls(date.fromisoformat(data["day"]), data.get("mean"), int(data["valid_hours"]),
                   int(data["hours_in_day"]))


@dataclass(frozen=True)
class AllowanceAlert:
    """An open allowance alert: enough to emit its CLEARED at the end of the year."""

    alert_id: str
    rule_id: str
    year: int
    severity: Severity
    threshold: float
    raise_time: datetime
    revision: int
    count: int

    def to_dict(self) -> dict[str, Any]:
        return {"alert_id": self.alert_id, "rule_id": self.rule_id, "year": self.year,
                "severity": self.severity.name, "threshold": self.threshold,
                "raise_time": time_to_text(self.raise_time), "revision": self.revision, "count": self.count}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AllowanceAlert:
        raised = time_from_text(data["raise_time"])
        assert raised is not None
        return cls(data["alert_id"], data["rule_id"], int(data["year"]), Severity[data["severity"]],
                   float(data["threshold"]), raised, int(data["revision"]), int(data["count"]))


@dataclass(frozen=True)
class ComplianceState:
    """The station's calendar-year accounting; JSON-safe via ``to_dict``.

    ``exceedances`` and ``annual`` are keyed ``"<year>/<rule id>"`` and ``"<year>/<measurand>"``
    and hold the current and the previous year; ``annual`` values are ``[sum, valid hours]``.
    """

    closed_hour: int | None = None
    closed_day: date | None = None
    year: int | None = None
    exceedances: Mapping[str, int] = field(default_factory=dict)
    annual: Mapping[str, tuple[float, int]] = field(default_factory=dict)
    daily: Mapping[str, DailyMean] = field(default_factory=dict)
    daily_aqi: AqiResult | None = None
    daily_aqi_day: date | None = None
    alerts: Mapping[str, AllowanceAlert] = field(default_factory=dict)

    def count(self, rule_id: str, year: int) -> int:
        return self.exceedances.get(f"{year}/{rule_id}", 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "closed_hour": self.closed_hour,
            "closed_day": self.closed_day.isoformat() if self.closed_day else None,
            "year": self.year,
            "exceedances": dict(sorted(self.exceedances.items())),
            "annual": {key: [total, hours] for key, (total, hours) in sorted(self.annual.items())},
            "daily": {m: d.to_dict() for m, d in sorted(self.daily.items())},
            "daily_aqi": self.daily_aqi.to_dict() if self.daily_aqi else None,
            "daily_aqi_day": self.daily_aqi_day.isoformat() if self.daily_aqi_day else None,
            "alerts": {key: a.to_dict() for key, a in sorted(self.alerts.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ComplianceState:
        if not data:
            return cls()
        closed_day = data.get("closed_day")
        aqi_day = data.get("daily_aqi_day")
        return cls(
            closed_hour=data.get("closed_hour"),
            closed_day=date.fromisoformat(closed_day) if closed_day else None,
            year=data.get("year"),
            exceedances={k: int(v) for k, v in data.get("exceedances", {}).items()},
            annual={k: (float(v[0]), int(v[1])) for k, v in data.get("annual", {}).items()},
            daily={m: DailyMean.from_dict(d) for m, d in data.get("daily", {}).items()},
            daily_aqi=AqiResult.from_dict(data["daily_aqi"]) if data.get("daily_aqi") else None,
            daily_aqi_day=date.fromisoformat(aqi_day) if aqi_day else None,
            alerts={k: AllowanceAlert.from_dict(a) for k, a in data.get("alerts", {}).items()},
        )


def local_day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """UTC start and end of a local calendar day (23 or 25 hours long across a DST change)."""
    start = datetime.combine(day, time(), zone)
    end = datetime.combine(day + timedelta(days=1), time(), zone)
    return start, end


def year_start(year: int, zone: ZoneInfo) -> datetime:
    """Local midnight of 1 January, the instant every allowance of that year is counted from."""
    return datetime.combine(date(year, 1, 1), time(), zone)


def close_periods(
    state: ComplianceState,
    hours: HourlyStore,
    rules: Sequence[Rule],
    station: Station,
    newest: datetime,
    lateness: timedelta,
    details: Callable[[Rule], AlertDetails] = lambda rule: AlertDetails(),
) -> tuple[ComplianceState, list[AlertTransition]]:
    """Close every hour and local day that ended ``lateness`` before ``newest``; count and alert.

    ``rules`` may be every rule of the station: only those with ``allowed_exceedances`` count.
    Call it *before* folding a sample that moves ``hours`` on (which may prune old hours).
    """
    zone = ZoneInfo(station.timezone)
    cutoff = newest - lateness
    closable_hour = hour_index(cutoff) - 1
    last_day = cutoff.astimezone(zone).date() - timedelta(days=1)
    quorum = quarters_needed(station.reporting_interval)
    counted = [(rule, period_of(rule)) for rule in rules if period_of(rule) is not None]
    # Hours and days closed in the order they end (an hour before the day ending with it), so
    # the year rolls over exactly once, at the first period of the new year.
    work: list[tuple[datetime, int, Any]] = []
    for index in hours.indices():
        if (state.closed_hour is None or index > state.closed_hour) and index <= closable_hour:
            work.append((hour_start(index + 1), 0, index))
    days = {hour_start(i).astimezone(zone).date() for i in hours.indices()}
    for day in sorted(days):
        if (state.closed_day is None or day > state.closed_day) and day <= last_day:
            work.append((local_day_bounds(day, zone)[1], 1, day))
    work.sort(key=lambda item: (item[0], item[1]))

    run = _Run(state, station, zone, details, {rule.id: rule for rule, _ in counted})
    for _, kind, period in work:
        if kind == 0:
            run.close_hour(period, hours, quorum, [r for r, p in counted if p == HOUR_PERIOD])
        else:
            run.close_day(period, hours, quorum, [r for r, p in counted if p == DAY_PERIOD])
    closed_hour = closable_hour if state.closed_hour is None else max(state.closed_hour, closable_hour)
    closed_day = last_day if state.closed_day is None else max(state.closed_day, last_day)
    return run.finish(closed_hour, closed_day), run.transitions


class _Run:
    """Mutable working copy of a :class:`ComplianceState` during one :func:`close_periods`."""

    def __init__(self, state: ComplianceState, station: Station, zone: ZoneInfo,
                 details: Callable[[Rule], AlertDetails], rules_by_id: Mapping[str, Rule]) -> None:
        self.state = state
        self.rules_by_id = rules_by_id
        self.station = station
        self.zone = zone
        self.details = details
        self.year = state.year
        self.exceedances = dict(state.exceedances)
        self.annual = dict(state.annual)
        self.daily = dict(state.daily)
        self.daily_aqi = state.daily_aqi
        self.daily_aqi_day = state.daily_aqi_day
        self.alerts = dict(state.alerts)
        self.transitions: list[AlertTransition] = []

    def close_hour(self, index: int, hours: HourlyStore, quorum: int, rules: Sequence[Rule]) -> None:
        start = hour_start(index)
        year = start.astimezone(self.zone).year
        self._roll(year)
        for measurand in AIR_MEASURANDS:
            mean = hours.mean(measurand, index, quorum)
            if mean is None:
                continue
            key = f"{year}/{measurand}"
            total, count = self.annual.get(key, (0.0, 0))
            self.annual[key] = (total + mean, count + 1)
            for rule in rules:
                if rule.measurand == measurand and mean > (rule.limit_value or 0.0):
                    self._exceeded(rule, year, start + timedelta(hours=1), mean)

    def close_day(self, day: date, hours: HourlyStore, quorum: int, rules: Sequence[Rule]) -> None:
        start, end = local_day_bounds(day, self.zone)
        self._roll(day.year)
        first, last = hour_index(start), hour_index(end - timedelta(microseconds=1))
        needed_hours = last - first + 1
        aqi_means: dict[str, float] = {}
        for measurand in AIR_MEASURANDS:
            values = [v for v in hours.means(measurand, range(first, last + 1), quorum) if v is not None]
            if not values:
                continue
            valid = len(values) >= math.ceil(VALID_DAY_FRACTION * needed_hours)
            mean = math.fsum(values) / len(values) if valid else None
            self.daily[measurand] = DailyMean(day, mean, len(values), needed_hours)
            if mean is None:
                continue
            if measurand in _DAILY_AQI_INPUTS:
                aqi_means[_DAILY_AQI_INPUTS[measurand]] = mean
            for rule in rules:
                if rule.measurand == measurand and mean > (rule.limit_value or 0.0):
                    self._exceeded(rule, day.year, end.astimezone(UTC), mean)
        result = compute_aqi(aqi_means)
        if result is not None:
            self.daily_aqi, self.daily_aqi_day = result, day

    def finish(self, closed_hour: int, closed_day: date) -> ComplianceState:
        return replace(
            self.state,
            closed_hour=closed_hour,
            closed_day=closed_day,
            year=self.year,
            exceedances=self.exceedances,
            annual=self.annual,
            daily=self.daily,
            daily_aqi=self.daily_aqi,
            daily_aqi_day=self.daily_aqi_day,
            alerts=self.alerts,
        )

    def _roll(self, year: int) -> None:
        if self.year is not None and year <= self.year:
            return
        self.year = year
        boundary = year_start(year, self.zone).astimezone(UTC)
        for key, alert in sorted(self.alerts.items()):
            if alert.year >= year:
                continue
            del self.alerts[key]
            final = self.exceedances.get(f"{alert.year}/{alert.rule_id.rsplit('/', 1)[0]}", alert.count)
            self.transitions.append(self._transition(
                alert, AlertState.CLEARED, boundary, final,
                f"{alert.year} is over: exceedance count starts again at 0 for {year}", clear_time=boundary,
            ))
        keep = (str(year), str(year - 1))
        self.exceedances = {k: v for k, v in self.exceedances.items() if k.split("/", 1)[0] in keep}
        self.annual = {k: v for k, v in self.annual.items() if k.split("/", 1)[0] in keep}

    def _exceeded(self, rule: Rule, year: int, at: datetime, value: float) -> None:
        key = f"{year}/{rule.id}"
        count = self.exceedances.get(key, 0) + 1
        self.exceedances[key] = count
        allowed = rule.allowed_exceedances
        assert allowed is not None
        warn_at = max(1, math.ceil(rule.allowance_warning_at * allowed))
        if count >= warn_at:
            self._raise(rule, WARNING_SUFFIX, Severity.WARNING, float(warn_at), year, at, count)
        if count > allowed:
            self._raise(rule, EXCEEDED_SUFFIX, Severity.MAJOR, float(allowed), year, at, count)

    def _raise(self, rule: Rule, suffix: str, severity: Severity, threshold: float, year: int,
               at: datetime, count: int) -> None:
        rule_id = f"{rule.id}/{suffix}"
        if rule_id in self.alerts:
            return
        alert = AllowanceAlert(
            alert_id=alert_id(DOMAIN, self.station.id, rule_id, year_start(year, self.zone)),
            rule_id=rule_id,
            year=year,
            severity=severity,
            threshold=threshold,
            raise_time=at,
            revision=0,
            count=count,
        )
        self.alerts[rule_id] = alert
        self.transitions.append(self._transition(alert, AlertState.RAISED, at, count, _message(rule, count, year)))
        self.alerts[rule_id] = replace(alert, revision=1)

    def _transition(self, alert: AllowanceAlert, state: AlertState, at: datetime, count: int, message: str,
                    clear_time: datetime | None = None) -> AlertTransition:
        base_rule = alert.rule_id.rsplit("/", 1)[0]
        details = self.details_for(base_rule).refine({"year": str(alert.year)}, unit="exceedances")
        return AlertTransition(
            alert_id=alert.alert_id,
            domain=DOMAIN,
            source_id=self.station.id,
            rule_id=alert.rule_id,
            state=state,
            severity=alert.severity,
            observed_value=float(count),
            threshold=alert.threshold,
            raise_time=alert.raise_time,
            clear_time=clear_time,
            event_time=at,
            revision=alert.revision + 1,
            message=message,
            details=details,
        )

    def details_for(self, rule_id: str) -> AlertDetails:
        rule = self.rules_by_id.get(rule_id)
        if rule is None:  # the rule was withdrawn during the year; its alert still closes
            return self.station.alert_details().refine(category="air-quality")
        return self.details(rule)


def _message(rule: Rule, count: int, year: int) -> str:
    allowed = rule.allowed_exceedances
    assert allowed is not None and rule.limit_value is not None
    label = MEASURANDS[rule.measurand].label
    period = "hourly" if period_of(rule) == HOUR_PERIOD else "daily"
    limit = format_value(rule.measurand, rule.limit_value)
    if count > allowed:
        return (f"{label} {period} limit value {limit} exceeded {count} times in {year}, "
                f"more than the {allowed} allowed: limit value breached for the year")
    return (f"{label} {period} limit value {limit} exceeded {count} of {allowed} allowed times in {year} "
            f"({allowed - count} left)")


@dataclass(frozen=True)
class AllowanceStatus:
    """Where one station stands against one rule's yearly allowance (for status and KPIs)."""

    rule_id: str
    measurand: str
    period: str
    """``"hour"`` or ``"day"``: what one exceedance is."""
    year: int
    limit_value: float
    allowed: int
    count: int
    remaining: int
    """``allowed - count``: exceedances left before the limit value is breached for the year (< 0 once breached)."""
    breached: bool


@dataclass(frozen=True)
class AnnualMean:
    """A calendar year's mean of one measurand from its valid hourly values, with its coverage."""

    measurand: str
    year: int
    mean: float | None
    valid_hours: int
    hours_elapsed: int
    """Hours of the year closed so far (all of them once the year is over)."""
    hours_in_year: int
    coverage: float
    """``valid_hours / hours_in_year``: what decides validity once the year is complete."""
    limit_id: str | None = None
    limit: float | None = None
    valid: bool = False
    """Coverage reaches the limit's ``min_coverage`` (so only a complete, well-covered year is valid)."""
    exceeds: bool | None = None
    """``mean > limit`` on a valid mean; ``None`` without a limit or a valid mean."""


def allowance_status(
    state: ComplianceState, rules: Sequence[Rule], station: Station, at: datetime | None = None
) -> list[AllowanceStatus]:
    """Each counted rule's exceedances this year (the year of ``at``, else of the newest closed period)."""
    year = _status_year(state, station, at)
    if year is None:
        return []
    statuses: list[AllowanceStatus] = []
    for rule in rules:
        period = period_of(rule)
        if period is None or rule.measurand not in station.measurands:
            continue
        assert rule.allowed_exceedances is not None and rule.limit_value is not None
        count = state.count(rule.id, year)
        statuses.append(AllowanceStatus(
            rule_id=rule.id,
            measurand=rule.measurand,
            period=period,
            year=year,
            limit_value=rule.limit_value,
            allowed=rule.allowed_exceedances,
            count=count,
            remaining=rule.allowed_exceedances - count,
            breached=count > rule.allowed_exceedances,
        ))
    return statuses


def annual_means(
    state: ComplianceState,
    station: Station,
    limits: Sequence[AnnualLimit] = (),
    year: int | None = None,
) -> list[AnnualMean]:
    """Annual means of the station's air measurands for ``year`` (default: the current one).

    With ``limits`` (e.g. from ``select_annual_limits``) each mean is compared with the limit for
    its measurand; a measurand with several limits gets one row per limit.
    """
    year = year if year is not None else state.year
    if year is None:
        return []
    zone = ZoneInfo(station.timezone)
    start = hour_index(year_start(year, zone))
    end = hour_index(year_start(year + 1, zone))
    hours_in_year = end - start
    closed = state.closed_hour if state.closed_hour is not None else start - 1
    hours_elapsed = max(0, min(end, closed + 1) - start)
    rows: list[AnnualMean] = []
    for measurand in station.measurands:
        if measurand not in AIR_MEASURANDS:
            continue
        total, valid_hours = state.annual.get(f"{year}/{measurand}", (0.0, 0))
        mean = total / valid_hours if valid_hours else None
        base = AnnualMean(measurand, year, mean, valid_hours, hours_elapsed, hours_in_year,
                          valid_hours / hours_in_year)
        matching = [limit for limit in limits if limit.measurand == measurand]
        if not matching and not valid_hours:
            continue
        if not matching:
            rows.append(base)
        for limit in matching:
            valid = mean is not None and base.coverage >= limit.min_coverage
            rows.append(replace(base, limit_id=limit.id, limit=limit.limit, valid=valid,
                                exceeds=(mean > limit.limit) if valid and mean is not None else None))
    return rows


def _status_year(state: ComplianceState, station: Station, at: datetime | None) -> int | None:
    if at is not None:
        return at.astimezone(ZoneInfo(station.timezone)).year
    return state.year
