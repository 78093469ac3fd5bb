"""The street-lighting evaluator: one circuit's lamp reports in, alerts, KPIs and confirmations out.

The processor keeps one :class:`CircuitState` per circuit (topic ``energy.streetlight-telemetry.v1``
keyed by circuit id) and calls :func:`step` once per Kafka record with the events it carries;
the test oracle calls the same function. State is JSON-safe (``to_dict``/``from_dict``) and
everything depends on event time only, never the wall clock, so a replay gives the same alert ids,
revisions, KPIs and confirmations. Inputs are :class:`TelemetryBatch` (reports of the circuit's
lamps), :class:`~.dimming.LightingCommand` (a command for the circuit) and :class:`ClockTick` (a
watermark for silence, command timeouts and closing hours when the circuit is quiet).

Rules (thresholds in ``data/energy.yaml``; alerts through ``madina.alerts`` episodes):

* ``lamp-out`` (MINOR): at NIGHT (:mod:`.sun`), the lamp reports on with a dimming level above 0
  but draws under ``max(out_floor_min_w, out_floor_fraction x rated x dimming)``.
* ``lamp-on-by-day`` (WARNING): in the DAY the lamp draws more than ``day_on_floor_w``.
* ``over-power`` (WARNING): on, and drawing more than ``rated x dimming x (1 + tolerance) + margin``.
* ``voltage`` (MINOR): a reported voltage outside ``voltage_min_v..voltage_max_v``; clears only
  ``voltage_clear_margin_v`` inside the range.
* ``fault`` (MAJOR): a non-empty fault code; the first report raises it.
* The others need ``raise_after_readings`` consecutive breaching reports; all clear after
  ``clear_after`` of clean reports. A report the rule cannot judge (lamp-out by day, lamp-on-by-day
  at night or twilight) neither raises nor clears, so an alert stays open until the lamp is seen
  behaving, and a lamp broken at dawn is not "repaired" by sunrise.
* ``circuit-dark`` (MAJOR, source = circuit): at NIGHT, at least ``circuit_dark_min_reporting`` of
  the circuit's lamps reported (lamp on, dimming > 0) within ``circuit_window`` and every one of
  them is out. One alert lists the lamps; while it stands, ``lamp-out`` is not raised for lamps of
  the circuit and open ``lamp-out`` alerts are closed as superseded by it. Evaluated at the end of
  each batch, after the lamps' reports, and ``lamp-out`` episodes are stepped after it.
* ``data-gap`` (WARNING): a lamp silent for ``gap_factor`` reporting intervals (per lamp), and the
  whole circuit silent (source = circuit: a cabinet that stops reporting raises one alert per
  circuit, not one per lamp; lamp gaps are not raised while the circuit's stands).
* ``command-timeout`` (MAJOR, source = circuit): a command not confirmed ``command_timeout`` after
  it took effect; cleared when a command of the circuit is confirmed.

Energy: each report's counter difference (:mod:`.metering`) is split over UTC hours; the baseline
is the pre-LED lamp's power for the time the lamp was on (the previous report's on/off state held
for at most ``max_hold``, beyond that the on-time implied by the energy at rated power, which
understates savings rather than inventing them). An hour closes ``hour_lateness`` after it ends by
the circuit's watermark and yields KPIs for each lamp and the circuit; a city-local day closes
with its last hour. Energy a late report reveals for a closed hour is booked to the hour of that
report: a published KPI is not revised. District totals: :mod:`.district`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from madina.alerts import (
    AlertTransition,
    DataGapPolicy,
    DataGapState,
    EpisodePolicy,
    EpisodeState,
    Evaluation,
    Severity,
    check_silence,
    force_clear,
    quiet_step,
    record_observation,
)
from madina.alerts import step as episode_step
from madina.alerts.timeutil import time_from_text, time_to_text
from services.energy.domain.config import EnergyConfig
from services.energy.domain.dimming import CommandConfirmation, LightingCommand, lamp_matches
from services.energy.domain.kpis import (
    DAY,
    HOUR,
    LIGHTING_BASELINE_KWH,
    LIGHTING_ENERGY_KWH,
    LIGHTING_SAVINGS_KWH,
    LIGHTING_SAVINGS_TCO2,
    EnergyKpi,
)
from services.energy.domain.metering import HOUR_S, DeltaKind, counter_delta, split_by_hour
from services.energy.domain.network import Circuit, Lamp, Network
from services.energy.domain.sun import Phase, SunCalendar
from services.energy.domain.telemetry import LampTelemetry, validate_lamp_telemetry

DOMAIN = "energy"
LAMP_OUT = "lamp-out"
LAMP_ON_BY_DAY = "lamp-on-by-day"
OVER_POWER = "over-power"
VOLTAGE = "voltage"
FAULT = "fault"
CIRCUIT_DARK = "circuit-dark"
COMMAND_TIMEOUT = "command-timeout"
DATA_GAP = "data-gap"
SEVERITY = {
    LAMP_OUT: Severity.MINOR, LAMP_ON_BY_DAY: Severity.WARNING, OVER_POWER: Severity.WARNING,
    VOLTAGE: Severity.MINOR, FAULT: Severity.MAJOR, CIRCUIT_DARK: Severity.MAJOR, COMMAND_TIMEOUT: Severity.MAJOR,
}
UNITS = {LAMP_OUT: "W", LAMP_ON_BY_DAY: "W", OVER_POWER: "W", VOLTAGE: "V", FAULT: "", CIRCUIT_DARK: "",
         COMMAND_TIMEOUT: "s", DATA_GAP: "s"}
_LAMP_RULES = (LAMP_ON_BY_DAY, OVER_POWER, VOLTAGE, FAULT)  # stepped per report; lamp-out per batch


class RejectCode:
    """Stable reasons for reports the evaluator refused, usable as metric labels."""

    INVALID = "invalid"
    WRONG_CIRCUIT = "wrong_circuit"
    STALE = "stale"
    """Not newer than the lamp's last accepted report (a duplicate or out of order)."""


class Rejection(NamedTuple):
    reading: LampTelemetry
    code: str
    detail: str


@dataclass(frozen=True, slots=True)
class TelemetryBatch:
    """Reports of lamps of one circuit: one ``StreetlightTelemetryBatch`` record."""

    circuit_id: str
    readings: tuple[LampTelemetry, ...]


@dataclass(frozen=True, slots=True)
class ClockTick:
    """The processor's watermark: checks silence and timeouts and closes hours of a quiet circuit."""

    now: datetime


Event = TelemetryBatch | LightingCommand | ClockTick


@dataclass(frozen=True)
class CircuitContext:
    """What a circuit's evaluation needs besides its state; built once per circuit and reused."""

    circuit: Circuit
    lamps: Mapping[str, Lamp]
    zone: ZoneInfo
    config: EnergyConfig
    sun: SunCalendar
    lat: float
    lon: float

    @classmethod
    def of(cls, network: Network, circuit_id: str, config: EnergyConfig, sun: SunCalendar) -> CircuitContext:
        circuit = network.circuits[circuit_id]
        lamps = {lamp_id: network.lamps[lamp_id] for lamp_id in circuit.lamp_ids}
        lat = sum(lamp.lat for lamp in lamps.values()) / len(lamps)
        lon = sum(lamp.lon for lamp in lamps.values()) / len(lamps)
        return cls(circuit, lamps, ZoneInfo(network.timezones[circuit.city]), config, sun, lat, lon)


@dataclass(slots=True)
class LampState:
    """What is remembered about one lamp. Mutable only inside :func:`step`, on its own copy."""

    last_time: datetime | None = None
    on: bool = False
    dimming_pct: float = 0.0
    power_w: float = 0.0
    counter_wh: float | None = None
    voltage_v: float | None = None
    """Supply voltage of the last report; None when the controller does not measure it."""
    fault_code: str = ""
    """Vendor fault code of the last report; empty when healthy."""
    night_on: bool = False
    """The last report was at night with the lamp commanded on (lamp-out could judge it)."""
    out: bool = False
    """The last report breached lamp-out's floor."""
    streaks: dict[str, int] = field(default_factory=dict)
    episodes: dict[str, EpisodeState] = field(default_factory=dict)
    """Open episodes only: an idle episode carries nothing worth keeping."""
    gap: DataGapState | None = None

    def copy(self) -> LampState:
        return LampState(self.last_time, self.on, self.dimming_pct, self.power_w, self.counter_wh, self.voltage_v,
                         self.fault_code, self.night_on, self.out, dict(self.streaks), dict(self.episodes), self.gap)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "last_time": time_to_text(self.last_time), "on": self.on, "dimming_pct": self.dimming_pct,
            "power_w": self.power_w, "counter_wh": self.counter_wh, "night_on": self.night_on, "out": self.out,
            "streaks": dict(sorted(self.streaks.items())),
            "episodes": {rule: ep.to_dict() for rule, ep in sorted(self.episodes.items())},
            "gap": _gap_to_dict(self.gap),
        }
        # Left out when absent: every lamp of the circuit is written once per record.
        if self.voltage_v is not None:
            data["voltage_v"] = self.voltage_v
        if self.fault_code:
            data["fault_code"] = self.fault_code
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], lamp_id: str = "") -> LampState:
        gap = data.get("gap")
        return cls(
            last_time=time_from_text(data.get("last_time")), on=bool(data["on"]),
            dimming_pct=float(data["dimming_pct"]), power_w=float(data["power_w"]), counter_wh=data.get("counter_wh"),
            voltage_v=data.get("voltage_v"), fault_code=str(data.get("fault_code", "")),
            night_on=bool(data.get("night_on", False)), out=bool(data.get("out", False)),
            streaks=dict(data.get("streaks", {})),
            episodes={rule: EpisodeState.from_dict(raw) for rule, raw in data.get("episodes", {}).items()},
            gap=_gap_from_dict(gap, lamp_id) if gap is not None else None,
        )


@functools.cache
def _idle_gap_episode(lamp_id: str) -> EpisodeState:
    return DataGapState.new(DOMAIN, lamp_id).episode


def _gap_to_dict(gap: DataGapState | None) -> dict[str, Any] | None:
    """A lamp's data-gap state, without its episode while that is idle: written once per record for
    every lamp of the circuit, the idle episode was two thirds of the circuit state's JSON."""
    if gap is None:
        return None
    if gap.episode == _idle_gap_episode(gap.episode.source_id):
        return {"last_observation_time": time_to_text(gap.last_observation_time),
                "watched_since": time_to_text(gap.watched_since)}
    return gap.to_dict()


def _gap_from_dict(data: Mapping[str, Any], lamp_id: str) -> DataGapState:
    if "episode" in data:
        return DataGapState.from_dict(data)
    return DataGapState(_idle_gap_episode(lamp_id), time_from_text(data.get("last_observation_time")),
                        time_from_text(data.get("watched_since")))


@dataclass(frozen=True)
class PendingCommand:
    command: LightingCommand
    matched: frozenset[str] = frozenset()
    timed_out: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"command": self.command.to_dict(), "matched": sorted(self.matched), "timed_out": self.timed_out}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PendingCommand:
        return cls(LightingCommand.from_dict(data["command"]), frozenset(data.get("matched", ())),
                   bool(data.get("timed_out", False)))


@dataclass(frozen=True)
class CircuitState:
    """Everything remembered about one circuit between records; JSON-safe via ``to_dict``."""

    circuit_id: str
    lamps: Mapping[str, LampState]
    dark: EpisodeState
    feed_gap: DataGapState
    command_alert: EpisodeState
    pending: tuple[PendingCommand, ...] = ()
    dark_lamps: tuple[str, ...] = ()
    """The lamps the open circuit-dark alert lists (empty while none is open): the status names them
    after dawn too, when the lamps are off and ``out`` no longer tells them apart."""
    watermark: datetime | None = None
    """Newest event time seen (reports and ticks)."""
    closed_before: int | None = None
    """Every hour starting before this POSIX second is closed (its KPIs published)."""
    hours: Mapping[int, Mapping[str, tuple[float, float]]] = field(default_factory=dict)
    """Open hours: hour start -> lamp id -> (LED Wh, baseline Wh)."""
    days: Mapping[str, Mapping[str, tuple[float, float]]] = field(default_factory=dict)
    """Open city-local days (ISO date) -> lamp id -> (LED Wh, baseline Wh) of their closed hours."""

    @classmethod
    def new(cls, circuit_id: str) -> CircuitState:
        return cls(
            circuit_id=circuit_id, lamps={},
            dark=EpisodeState(DOMAIN, circuit_id, CIRCUIT_DARK),
            feed_gap=DataGapState.new(DOMAIN, circuit_id),
            command_alert=EpisodeState(DOMAIN, circuit_id, COMMAND_TIMEOUT),
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "circuit_id": self.circuit_id,
            "lamps": {lamp_id: lamp.to_dict() for lamp_id, lamp in sorted(self.lamps.items())},
            "dark": self.dark.to_dict(), "feed_gap": self.feed_gap.to_dict(),
            "command_alert": self.command_alert.to_dict(),
            "pending": [p.to_dict() for p in self.pending],
            "watermark": time_to_text(self.watermark), "closed_before": self.closed_before,
            "hours": {
                str(h): {k: list(v) for k, v in sorted(lamps.items())} for h, lamps in sorted(self.hours.items())
            },
            "days": {d: {k: list(v) for k, v in sorted(lamps.items())} for d, lamps in sorted(self.days.items())},
        }
        if self.dark_lamps:
            data["dark_lamps"] = list(self.dark_lamps)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CircuitState:
        return cls(
            circuit_id=data["circuit_id"],
            lamps={lamp_id: LampState.from_dict(raw, lamp_id) for lamp_id, raw in data.get("lamps", {}).items()},
            dark=EpisodeState.from_dict(data["dark"]), feed_gap=DataGapState.from_dict(data["feed_gap"]),
            command_alert=EpisodeState.from_dict(data["command_alert"]),
            pending=tuple(PendingCommand.from_dict(p) for p in data.get("pending", ())),
            dark_lamps=tuple(data.get("dark_lamps", ())),
            watermark=time_from_text(data.get("watermark")), closed_before=data.get("closed_before"),
            hours={int(h): {k: (float(v[0]), float(v[1])) for k, v in lamps.items()}
                   for h, lamps in data.get("hours", {}).items()},
            days={d: {k: (float(v[0]), float(v[1])) for k, v in lamps.items()}
                  for d, lamps in data.get("days", {}).items()},
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CircuitState) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


class StepResult(NamedTuple):
    """What :func:`step` returns; unpacks as a 5-tuple."""

    state: CircuitState
    transitions: list[AlertTransition]
    kpis: list[EnergyKpi]
    confirmations: list[CommandConfirmation]
    rejected: list[Rejection]


def step(state: CircuitState, events: Iterable[Event], ctx: CircuitContext) -> StepResult:
    """Fold a record's events into a circuit's state; ``state`` itself is not changed."""
    work = _Work(state, ctx)
    for event in events:
        if isinstance(event, TelemetryBatch):
            work.telemetry(event.readings)
        elif isinstance(event, LightingCommand):
            work.command(event)
        elif isinstance(event, ClockTick):
            work.tick(event.now)
        else:  # pragma: no cover - the type says it cannot happen
            raise TypeError(f"unknown event {type(event).__name__}")
    return work.result()


def apply_telemetry(state: CircuitState, readings: Sequence[LampTelemetry], ctx: CircuitContext) -> StepResult:
    """:func:`step` with one batch of reports."""
    return step(state, (TelemetryBatch(ctx.circuit.id, tuple(readings)),), ctx)


class _Work:
    """One step's working copy of a circuit's state."""

    def __init__(self, state: CircuitState, ctx: CircuitContext) -> None:
        self.ctx = ctx
        self.config = ctx.config
        self.lighting = ctx.config.lighting
        self.circuit_id = state.circuit_id
        self.lamps: dict[str, LampState] = dict(state.lamps)
        self.copied: set[str] = set()
        self.dark = state.dark
        self.feed_gap = state.feed_gap
        self.command_alert = state.command_alert
        self.pending = list(state.pending)
        self.dark_lamps = state.dark_lamps
        self.watermark = state.watermark
        self.closed_before = state.closed_before
        self.hours: dict[int, dict[str, tuple[float, float]]] = {h: dict(v) for h, v in state.hours.items()}
        self.days: dict[str, dict[str, tuple[float, float]]] = {d: dict(v) for d, v in state.days.items()}
        self.transitions: list[AlertTransition] = []
        self.kpis: list[EnergyKpi] = []
        self.confirmations: list[CommandConfirmation] = []
        self.rejected: list[Rejection] = []
        lighting = self.lighting
        self.policy = EpisodePolicy(clear_after=timedelta(seconds=lighting.clear_after_s))
        self.gap_policy = DataGapPolicy(
            expected_interval=ctx.circuit.reporting_interval, gap_factor=lighting.gap_factor
        )

    # -- inputs ---------------------------------------------------------------------------

    def telemetry(self, readings: Sequence[LampTelemetry]) -> None:
        ctx = self.ctx
        accepted: list[LampTelemetry] = []
        for reading in readings:
            if reading.lamp_id not in ctx.lamps:
                detail = f"lamp_id: {reading.lamp_id[:100]!r} is not on circuit {self.circuit_id}"
                self.rejected.append(Rejection(reading, RejectCode.WRONG_CIRCUIT, detail))
                continue
            problems = validate_lamp_telemetry(reading, ctx.lamps)
            if problems:
                self.rejected.append(Rejection(reading, RejectCode.INVALID, "; ".join(problems)))
                continue
            accepted.append(reading)
        if not accepted:
            return
        accepted.sort(key=lambda r: r.observe_time)
        batch_lamps: dict[str, LampTelemetry] = {}
        for reading in accepted:
            if self._reading(reading):
                batch_lamps[reading.lamp_id] = reading
        if not batch_lamps:
            return
        newest = max(r.observe_time for r in batch_lamps.values())
        self.feed_gap, cleared = record_observation(self.feed_gap, newest, ctx.circuit.alert_details())
        if cleared is not None:
            self.transitions.append(replace(cleared, details=cleared.details.refine(category=DATA_GAP)))
        self._advance(newest)
        self._circuit_dark(newest)
        for lamp_id, reading in batch_lamps.items():
            self._lamp_out(lamp_id, reading)
        self._timeouts(newest)
        self._close_hours()

    def command(self, command: LightingCommand) -> None:
        if command.circuit_id != self.circuit_id:
            raise ValueError(f"command {command.command_id} is for {command.circuit_id}, not {self.circuit_id}")
        if any(p.command.command_id == command.command_id for p in self.pending):
            return
        # A newer command supersedes pending ones it takes effect after; an older one is history.
        later = [p for p in self.pending if p.command.effective_time > command.effective_time]
        if later:
            return
        self.pending = [PendingCommand(command)]

    def tick(self, now: datetime) -> None:
        self._advance(now)
        ctx = self.ctx
        self.feed_gap, transition = check_silence(self.feed_gap, now, self.gap_policy, ctx.circuit.alert_details())
        if transition is not None:
            self.transitions.append(_categorised(transition, DATA_GAP, "circuit"))
        if not self.feed_gap.episode.active:
            for lamp_id in ctx.circuit.lamp_ids:
                lamp = self.lamps.get(lamp_id)
                gap = lamp.gap if lamp is not None and lamp.gap is not None else DataGapState.new(DOMAIN, lamp_id)
                new_gap, transition = check_silence(gap, now, self.gap_policy, ctx.lamps[lamp_id].alert_details())
                if new_gap is not gap:
                    self._lamp(lamp_id).gap = new_gap
                if transition is not None:
                    self.transitions.append(_categorised(transition, DATA_GAP, "lamp"))
        self._timeouts(now)
        self._close_hours()

    # -- per report -----------------------------------------------------------------------

    def _reading(self, reading: LampTelemetry) -> bool:
        ctx, lighting = self.ctx, self.lighting
        lamp_id = reading.lamp_id
        previous = self.lamps.get(lamp_id)
        moment = reading.observe_time
        if moment.tzinfo is not UTC:
            moment = moment.astimezone(UTC)
            reading = replace(reading, observe_time=moment)
        if previous is not None and previous.last_time is not None and moment <= previous.last_time:
            detail = "observe_time: not newer than the lamp's last report"
            self.rejected.append(Rejection(reading, RejectCode.STALE, detail))
            return False
        lamp = self._lamp(lamp_id)
        spec = ctx.lamps[lamp_id]
        posix = moment.timestamp()
        phase = ctx.sun.phase_at(ctx.lat, ctx.lon, posix)
        self._meter(lamp, spec, reading, posix)
        gap = lamp.gap if lamp.gap is not None else DataGapState.new(DOMAIN, lamp_id)
        lamp.gap, cleared = record_observation(gap, moment)
        if cleared is not None:
            self.transitions.append(replace(cleared, details=spec.alert_details().refine(category=DATA_GAP)))

        power, dimming = reading.power_w, reading.dimming_pct
        commanded_on = reading.on and dimming > 0
        expected_w = spec.rated_power_w * dimming / 100.0
        floor = max(lighting.out_floor_min_w, lighting.out_floor_fraction * expected_w)
        lamp.night_on = phase is Phase.NIGHT and commanded_on
        lamp.out = lamp.night_on and power < floor
        lamp.on, lamp.dimming_pct, lamp.power_w, lamp.last_time = reading.on, dimming, power, moment
        lamp.voltage_v, lamp.fault_code = reading.voltage_v, reading.fault_code

        # (breached, judged, clear, value, threshold) per rule.
        over_limit = expected_w * (1 + lighting.over_power_tolerance) + lighting.over_power_margin_w
        voltage = reading.voltage_v
        low, high, margin = lighting.voltage_min_v, lighting.voltage_max_v, lighting.voltage_clear_margin_v
        verdicts = {
            LAMP_ON_BY_DAY: (power > lighting.day_on_floor_w, phase is Phase.DAY, True, power, lighting.day_on_floor_w),
            OVER_POWER: (power > over_limit, reading.on, True, power, over_limit),
            VOLTAGE: (
                voltage is not None and not low <= voltage <= high,
                voltage is not None,
                voltage is not None and low + margin <= voltage <= high - margin,
                voltage if voltage is not None else 0.0,
                low if voltage is not None and voltage < low else high,
            ),
            FAULT: (reading.fault_code != "", True, True, 1.0 if reading.fault_code else 0.0, 1.0),
        }
        for rule in _LAMP_RULES:
            breached, judged, clear, value, threshold = verdicts[rule]
            self._judge(lamp, spec, rule, moment, breached, judged, clear, value, threshold, reading)
        # lamp-out's streak counts per report; its episode is stepped once per batch.
        self._count(lamp, LAMP_OUT, lamp.out, lamp.night_on)
        for pending_index, pending in enumerate(self.pending):
            command = pending.command
            if moment >= command.effective_time and lamp_id not in pending.matched and lamp_matches(
                command, reading, self.config.control.dimming_tolerance_pct
            ):
                self.pending[pending_index] = replace(pending, matched=pending.matched | {lamp_id})
                self._confirm_if_done(pending_index, moment)
        return True

    def _count(self, lamp: LampState, rule: str, breached: bool, judged: bool) -> int:
        count = lamp.streaks.get(rule, 0) + 1 if judged and breached else 0
        if count:
            lamp.streaks[rule] = count
        else:
            lamp.streaks.pop(rule, None)
        return count

    def _judge(
        self, lamp: LampState, spec: Lamp, rule: str, moment: datetime, breached: bool, judged: bool,
        clear: bool, value: float, threshold: float, reading: LampTelemetry,
    ) -> None:
        count = self._count(lamp, rule, breached, judged)
        self._episode(lamp, spec, rule, moment, breached, judged, clear, value, threshold, reading, count)

    def _episode(
        self, lamp: LampState, spec: Lamp, rule: str, moment: datetime, breached: bool, judged: bool,
        clear: bool, value: float, threshold: float, reading: LampTelemetry, count: int,
    ) -> None:
        episode = lamp.episodes.get(rule)
        if not judged or (episode is None and not breached):
            return
        needed = 1 if rule == FAULT else self.lighting.raise_after_readings
        severity = SEVERITY[rule] if breached and count >= needed else None
        if episode is None:
            if severity is None:
                return
            episode = EpisodeState(DOMAIN, spec.id, rule)
        quiet = quiet_step(episode, moment, severity, value, not breached and clear, self.policy)
        if quiet is not None:
            lamp.episodes[rule] = quiet
            return
        evaluation = Evaluation(moment, severity, value, threshold if severity is not None else None,
                                not breached and clear)
        episode, transition = episode_step(episode, evaluation, self.policy)
        if episode.active:
            lamp.episodes[rule] = episode
        else:
            lamp.episodes.pop(rule, None)
        if transition is not None:
            message = _lamp_message(rule, spec, reading, breached, threshold)
            fault = {"fault_code": reading.fault_code} if rule == FAULT and reading.fault_code else None
            details = spec.alert_details().refine(fault, category=rule, unit=UNITS[rule])
            self.transitions.append(replace(transition, message=message, details=details))

    def _lamp_out(self, lamp_id: str, reading: LampTelemetry) -> None:
        lamp = self._lamp(lamp_id)
        spec = self.ctx.lamps[lamp_id]
        if self.dark.active:
            episode = lamp.episodes.pop(LAMP_OUT, None)
            if episode is not None:
                assert self.dark.alert_id is not None
                _, transition = force_clear(
                    episode, reading.observe_time, reading.power_w,
                    f"lamp {lamp_id}: superseded by circuit-dark alert {self.dark.alert_id} on {self.circuit_id}",
                    spec.alert_details().refine({"superseded_by": self.dark.alert_id}, category=LAMP_OUT, unit="W"),
                )
                if transition is not None:
                    self.transitions.append(transition)
            return
        lighting = self.lighting
        floor = max(lighting.out_floor_min_w, lighting.out_floor_fraction * spec.rated_power_w * lamp.dimming_pct / 100)
        self._episode(lamp, spec, LAMP_OUT, reading.observe_time, lamp.out, lamp.night_on, True, reading.power_w,
                      floor, reading, lamp.streaks.get(LAMP_OUT, 0))

    # -- per batch ------------------------------------------------------------------------

    def _circuit_dark(self, newest: datetime) -> None:
        ctx, lighting = self.ctx, self.lighting
        phase = ctx.sun.phase(ctx.lat, ctx.lon, newest)
        window_start = newest - timedelta(seconds=lighting.circuit_window_s)
        reporting = [
            lamp_id for lamp_id in ctx.circuit.lamp_ids
            if (lamp := self.lamps.get(lamp_id)) is not None and lamp.night_on
            and lamp.last_time is not None and lamp.last_time >= window_start
        ]
        total = len(ctx.circuit.lamp_ids)
        needed = max(min(2, total), math.ceil(lighting.circuit_dark_min_reporting * total))
        if phase is not Phase.NIGHT or len(reporting) < needed:
            return
        out = [lamp_id for lamp_id in reporting if self.lamps[lamp_id].out]
        share = len(out) / len(reporting)
        breached = len(out) == len(reporting)
        severity = SEVERITY[CIRCUIT_DARK] if breached else None
        quiet = quiet_step(self.dark, newest, severity, share, share < 0.5, self.policy)
        if quiet is not None:
            self.dark = quiet
            return
        evaluation = Evaluation(newest, severity, share, 1.0 if breached else None, share < 0.5)
        self.dark, transition = episode_step(self.dark, evaluation, self.policy)
        if not self.dark.active:
            self.dark_lamps = ()
        elif breached and transition is not None:
            self.dark_lamps = tuple(out)
        if transition is None:
            return
        if breached:
            message = (f"circuit {self.circuit_id} (cabinet {ctx.circuit.cabinet}) dark: all {len(out)} lamps "
                       f"reporting are out: {', '.join(out)}")
        else:
            lit = len(reporting) - len(out)
            message = f"circuit {self.circuit_id}: {lit} of {len(reporting)} reporting lamps lit again"
        details = ctx.circuit.alert_details().refine(
            {"lamp_ids": ",".join(out), "lamps_reporting": str(len(reporting)), "lamps_total": str(total)},
            category=CIRCUIT_DARK, unit="",
        )
        self.transitions.append(replace(transition, message=message, details=details))

    def _timeouts(self, now: datetime) -> None:
        timeout = timedelta(seconds=self.config.control.command_timeout_s)
        for index, pending in enumerate(self.pending):
            deadline = pending.command.effective_time + timeout
            if pending.timed_out or now < deadline:
                continue
            self.pending[index] = replace(pending, timed_out=True)
            overdue = (now - pending.command.effective_time).total_seconds()
            evaluation = Evaluation(now, SEVERITY[COMMAND_TIMEOUT], overdue, timeout.total_seconds())
            self.command_alert, transition = episode_step(self.command_alert, evaluation, self.policy)
            if transition is not None:
                command = pending.command
                self.transitions.append(replace(
                    transition,
                    message=(f"circuit {self.circuit_id}: command {command.command_id} to {command.dimming_pct:g} % "
                             f"at {time_to_text(command.effective_time)} not confirmed after {timeout}"),
                    details=self.ctx.circuit.alert_details().refine(
                        {"command_id": command.command_id, "issuer": command.issuer},
                        category=COMMAND_TIMEOUT, unit="s",
                    ),
                ))

    def _confirm_if_done(self, index: int, moment: datetime) -> None:
        pending = self.pending[index]
        total = len(self.ctx.circuit.lamp_ids)
        if len(pending.matched) < math.ceil(self.config.control.confirm_fraction * total):
            return
        command = pending.command
        self.confirmations.append(CommandConfirmation(
            command.command_id, self.circuit_id, moment, len(pending.matched), pending.timed_out))
        del self.pending[index]
        if self.command_alert.active:
            _, transition = force_clear(
                self.command_alert, moment, 0.0, f"circuit {self.circuit_id}: command {command.command_id} confirmed",
                self.ctx.circuit.alert_details().refine(
                    {"command_id": command.command_id}, category=COMMAND_TIMEOUT, unit="s"),
            )
            self.command_alert = EpisodeState(DOMAIN, self.circuit_id, COMMAND_TIMEOUT, last_event_time=moment)
            if transition is not None:
                self.transitions.append(transition)

    # -- energy ---------------------------------------------------------------------------

    def _meter(self, lamp: LampState, spec: Lamp, reading: LampTelemetry, posix: float) -> None:
        metering = self.config.metering
        if reading.energy_wh is None:
            return
        previous_time = lamp.last_time
        if lamp.counter_wh is None or previous_time is None:
            lamp.counter_wh = reading.energy_wh
            return
        start = previous_time.timestamp()
        interval = posix - start
        delta, kind = counter_delta(lamp.counter_wh, reading.energy_wh, interval, spec.rated_power_w,
                                    metering.implausible_factor)
        lamp.counter_wh = reading.energy_wh
        if kind is DeltaKind.IMPLAUSIBLE:
            return
        if interval <= metering.max_hold_s:
            on_seconds = interval if lamp.on else 0.0
        else:  # the on/off state is unknown over a long gap; the energy bounds the burn time
            on_seconds = min(interval, delta / spec.rated_power_w * HOUR_S)
        baseline = spec.replaced_power_w * on_seconds / HOUR_S
        closed_before = self.closed_before
        for hour, share in split_by_hour(start, posix, 1.0):
            if closed_before is not None and hour < closed_before:
                hour = int(posix // HOUR_S) * HOUR_S
            bucket = self.hours.setdefault(hour, {})
            led, base = bucket.get(spec.id, (0.0, 0.0))
            bucket[spec.id] = (led + delta * share, base + baseline * share)

    def _advance(self, now: datetime) -> None:
        if self.watermark is None or now > self.watermark:
            self.watermark = now

    def _close_hours(self) -> None:
        if self.watermark is None:
            return
        limit = self.watermark.timestamp() - self.config.metering.hour_lateness_s
        closable = sorted(h for h in self.hours if h + HOUR_S <= limit)
        if self.closed_before is None or (closable and closable[-1] + HOUR_S > self.closed_before):
            boundary = int(limit // HOUR_S) * HOUR_S
            self.closed_before = max(boundary, self.closed_before or boundary)
        for hour in closable:
            self._emit_hour(hour, self.hours.pop(hour))
        # A local day closes when its last hour has: every hour of it is before closed_before.
        for day in sorted(self.days):
            end = datetime.fromisoformat(day).replace(tzinfo=self.ctx.zone) + timedelta(days=1)
            if end.timestamp() <= self.closed_before:
                start = datetime.fromisoformat(day).replace(tzinfo=self.ctx.zone).astimezone(UTC)
                self._emit_period(DAY, start, self.days.pop(day))

    def _emit_hour(self, hour: int, lamps: Mapping[str, tuple[float, float]]) -> None:
        start = datetime.fromtimestamp(hour, UTC)
        self._emit_period(HOUR, start, lamps)
        day = start.astimezone(self.ctx.zone).date().isoformat()
        totals = self.days.setdefault(day, {})
        for lamp_id, (led, base) in lamps.items():
            old_led, old_base = totals.get(lamp_id, (0.0, 0.0))
            totals[lamp_id] = (old_led + led, old_base + base)

    def _emit_period(self, period: str, start: datetime, lamps: Mapping[str, tuple[float, float]]) -> None:
        circuit = self.ctx.circuit
        factor = self.config.emission_t_per_kwh
        for lamp_id in sorted(lamps):
            led, _ = lamps[lamp_id]
            self.kpis.append(EnergyKpi(LIGHTING_ENERGY_KWH, "lamp", lamp_id, circuit.city, circuit.district, period,
                                       start, led / 1000.0))
        led_kwh = sum(v[0] for v in lamps.values()) / 1000.0
        base_kwh = sum(v[1] for v in lamps.values()) / 1000.0
        saved = base_kwh - led_kwh
        for kpi_id, value in ((LIGHTING_ENERGY_KWH, led_kwh), (LIGHTING_BASELINE_KWH, base_kwh),
                              (LIGHTING_SAVINGS_KWH, saved), (LIGHTING_SAVINGS_TCO2, saved * factor)):
            self.kpis.append(EnergyKpi(kpi_id, "circuit", circuit.id, circuit.city, circuit.district, period, start,
                                       value))

    # -- plumbing -------------------------------------------------------------------------

    def _lamp(self, lamp_id: str) -> LampState:
        if lamp_id not in self.copied:
            existing = self.lamps.get(lamp_id)
            self.lamps[lamp_id] = existing.copy() if existing is not None else LampState()
            self.copied.add(lamp_id)
        return self.lamps[lamp_id]

    def result(self) -> StepResult:
        state = CircuitState(
            circuit_id=self.circuit_id, lamps=self.lamps, dark=self.dark, feed_gap=self.feed_gap,
            command_alert=self.command_alert, pending=tuple(self.pending), dark_lamps=self.dark_lamps,
            watermark=self.watermark,
            closed_before=self.closed_before, hours=self.hours, days=self.days,
        )
        return StepResult(state, self.transitions, self.kpis, self.confirmations, self.rejected)


def _categorised(transition: AlertTransition, category: str, source_kind: str) -> AlertTransition:
    details = transition.details.refine(category=category, source_kind=source_kind, unit=UNITS.get(category, ""))
    return replace(transition, details=details)


def _lamp_message(rule: str, spec: Lamp, reading: LampTelemetry, breached: bool, threshold: float) -> str:
    subject = f"lamp {spec.id} ({spec.circuit})"
    if not breached:
        return f"{subject}: {rule} back to normal"
    if rule == LAMP_OUT:
        return f"{subject} out at night: {reading.power_w:g} W at {reading.dimming_pct:g} % (floor {threshold:g} W)"
    if rule == LAMP_ON_BY_DAY:
        return f"{subject} lit by day: {reading.power_w:g} W"
    if rule == OVER_POWER:
        return f"{subject} draws {reading.power_w:g} W at {reading.dimming_pct:g} % (limit {threshold:.1f} W)"
    if rule == VOLTAGE:
        return f"{subject} supply {reading.voltage_v:g} V outside the allowed range"
    return f"{subject} reports fault {reading.fault_code}"
