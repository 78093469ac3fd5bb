"""The environment evaluator: one station's observations in, alerts and AQI out, purely.

The stream processor keeps one :class:`StationState` per station in a changelogged table and
calls :func:`apply_observations` once per Kafka record (a batch of observations from one
station), writing the returned state back once. Nothing here touches Kafka, clocks or I/O.

Per batch, observations are validated, sorted by event time (so the result does not depend on
the order inside the record), folded into the rolling windows, and after each accepted one
every applicable rule is evaluated at the station's newest event time and fed to its episode
tracker. Evaluating per observation rather than per batch makes a batch of N give the same
alerts as N batches of one, and keeps a peak inside a buffered upload from being skipped.

This runs for every observation the city produces, so the per-sample loop is kept lean: rule
constants are worked out once per batch (:class:`_RulePlan`), window means are cached between
samples, idle rules without a breach skip the episode machine (``madina.alerts.touch``), other
rules ask ``quiet_step`` first, and messages and alert details are built only for actual transitions.
Each shortcut gives exactly what the plain per-rule ``step`` would.

Beside the rolling windows the evaluator keeps clock-hour means (:mod:`.hourly`), from which it
computes what regulators count with: the EPA NowCast AQI (the current index, :mod:`.nowcast`),
the rules' hourly coverage gate (``min_hourly_coverage``: an insufficient window is not judged,
so it neither raises nor clears nor escalates), and, as hours and local days close, the
calendar-year exceedance counts, yearly-allowance alerts, daily means with the 24-hour AQI and
annual means (:mod:`.compliance`). All of it is in :class:`StationState`; older stored states
without it read back with it empty.

Data gaps need a clock, so they are checked separately by :func:`check_data_gaps`, which the
processor calls on a timer with a watermark; an observation arriving clears an open gap. The
processor passes its clock as ``now`` too, to refuse event times outside
:mod:`madina.eventtime`'s bounds (the rule the ingest APIs apply) before they can move a station's clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any, NamedTuple

from madina.alerts import (
    AlertDetails,
    AlertTransition,
    DataGapPolicy,
    DataGapState,
    EpisodeState,
    Evaluation,
    Severity,
    check_silence,
    force_clear,
    quiet_step,
    record_observation,
    step,
    touch,
)
from madina.alerts.timeutil import require_utc, time_from_text, time_to_text
from madina.eventtime import EventTimeBounds, event_time_problem
from services.environment.domain import aqi as aqi_inputs
from services.environment.domain.aqi import AqiResult, compute_aqi
from services.environment.domain.compliance import ComplianceState, close_periods, period_of
from services.environment.domain.durations import format_duration
from services.environment.domain.hourly import HourlyStore, hour_index, quarters_needed
from services.environment.domain.measurands import (
    MEASURANDS,
    Observation,
    StationKind,
    format_value,
    validate_observation,
)
from services.environment.domain.nowcast import NOWCAST_HOURS, nowcast_aqi
from services.environment.domain.profiles import Comparison, Level, Rule
from services.environment.domain.stations import Station
from services.environment.domain.windows import (
    DEFAULT_ALLOWED_LATENESS,
    STANDARD_WINDOWS,
    Averaging,
    StationWindows,
    WindowSpec,
    averaging_for,
)

DOMAIN = "environment"

CATEGORY_BY_KIND = {
    StationKind.AIR: "air-quality",
    StationKind.WATER: "water-quality",
    StationKind.NOISE: "noise",
}
DATA_GAP_CATEGORY = "data-gap"
# A withdrawn rule's measurand is no longer known, so its closing transition gets its own category.
WITHDRAWN_RULE_CATEGORY = "rule-withdrawn"

_HOUR = timedelta(hours=1)
# Which window feeds which EPA AQI input.
_AQI_WINDOWS: dict[str, WindowSpec] = {
    aqi_inputs.PM25_24H: WindowSpec.of("pm25_ugm3", 24 * _HOUR),
    aqi_inputs.PM10_24H: WindowSpec.of("pm10_ugm3", 24 * _HOUR),
    aqi_inputs.O3_8H: WindowSpec.of("o3_ugm3", 8 * _HOUR),
    aqi_inputs.O3_1H: WindowSpec.of("o3_ugm3", _HOUR),
    aqi_inputs.NO2_1H: WindowSpec.of("no2_ugm3", _HOUR),
    aqi_inputs.SO2_1H: WindowSpec.of("so2_ugm3", _HOUR),
    aqi_inputs.SO2_24H: WindowSpec.of("so2_ugm3", 24 * _HOUR),
    aqi_inputs.CO_8H: WindowSpec.of("co_mgm3", 8 * _HOUR),
}


@dataclass(frozen=True)
class EvaluatorConfig:
    """Deployment knobs that are not per-rule."""

    allowed_lateness: timedelta = DEFAULT_ALLOWED_LATENESS
    event_time_bounds: EventTimeBounds = field(default_factory=EventTimeBounds)
    gap_factor: float = 3.0
    data_gap_severity: Severity = Severity.WARNING


class RejectCode:
    """Stable reason codes for rejected observations, usable as metric labels."""

    INVALID = "invalid"
    WRONG_STATION = "wrong_station"
    LATE = "late"
    OUT_OF_BOUNDS = "out_of_bounds"


class Rejection(NamedTuple):
    """An observation the evaluator refused, why (``code``) and in words (``detail``)."""

    observation: Observation
    code: str
    detail: str


@dataclass(frozen=True)
class RuleState:
    """Episode of one rule at one station, plus when each level's condition began to hold.

    ``condition_since`` is only kept for rules with ``sustained_for``; it maps a severity name
    to the event time from which that level's condition has held at every evaluation.
    """

    episode: EpisodeState
    condition_since: Mapping[str, datetime] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "episode": self.episode.to_dict(),
            "condition_since": {k: time_to_text(v) for k, v in sorted(self.condition_since.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuleState:
        since = {k: time_from_text(v) for k, v in data.get("condition_since", {}).items()}
        return cls(
            episode=EpisodeState.from_dict(data["episode"]),
            condition_since={k: v for k, v in since.items() if v is not None},
        )


@dataclass(frozen=True)
class StationState:
    """Everything remembered about one station between records; JSON-safe via ``to_dict``."""

    station_id: str
    windows: StationWindows
    rules: Mapping[str, RuleState]
    data_gap: DataGapState
    last_aqi: AqiResult | None = None
    """AQI from the rolling means (24 h PM over whatever data the window holds), as before."""
    hours: HourlyStore = field(default_factory=HourlyStore)
    """Clock-hour means of the newest hours, the input of the NowCast and of compliance."""
    compliance: ComplianceState = field(default_factory=ComplianceState)
    """Calendar-year exceedance counts, allowance alerts, daily means and 24 h AQI, annual means."""
    nowcast_aqi: AqiResult | None = None
    """EPA NowCast AQI for PM2.5/PM10: the current index; ``None`` until 2 of the 3 newest hours are valid."""

    @classmethod
    def new(cls, station_id: str) -> StationState:
        return cls(
            station_id=station_id,
            windows=StationWindows(),
            rules={},
            data_gap=DataGapState.new(DOMAIN, station_id),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "station_id": self.station_id,
            "windows": self.windows.to_dict(),
            "rules": {rule_id: state.to_dict() for rule_id, state in self.rules.items()},
            "data_gap": self.data_gap.to_dict(),
            "last_aqi": self.last_aqi.to_dict() if self.last_aqi is not None else None,
            "hours": self.hours.to_dict(),
            "compliance": self.compliance.to_dict(),
            "nowcast_aqi": self.nowcast_aqi.to_dict() if self.nowcast_aqi is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StationState:
        last_aqi = data.get("last_aqi")
        current = data.get("nowcast_aqi")
        return cls(
            station_id=data["station_id"],
            windows=StationWindows.from_dict(data["windows"]),
            rules={rule_id: RuleState.from_dict(raw) for rule_id, raw in data.get("rules", {}).items()},
            data_gap=DataGapState.from_dict(data["data_gap"]),
            last_aqi=AqiResult.from_dict(last_aqi) if last_aqi is not None else None,
            hours=HourlyStore.from_dict(data.get("hours")),
            compliance=ComplianceState.from_dict(data.get("compliance")),
            nowcast_aqi=AqiResult.from_dict(current) if current is not None else None,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StationState) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


class BatchResult(NamedTuple):
    """What :func:`apply_observations` returns; unpacks as a 4-tuple."""

    state: StationState
    transitions: list[AlertTransition]
    aqi: AqiResult | None
    """AQI after this batch, or ``None`` if the batch brought no accepted air observation."""
    rejected: list[Rejection]


def applicable_rules(rules: Iterable[Rule], station: Station) -> tuple[Rule, ...]:
    """The rules that read a measurand this station measures, in the given order."""
    return tuple(rule for rule in rules if rule.measurand in station.measurands)


def tracked_windows(rules: Iterable[Rule], station: Station) -> set[WindowSpec]:
    """Windows a station needs: the standard averaging periods it measures plus its rules' windows."""
    specs = {spec for spec in STANDARD_WINDOWS if spec.measurand in station.measurands}
    specs.update(rule.window_spec for rule in rules if rule.window_spec is not None)
    return specs


def apply_observations(
    state: StationState,
    observations: Sequence[Observation],
    rules: Sequence[Rule],
    station: Station,
    config: EvaluatorConfig = EvaluatorConfig(),
    now: datetime | None = None,
) -> BatchResult:
    """Fold a batch of one station's observations into ``state``; ``state`` itself is not changed.

    ``rules`` are all selected rules (e.g. from ``select_rules``); those for measurands the station
    does not measure are ignored. Invalid, foreign and too-late observations come back in
    ``rejected``; an invalid observation is refused whole, since one implausible channel casts
    doubt on the rest of the reading. With ``now`` (the caller's clock), event times outside
    ``config.event_time_bounds`` of it are refused as well.
    """
    station_rules = applicable_rules(rules, station)
    windows = state.windows.copy()
    windows.track(tracked_windows(station_rules, station))
    hours = state.hours.copy()
    plans = [_RulePlan(rule, station, windows, hours) for rule in station_rules]
    counted_rules = [rule for rule in station_rules if period_of(rule) is not None]
    compliance = state.compliance
    lateness = config.allowed_lateness
    # Working copies, mutated per observation and frozen into RuleStates once at the end.
    episodes: list[EpisodeState] = []
    since: list[dict[str, datetime]] = []
    for rule in station_rules:
        previous = state.rules.get(rule.id)
        episodes.append(previous.episode if previous is not None else EpisodeState(DOMAIN, station.id, rule.id))
        since.append(dict(previous.condition_since) if previous is not None else {})
    # Idle rules without a breach skip step() and remember the newest time they skipped;
    # madina.alerts.touch() then gives exactly the state stepping through them would have.
    untouched: list[datetime | None] = [None] * len(plans)
    data_gap = state.data_gap
    gap_details = _gap_details(station)
    transitions: list[AlertTransition] = []
    rejected: list[Rejection] = []
    accepted_air = False

    valid: list[Observation] = []
    for observation in observations:
        problems = validate_observation(observation)
        if observation.station_id != station.id:
            rejected.append(
                Rejection(observation, RejectCode.WRONG_STATION, f"station_id: expected {station.id!r}")
            )
        elif problems:
            rejected.append(Rejection(observation, RejectCode.INVALID, "; ".join(problems)))
        elif now is not None and (
            problem := event_time_problem(observation.observe_time, now, config.event_time_bounds)
        ):
            rejected.append(Rejection(observation, RejectCode.OUT_OF_BOUNDS, f"observe_time: {problem}"))
        elif StationKind(observation.kind) not in station.kinds:
            detail = f"kind: station {station.id} has no {StationKind(observation.kind).value} sensors"
            rejected.append(Rejection(observation, RejectCode.INVALID, detail))
        else:
            valid.append(observation)

    for observation in sorted(valid, key=lambda o: require_utc(o.observe_time)):
        moment = require_utc(observation.observe_time)
        reason = windows.add(moment, observation.values, config.allowed_lateness)
        if reason is not None:
            rejected.append(Rejection(observation, RejectCode.LATE, reason))
            continue
        accepted_air = accepted_air or StationKind(observation.kind) is StationKind.AIR
        # Close the hours and days this sample's time puts behind the lateness bound before it is
        # folded in: folding may prune the oldest hours, and closed periods can no longer change.
        closed = compliance.closed_hour
        if closed is None or hour_index(moment - lateness) - 1 > closed:
            compliance, closing = close_periods(
                compliance, hours, counted_rules, station, moment, lateness, partial(_rule_details, station=station)
            )
            transitions.extend(closing)
        hours.add(moment, observation.values)
        data_gap, cleared = record_observation(data_gap, moment, gap_details)
        if cleared is not None:
            transitions.append(cleared)
        newest = windows.max_event_time
        assert newest is not None
        for index, plan in enumerate(plans):
            value = plan.value()
            if value is None:
                continue
            held = since[index]
            breached = plan.breached_tracking(value, held, newest) if plan.sustained or held else plan.breached(value)
            episode = episodes[index]
            if breached is None and episode.alert_id is None:  # idle and quiet: see `untouched`
                untouched[index] = newest
                continue
            skipped = untouched[index]
            if skipped is not None:
                episode, untouched[index] = touch(episode, skipped), None
            severity = breached.severity if breached is not None else None
            quiet = quiet_step(episode, newest, severity, value, plan.rule.is_clear(value), plan.policy)
            if quiet is not None:
                episodes[index] = quiet
                continue
            episodes[index], transition = plan.step(episode, value, breached, newest)
            transitions.append(transition)

    for index, skipped in enumerate(untouched):
        if skipped is not None:
            episodes[index] = touch(episodes[index], skipped)
    rule_states = {
        rule.id: RuleState(episode=episode, condition_since=held)
        for rule, episode, held in zip(station_rules, episodes, since, strict=True)
    }
    transitions.extend(_retire_withdrawn_rules(state, rule_states, windows.max_event_time, station))

    aqi = _station_aqi(windows) if accepted_air else None
    current = _nowcast(hours, station) if accepted_air else None
    new_state = StationState(
        station_id=station.id,
        windows=windows,
        rules=rule_states,
        data_gap=data_gap,
        last_aqi=aqi if aqi is not None else state.last_aqi,
        hours=hours,
        compliance=compliance,
        nowcast_aqi=current if current is not None else state.nowcast_aqi,
    )
    return BatchResult(new_state, transitions, aqi, rejected)


def check_data_gaps(
    state: StationState, now: datetime, station: Station, config: EvaluatorConfig = EvaluatorConfig()
) -> tuple[StationState, AlertTransition | None]:
    """Raise ``data-gap`` if the station has been silent too long at ``now`` (pass a watermark).

    Returns the very same state object when nothing changed, so a caller ticking every few
    seconds can skip the table write. (The first check of a station that has never reported
    changes it: the check starts its clock.)
    """
    policy = DataGapPolicy(
        expected_interval=station.reporting_interval,
        gap_factor=config.gap_factor,
        severity=config.data_gap_severity,
    )
    data_gap, transition = check_silence(state.data_gap, now, policy, _gap_details(station))
    if data_gap is state.data_gap:
        return state, None
    return replace(state, data_gap=data_gap), transition


class _RulePlan:
    """One rule prepared for one station: its constants worked out once per batch, not per sample.

    Messages and details are only built when :func:`step` actually returns a transition, which
    is rare next to the evaluations that change nothing.
    """

    __slots__ = ("policy", "rule", "station", "sustained", "thresholds", "value")

    def __init__(self, rule: Rule, station: Station, windows: StationWindows, hours: HourlyStore | None = None) -> None:
        self.rule = rule
        self.station = station
        spec = rule.window_spec
        self.value: Callable[[], float | None]
        """The value the rule judges, or ``None`` when there is no (or not enough) data to judge."""
        if spec is None:
            self.value = partial(_latest_value, windows, rule.measurand)
        elif rule.min_hourly_coverage > 0 and hours is not None:
            self.value = _HourlyCoverageGate(rule, station, windows.reader(spec, rule.min_coverage), hours)
        else:
            self.value = windows.reader(spec, rule.min_coverage)
        self.policy = rule.episode_policy
        self.sustained = rule.sustained_for > timedelta(0)
        self.thresholds: tuple[tuple[float, Level], ...] | None = None
        if rule.comparison in (Comparison.ABOVE, Comparison.BELOW):
            self.thresholds = tuple((level.threshold, level) for level in rule.levels if level.threshold is not None)
            if len(self.thresholds) != len(rule.levels):
                self.thresholds = None

    def step(
        self, episode: EpisodeState, value: float, breached: Level | None, at: datetime
    ) -> tuple[EpisodeState, AlertTransition]:
        """Step an episode that :func:`quiet_step` said will emit; only now is the message built."""
        rule = self.rule
        evaluation = Evaluation(
            event_time=at,
            severity=breached.severity if breached is not None else None,
            observed_value=value,
            threshold=rule.crossed_threshold(breached, value) if breached is not None else None,
            below_clear_level=rule.is_clear(value),
        )
        episode, transition = step(episode, evaluation, self.policy)
        assert transition is not None
        return episode, replace(transition, message=self.message(value, breached), details=self.details())

    def breached(self, value: float) -> Level | None:
        """The last level in ``levels`` whose condition holds, for a rule without ``sustained_for``."""
        breached: Level | None = None
        if self.thresholds is None:
            for level in self.rule.levels:
                if self.rule.holds(level, value):
                    breached = level
        elif self.rule.comparison is Comparison.ABOVE:
            for threshold, level in self.thresholds:
                if value > threshold:
                    breached = level
        else:
            for threshold, level in self.thresholds:
                if value < threshold:
                    breached = level
        return breached

    def breached_tracking(self, value: float, since: dict[str, datetime], at: datetime) -> Level | None:
        """Like :meth:`breached`, but a level counts only once it has held for ``sustained_for``."""
        rule = self.rule
        breached: Level | None = None
        for level in rule.levels:
            if not rule.holds(level, value):
                since.pop(level.severity.name, None)
                continue
            if not self.sustained:
                breached = level
                continue
            started = since.setdefault(level.severity.name, at)
            if at - started >= rule.sustained_for:
                breached = level
        return breached

    def message(self, value: float, breached: Level | None) -> str:
        return _message(self.rule, value, breached)

    def details(self) -> AlertDetails:
        return _rule_details(self.rule, self.station)


class _HourlyCoverageGate:
    """A rule's value, or ``None`` while too few of its window's clock hours hold a valid hourly value.

    The hours counted are the window's length in complete clock hours before the current one
    (24 for a 24 h rule at 10:05: 10:00 yesterday to 09:00 today). The verdict only changes when
    the hour moves on or an hour's validity changes, so it is cached on both.
    """

    __slots__ = ("cached", "hours", "measurand", "needed", "quorum", "read", "span")

    def __init__(self, rule: Rule, station: Station, read: Callable[[], float | None], hours: HourlyStore) -> None:
        self.read = read
        self.hours = hours
        self.measurand = rule.measurand
        self.span = rule.window_hours
        self.needed = rule.min_hourly_coverage * self.span
        self.quorum = quarters_needed(station.reporting_interval)
        self.cached: tuple[int | None, int, bool] | None = None

    def __call__(self) -> float | None:
        hours = self.hours
        key = (hours.newest, hours.changes)
        cached = self.cached
        if cached is None or cached[:2] != key:
            covered = False
            if hours.newest is not None:
                valid = hours.valid_hours(self.measurand, hours.newest - self.span, hours.newest - 1, self.quorum)
                covered = valid >= self.needed - 1e-9
            cached = self.cached = (*key, covered)
        return self.read() if cached[2] else None


def _nowcast(hours: HourlyStore, station: Station) -> AqiResult | None:
    if hours.newest is None:
        return None
    quorum = quarters_needed(station.reporting_interval)
    recent = range(hours.newest - 1, hours.newest - 1 - NOWCAST_HOURS, -1)
    return nowcast_aqi(hours.means("pm25_ugm3", recent, quorum), hours.means("pm10_ugm3", recent, quorum))


def _latest_value(windows: StationWindows, measurand: str) -> float | None:
    latest = windows.latest(measurand)
    return latest[1] if latest is not None else None


def _retire_withdrawn_rules(
    previous: StationState,
    rule_states: dict[str, RuleState],
    newest: datetime | None,
    station: Station,
) -> list[AlertTransition]:
    """Clear open episodes of rules no longer selected, so their alerts do not stay open forever."""
    transitions: list[AlertTransition] = []
    if newest is None:
        return transitions
    for rule_id, old in previous.rules.items():
        if rule_id in rule_states or not old.episode.active:
            continue
        _, transition = force_clear(
            old.episode,
            newest,
            old.episode.last_emitted_value or 0.0,
            f"{rule_id} withdrawn from the active threshold profiles; alert closed",
            station.alert_details().refine(category=WITHDRAWN_RULE_CATEGORY),
        )
        if transition is not None:
            transitions.append(transition)
    return transitions


def _station_aqi(windows: StationWindows) -> AqiResult | None:
    tracked = set(windows.specs)
    means: dict[str, float] = {}
    for key, spec in _AQI_WINDOWS.items():
        if spec in tracked:
            mean = windows.value(spec)
            if mean is not None:
                means[key] = mean
    return compute_aqi(means)


def _message(rule: Rule, value: float, breached: Level | None) -> str:
    measurand = MEASURANDS[rule.measurand]
    subject = f"{measurand.label} {_window_label(rule)}"
    reading = format_value(rule.measurand, value)
    if breached is None:
        if rule.comparison is Comparison.OUTSIDE:
            assert rule.clear_range is not None
            low, high = rule.clear_range
            return f"{subject} {reading} (clear range {low:g}-{high:g})"
        assert rule.clear_level is not None
        return f"{subject} {reading} (clear level {format_value(rule.measurand, rule.clear_level)})"
    name = f" {breached.name}" if breached.name else ""
    if rule.comparison is Comparison.ANY_POSITIVE:
        return f"{subject} {reading} detected ({breached.name or 'any is too many'})"
    if rule.comparison is Comparison.OUTSIDE:
        assert breached.low is not None and breached.high is not None
        return f"{subject} {reading} outside{name} ({breached.low:g}-{breached.high:g})"
    assert breached.threshold is not None
    word = "below" if rule.comparison is Comparison.BELOW else "above"
    sustained = f" for {format_duration(rule.sustained_for)}" if rule.sustained_for > timedelta(0) else ""
    limit = format_value(rule.measurand, breached.threshold)
    return f"{subject} {reading} {word}{name} ({limit}){sustained}"


def _window_label(rule: Rule) -> str:
    if rule.window_spec is None:
        return "sample"
    kind = "energetic mean" if averaging_for(rule.measurand) is Averaging.ENERGETIC else "mean"
    return f"{format_duration(rule.window)} {kind}"


def _rule_details(rule: Rule, station: Station) -> AlertDetails:
    measurand = MEASURANDS[rule.measurand]
    return station.alert_details().refine(
        {"measurand": rule.measurand, "window": format_duration(rule.window)},
        category=CATEGORY_BY_KIND[measurand.kind],
        unit=measurand.unit,
        standard_reference=rule.source.text(),
    )


def _gap_details(station: Station) -> AlertDetails:
    return station.alert_details().refine(category=DATA_GAP_CATEGORY, unit="s")
