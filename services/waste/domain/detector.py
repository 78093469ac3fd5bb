"""The waste step function: one container's readings in; state, alerts, collections and KPIs out.

The processor keeps one :class:`ContainerState` per container id (JSON via ``to_dict``) and calls
:func:`apply_readings` once per record (a batch of one container's readings); the test oracle calls
the same function. Nothing here touches Kafka, clocks or I/O, and the result depends on event
times only, so a replay yields the same alert ids, revisions and collections.

Readings are validated, sorted by event time, and each one newer than the last accepted is
applied in turn; alerts go through the shared episode machine (:mod:`madina.alerts`). Rules
(thresholds in :class:`DetectionConfig`):

* ``container-full``: WARNING at a fill of 80 %, MAJOR at 95 %. The judged fill is the **median of
  the last 3 readings** of the current filling segment, so one sloshing or echo spike neither
  raises nor clears; clearing also needs the judged fill at or below 70 % for 30 min (hysteresis).
* **Emptying**: a reading at least 15 points below each of the last 3 readings and at most half
  of the lowest is a collection (a single reading dropping that far, e.g. a lost echo reading 0,
  is indistinguishable from one and counts; confirming by the next reading would delay every
  clear by one report). It closes the full alert at once (``force_clear``: an emptied container is not full,
  however briefly it was), is returned as a :class:`Collection`, and restarts the fill history
  the rate is estimated from (:mod:`.fillrate`).
* ``fire-risk`` (CRITICAL): temperature above 60 °C, or a rise of at least 10 °C at 0.5 °C/min or
  faster (30 °C/h) between two readings at most 60 min apart. Sun on a dark lid warms a container
  by well under 0.2 °C/min; smouldering waste catching fire climbs several degrees a minute.
  Clears at or below 50 °C without such a rise for 30 min.
* ``tipped-over`` (MAJOR): tilt of 45° or more at readings spanning at least 15 min; a truck
  tipping it into the hopper takes a minute or two and must not raise it. Clears when upright.
* ``lid-open`` (MINOR): lid reported open at readings spanning at least 30 min. Clears when shut.
* ``low-battery``: WARNING below 20 %, MINOR below 10 %, clears at 25 % (hysteresis).
* ``data-gap``: checked on a clock by :func:`check_data_gap` (the processor's timer, with a
  watermark): silent for 3 reporting intervals; the next reading clears it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property, lru_cache
from typing import Any, NamedTuple

from madina.alerts import (
    AlertDetails,
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
    step,
    touch,
)
from madina.alerts.timeutil import require_utc, time_from_text, time_to_text
from madina.eventtime import EventTimeBounds, event_time_problem
from services.waste.domain.containers import Container
from services.waste.domain.fillrate import MAX_HISTORY, FillEstimate, estimate_fill
from services.waste.domain.readings import Reading, validate_reading

DOMAIN = "waste"
RULE_FULL = "container-full"
RULE_FIRE = "fire-risk"
RULE_TIPPED = "tipped-over"
RULE_LID = "lid-open"
RULE_BATTERY = "low-battery"
DATA_GAP_CATEGORY = "data-gap"
CATEGORY = {RULE_FULL: "fill", RULE_FIRE: "fire", RULE_TIPPED: "tipped", RULE_LID: "lid", RULE_BATTERY: "battery"}
UNIT = {RULE_FULL: "ratio", RULE_FIRE: "°C", RULE_TIPPED: "°", RULE_LID: "min", RULE_BATTERY: "%"}


@dataclass(frozen=True)
class DetectionConfig:
    """Every threshold of the waste rules; the defaults are the documented behaviour."""

    full_warning_ratio: float = 0.80
    full_major_ratio: float = 0.95
    full_clear_ratio: float = 0.70
    full_clear_after: timedelta = timedelta(minutes=30)
    judged_readings: int = 3
    emptying_min_drop: float = 0.15
    emptying_max_remaining: float = 0.5
    fire_temperature_c: float = 60.0
    fire_rise_c: float = 10.0
    fire_rise_c_per_min: float = 0.5
    fire_rise_lookback: timedelta = timedelta(minutes=60)
    fire_clear_temperature_c: float = 50.0
    fire_clear_after: timedelta = timedelta(minutes=30)
    tipped_tilt_deg: float = 45.0
    tipped_after: timedelta = timedelta(minutes=15)
    lid_open_after: timedelta = timedelta(minutes=30)
    battery_warning_percent: float = 20.0
    battery_minor_percent: float = 10.0
    battery_clear_percent: float = 25.0
    gap_factor: float = 3.0
    data_gap_severity: Severity = Severity.WARNING
    event_time_bounds: EventTimeBounds = field(default_factory=EventTimeBounds)

    def policy(self, rule_id: str) -> EpisodePolicy:
        return self._policies.get(rule_id) or _IMMEDIATE

    @cached_property
    def _policies(self) -> dict[str, EpisodePolicy]:
        # Built once per config: the rules ask for their policy at every reading.
        return {
            RULE_FULL: EpisodePolicy(clear_after=self.full_clear_after, update_interval=None),
            RULE_FIRE: EpisodePolicy(clear_after=self.fire_clear_after, update_interval=timedelta(minutes=5)),
        }


_IMMEDIATE = EpisodePolicy(clear_after=timedelta(0), update_interval=None)


class RejectCode:
    """Stable reasons for refused readings, usable as metric labels."""

    INVALID = "invalid"
    WRONG_CONTAINER = "wrong_container"
    STALE = "stale"
    OUT_OF_BOUNDS = "out_of_bounds"


class Rejection(NamedTuple):
    reading: Reading
    code: str
    detail: str


@dataclass(frozen=True)
class Collection:
    """An emptying seen in the readings: the container was collected between the two times."""

    container_id: str
    city: str
    district: str
    stream: str
    previous_reading_time: datetime
    detect_time: datetime
    fill_ratio_before: float
    fill_ratio_after: float
    collected_l: float

    def to_dict(self) -> dict[str, Any]:
        return {
            **{k: getattr(self, k) for k in ("container_id", "city", "district", "stream")},
            "previous_reading_time": time_to_text(self.previous_reading_time),
            "detect_time": time_to_text(self.detect_time),
            "fill_ratio_before": self.fill_ratio_before,
            "fill_ratio_after": self.fill_ratio_after,
            "collected_l": self.collected_l,
        }


@dataclass(frozen=True)
class ContainerState:
    """Everything remembered about one container between records; JSON-safe via ``to_dict``."""

    container_id: str
    data_gap: DataGapState
    episodes: Mapping[str, EpisodeState] = field(default_factory=dict)
    fill_history: tuple[tuple[datetime, float], ...] = ()
    """Readings of the current filling segment (since the last emptying), newest last, bounded."""
    recent_temperatures: tuple[tuple[datetime, float], ...] = ()
    """Temperatures within the fire-rise lookback of the newest one."""
    last_reading: Reading | None = None
    last_emptied_time: datetime | None = None
    tilted_since: datetime | None = None
    lid_open_since: datetime | None = None

    @classmethod
    def new(cls, container_id: str) -> ContainerState:
        return cls(container_id=container_id, data_gap=DataGapState.new(DOMAIN, container_id))

    def episode(self, rule_id: str) -> EpisodeState:
        return self.episodes.get(rule_id) or EpisodeState(DOMAIN, self.container_id, rule_id)

    @property
    def active_rules(self) -> list[str]:
        active = [rule for rule, episode in sorted(self.episodes.items()) if episode.active]
        return [*active, DATA_GAP_CATEGORY] if self.data_gap.episode.active else active

    def fill_estimate(self) -> FillEstimate | None:
        return estimate_fill(self.fill_history)

    def to_dict(self) -> dict[str, Any]:
        """Compact: times as integer microseconds since the epoch, episodes as lists (an idle one
        is just its time); it is written per record at a live rate. :meth:`from_dict` also reads
        the earlier form (ISO times, episodes as ``EpisodeState.to_dict``)."""
        last = self.last_reading
        return {
            "container_id": self.container_id,
            "data_gap": _data_gap_to(self.data_gap),
            "episodes": {rule: _episode_to(episode) for rule, episode in sorted(self.episodes.items())},
            "fill_history": _series_to(self.fill_history),
            "recent_temperatures": _series_to(self.recent_temperatures),
            "last_reading": None if last is None else {
                "observe_time": micros_of(last.observe_time),
                "fill_ratio": last.fill_ratio,
                "temperature_c": last.temperature_c,
                "tilt_deg": last.tilt_deg,
                "lid_open": last.lid_open,
                "battery_percent": last.battery_percent,
            },
            "last_emptied_time": micros_of(self.last_emptied_time),
            "tilted_since": micros_of(self.tilted_since),
            "lid_open_since": micros_of(self.lid_open_since),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ContainerState:
        container_id = data["container_id"]
        last = data.get("last_reading")
        return cls(
            container_id=container_id,
            data_gap=_data_gap_from(data["data_gap"], container_id),
            episodes={rule: _episode_from(raw, container_id, rule) for rule, raw in data.get("episodes", {}).items()},
            fill_history=_series_from(data.get("fill_history", [])),
            recent_temperatures=_series_from(data.get("recent_temperatures", [])),
            last_reading=None if last is None else Reading(
                container_id=container_id,
                observe_time=time_of_micros(last["observe_time"]),
                fill_ratio=last["fill_ratio"],
                temperature_c=last.get("temperature_c"),
                tilt_deg=last.get("tilt_deg"),
                lid_open=last.get("lid_open"),
                battery_percent=last.get("battery_percent"),
            ),
            last_emptied_time=_moment(data.get("last_emptied_time")),
            tilted_since=_moment(data.get("tilted_since")),
            lid_open_since=_moment(data.get("lid_open_since")),
        )


@dataclass(frozen=True)
class ContainerStatus:
    """What the API shows and the KPIs read: the container's latest values and prediction."""

    container_id: str
    observe_time: datetime | None
    fill_ratio: float | None
    """The judged fill (median of the last readings), what the full rule sees."""
    fill_rate_per_hour: float | None
    predicted_full_time: datetime | None
    temperature_c: float | None
    tilt_deg: float | None
    lid_open: bool | None
    battery_percent: float | None
    last_emptied_time: datetime | None
    active_rules: tuple[str, ...]


class StepResult(NamedTuple):
    """What :func:`apply_readings` returns; unpacks as a 5-tuple."""

    state: ContainerState
    transitions: list[AlertTransition]
    collections: list[Collection]
    status: ContainerStatus | None
    """The container's status after the batch, ``None`` if the batch brought no accepted reading."""
    rejected: list[Rejection]


def apply_readings(
    state: ContainerState,
    readings: Sequence[Reading],
    container: Container,
    config: DetectionConfig = DetectionConfig(),
    now: datetime | None = None,
) -> StepResult:
    """Fold a batch of one container's readings into ``state`` (which is not changed).

    Invalid, foreign and stale (not newer than the newest accepted) readings come back in
    ``rejected``; with ``now`` (the caller's clock) so do readings outside ``config``'s event-time
    bounds of it.
    """
    rejected: list[Rejection] = []
    valid: list[Reading] = []
    for reading in readings:
        if reading.container_id != container.id:
            rejected.append(Rejection(reading, RejectCode.WRONG_CONTAINER, f"container_id: expected {container.id!r}"))
        elif problems := validate_reading(reading):
            rejected.append(Rejection(reading, RejectCode.INVALID, "; ".join(problems)))
        elif now is not None and (bounded := event_time_problem(reading.observe_time, now, config.event_time_bounds)):
            # The rule validate_reading applies with a clock, without checking the rest twice.
            rejected.append(Rejection(reading, RejectCode.OUT_OF_BOUNDS, f"observe_time: {bounded}"))
        elif reading.observe_time.tzinfo is UTC:
            valid.append(reading)
        else:
            valid.append(replace(reading, observe_time=require_utc(reading.observe_time)))
    fold = _Fold(state, container, config)
    for reading in sorted(valid, key=lambda r: r.observe_time):
        last = fold.last_reading
        if last is not None and reading.observe_time <= last.observe_time:
            detail = f"observe_time: not after the newest accepted reading ({last.observe_time.isoformat()})"
            rejected.append(Rejection(reading, RejectCode.STALE, detail))
            continue
        fold.apply(reading)
    if fold.last_reading is state.last_reading:  # nothing accepted
        return StepResult(state, fold.transitions, fold.collections, None, rejected)
    state = fold.state()
    return StepResult(state, fold.transitions, fold.collections, container_status(state), rejected)


def check_data_gap(
    state: ContainerState, now: datetime, container: Container, config: DetectionConfig = DetectionConfig()
) -> tuple[ContainerState, AlertTransition | None]:
    """Raise ``data-gap`` if the container's sensor has been silent too long at ``now`` (a watermark).

    Returns the very same state object when nothing changed, so a ticking caller can skip the write.
    """
    policy = DataGapPolicy(
        expected_interval=container.reporting_interval, gap_factor=config.gap_factor, severity=config.data_gap_severity
    )
    data_gap, transition = check_silence(state.data_gap, now, policy, _details(container, DATA_GAP_CATEGORY, "s"))
    if data_gap is state.data_gap:
        return state, None
    return replace(state, data_gap=data_gap), transition


def container_status(state: ContainerState) -> ContainerStatus:
    estimate = state.fill_estimate()
    last = state.last_reading
    return ContainerStatus(
        container_id=state.container_id,
        observe_time=last.observe_time if last else None,
        fill_ratio=_judged_fill(state.fill_history, DetectionConfig.judged_readings) if state.fill_history else None,
        fill_rate_per_hour=estimate.rate_per_hour if estimate else None,
        predicted_full_time=estimate.time_to_reach() if estimate else None,
        temperature_c=last.temperature_c if last else None,
        tilt_deg=last.tilt_deg if last else None,
        lid_open=last.lid_open if last else None,
        battery_percent=last.battery_percent if last else None,
        last_emptied_time=state.last_emptied_time,
        active_rules=tuple(state.active_rules),
    )


class _Fold:
    """One batch's readings folded into a container's state, one by one, in mutable locals.

    The rules run at every reading, and building a ``ContainerState``, an ``Evaluation`` with its
    message and an ``EpisodeState`` per rule per reading was most of the processor's time. So the
    state is built once per batch; a rule's message and details only when its episode emits
    (:func:`~madina.alerts.quiet_step` says when); and an idle episode meeting no breach, by far
    the common case, is left alone and :func:`~madina.alerts.touch`-ed once with the newest time
    at the end, which is what stepping it through every such reading gives.
    """

    def __init__(self, state: ContainerState, container: Container, config: DetectionConfig) -> None:
        self.container = container
        self.config = config
        self.container_id = state.container_id
        self.data_gap = state.data_gap
        self.episodes = dict(state.episodes)
        self.untouched: dict[str, datetime] = {}  # idle rule -> the newest quiet evaluation not yet applied
        self.history = list(state.fill_history)
        self.judged: float | None = None  # the judged fill of ``history`` as it stands, once known
        self.temperatures = list(state.recent_temperatures)
        self.last_reading = state.last_reading
        self.emptied_time = state.last_emptied_time
        self.tilted_since = state.tilted_since
        self.lid_since = state.lid_open_since
        self.transitions: list[AlertTransition] = []
        self.collections: list[Collection] = []

    def state(self) -> ContainerState:
        episodes = self.episodes
        for rule_id, moment in self.untouched.items():
            episodes[rule_id] = touch(episodes.get(rule_id) or EpisodeState(DOMAIN, self.container_id, rule_id), moment)
        return ContainerState(
            container_id=self.container_id,
            data_gap=self.data_gap,
            episodes=episodes,
            fill_history=tuple(self.history),
            recent_temperatures=tuple(self.temperatures),
            last_reading=self.last_reading,
            last_emptied_time=self.emptied_time,
            tilted_since=self.tilted_since,
            lid_open_since=self.lid_since,
        )

    def evaluate(self, rule_id: str, now: datetime, severity: Severity | None, value: float,
                 threshold: float | None, clear: bool, message: Callable[[], str]) -> None:
        episode = self.episodes.get(rule_id)
        if severity is None and (episode is None or episode.alert_id is None):
            self.untouched[rule_id] = now
            return
        self.untouched.pop(rule_id, None)
        if episode is None:
            episode = EpisodeState(DOMAIN, self.container_id, rule_id)
        policy = self.config.policy(rule_id)
        quiet = quiet_step(episode, now, severity, value, clear, policy)
        if quiet is not None:
            self.episodes[rule_id] = quiet
            return
        evaluation = Evaluation(
            event_time=now,
            severity=severity,
            observed_value=value,
            threshold=threshold,
            below_clear_level=clear,
            message=f"{self.container.id}: {message()}",
            details=_details(self.container, CATEGORY[rule_id], UNIT[rule_id]),
        )
        self.episodes[rule_id], transition = step(episode, evaluation, policy)
        if transition is not None:
            self.transitions.append(transition)

    def apply(self, reading: Reading) -> None:
        container, config = self.container, self.config
        now = reading.observe_time
        if self.data_gap.episode.alert_id is None:
            # What record_observation does for an idle gap, without its checks and allocations.
            previous = self.data_gap.last_observation_time
            if previous is None or now > previous:
                self.data_gap = DataGapState(self.data_gap.episode, now, self.data_gap.watched_since)
        else:
            self.data_gap, cleared = record_observation(
                self.data_gap, now, _details(container, DATA_GAP_CATEGORY, "s"))
            if cleared is not None:
                self.transitions.append(cleared)

        # Fill, emptying and the full rule.
        fill = reading.fill_ratio
        history = self.history
        if history:
            before = self.judged if self.judged is not None else _judged_fill(history, config.judged_readings)
            # Judged against the lowest recent reading: two "bag across the beam" spikes among three
            # readings lift the median, and must not turn the next honest reading into an emptying.
            floor = min([v for _, v in history[-config.judged_readings:]])
            if floor - fill >= config.emptying_min_drop and fill <= floor * config.emptying_max_remaining:
                self._emptied(reading, before)
                history = self.history = []
        history.append((now, fill))
        if len(history) > MAX_HISTORY:
            del history[:-MAX_HISTORY]  # a state stored with a longer window loses its oldest at once
        judged = self.judged = _judged_fill(history, config.judged_readings)
        if judged >= config.full_major_ratio:
            severity, threshold = Severity.MAJOR, config.full_major_ratio
        elif judged >= config.full_warning_ratio:
            severity, threshold = Severity.WARNING, config.full_warning_ratio
        else:
            severity, threshold = None, None
        above = f" (at or above {threshold:.0%})" if threshold is not None else ""
        self.evaluate(RULE_FULL, now, severity, judged, threshold, judged <= config.full_clear_ratio,
                      lambda: f"fill {judged:.0%}{above}")

        # Fire risk: absolute temperature or a fast rise.
        if reading.temperature_c is not None:
            temp = reading.temperature_c
            lookback = config.fire_rise_lookback
            temperatures = self.temperatures  # in time order: those past the lookback are at its front
            while temperatures and now - temperatures[0][0] > lookback:
                del temperatures[0]
            rise = _fast_rise(temperatures, now, temp, config)
            if temp > config.fire_temperature_c:
                self.evaluate(RULE_FIRE, now, Severity.CRITICAL, temp, config.fire_temperature_c, False,
                              lambda: f"temperature {temp:.1f} °C above {config.fire_temperature_c:g} °C: fire risk")
            elif rise is not None:
                base_time, base = rise
                minutes = (now - base_time).total_seconds() / 60
                self.evaluate(RULE_FIRE, now, Severity.CRITICAL, temp, base + config.fire_rise_c, False,
                              lambda: f"temperature rose {temp - base:.1f} °C in {minutes:.0f} min "
                                      f"({(temp - base) / minutes:.2f} °C/min): fire risk")
            else:
                self.evaluate(RULE_FIRE, now, None, temp, None, temp <= config.fire_clear_temperature_c,
                              lambda: f"temperature {temp:.1f} °C")
            temperatures.append((now, temp))

        # Tipped over: sustained tilt.
        if reading.tilt_deg is not None:
            tilt = reading.tilt_deg
            tipped = tilt >= config.tipped_tilt_deg
            tilted_since = self.tilted_since = (self.tilted_since or now) if tipped else None
            tipped_held = tilted_since is not None and now - tilted_since >= config.tipped_after
            self.evaluate(RULE_TIPPED, now, Severity.MAJOR if tipped_held else None, tilt,
                          config.tipped_tilt_deg if tipped_held else None, not tipped,
                          lambda: f"tilted {tilt:.0f}°" + (" (tipped over)" if tipped_held else ""))

        # Lid left open: sustained.
        if reading.lid_open is not None:
            lid_open = reading.lid_open
            lid_since = self.lid_since = (self.lid_since or now) if lid_open else None
            minutes_open = (now - lid_since).total_seconds() / 60 if lid_since is not None else 0.0
            lid_held = lid_since is not None and now - lid_since >= config.lid_open_after
            limit = config.lid_open_after.total_seconds() / 60
            self.evaluate(RULE_LID, now, Severity.MINOR if lid_held else None, minutes_open,
                          limit if lid_held else None, not lid_open,
                          lambda: f"lid open for {minutes_open:.0f} min" if lid_open else "lid closed")

        # Battery.
        if reading.battery_percent is not None:
            battery = reading.battery_percent
            if battery < config.battery_minor_percent:
                severity, threshold = Severity.MINOR, config.battery_minor_percent
            elif battery < config.battery_warning_percent:
                severity, threshold = Severity.WARNING, config.battery_warning_percent
            else:
                severity, threshold = None, None
            self.evaluate(RULE_BATTERY, now, severity, battery, threshold, battery >= config.battery_clear_percent,
                          lambda: f"battery {battery:.0f} %")

        self.last_reading = reading

    def _emptied(self, reading: Reading, before: float) -> None:
        """A collection: recorded, and the full alert closed at once."""
        container, now = self.container, reading.observe_time
        assert self.last_reading is not None
        self.collections.append(Collection(
            container_id=container.id,
            city=container.city,
            district=container.district,
            stream=container.stream.value,
            previous_reading_time=self.last_reading.observe_time,
            detect_time=now,
            fill_ratio_before=before,
            fill_ratio_after=reading.fill_ratio,
            collected_l=round((before - reading.fill_ratio) * container.volume_l, 1),
        ))
        full = self.episodes.get(RULE_FULL)
        if full is not None and full.active:
            message = f"{container.id}: emptied (fill {before:.0%} -> {reading.fill_ratio:.0%})"
            self.episodes[RULE_FULL], transition = force_clear(
                full, now, reading.fill_ratio, message, _details(container, CATEGORY[RULE_FULL], UNIT[RULE_FULL])
            )
            if transition is not None:
                self.transitions.append(transition)
        self.emptied_time = now


def _judged_fill(history: Sequence[tuple[datetime, float]], count: int) -> float:
    """The median of the last ``count`` fills (``statistics.median``'s value, at a fraction of its cost)."""
    values = sorted([v for _, v in history[-count:]])
    middle = len(values) // 2
    return float(values[middle]) if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def _fast_rise(
    earlier: Sequence[tuple[datetime, float]], now: datetime, temp: float, config: DetectionConfig
) -> tuple[datetime, float] | None:
    """The earlier reading from which ``temp`` is a fire-like rise (the largest), if any."""
    if not earlier or temp - min([value for _, value in earlier]) < config.fire_rise_c:
        return None
    best: tuple[datetime, float] | None = None
    for moment, value in earlier:
        minutes = (now - moment).total_seconds() / 60
        rise = temp - value
        fast = minutes > 0 and rise >= config.fire_rise_c and rise / minutes >= config.fire_rise_c_per_min
        if fast and (best is None or value < best[1]):
            best = (moment, value)
    return best


def rule_details(container: Container, rule_id: str) -> AlertDetails:
    """The details every transition of ``rule_id`` on ``container`` carries (data-gap included)."""
    if rule_id == DATA_GAP_CATEGORY:
        return _details(container, DATA_GAP_CATEGORY, "s")
    return _details(container, CATEGORY[rule_id], UNIT[rule_id])


@lru_cache(maxsize=8192)
def _details(container: Container, category: str, unit: str) -> AlertDetails:
    # Cached (both are frozen): every rule asks for its details at every reading, and building
    # them was a quarter of the step's time.
    return container.alert_details().refine(category=category, unit=unit)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


# A time's microseconds, remembered: a reading's time is written with the state after every record
# while it stays in the fill history (and the five rules' episodes all hold the newest), and a
# dictionary hit costs a quarter of the arithmetic. Bounded: emptied when it reaches the size.
_MICROS_KNOWN: dict[datetime, int] = {}
_MICROS_KNOWN_MAX = 1 << 16


def _micros_new(moment: datetime) -> int:
    if len(_MICROS_KNOWN) >= _MICROS_KNOWN_MAX:
        _MICROS_KNOWN.clear()
    micros = _MICROS_KNOWN[moment] = (moment - _EPOCH) // _MICROSECOND
    return micros


def micros_of(moment: datetime | None) -> int | None:
    """Integer microseconds since the epoch, how stored states hold times: exact, and far cheaper
    to write and read than ISO text."""
    if moment is None:
        return None
    micros = _MICROS_KNOWN.get(moment)
    return _micros_new(moment) if micros is None else micros


def _moment(raw: int | str | None) -> datetime | None:
    """Inverse of :func:`_micros`; ISO text is what states written before the integer form hold."""
    if raw is None:
        return None
    return time_from_text(raw) if isinstance(raw, str) else _EPOCH + timedelta(0, 0, raw)  # positional: faster


def time_of_micros(raw: int | str) -> datetime:
    """Inverse of :func:`micros_of` (ISO text too, as older states hold it)."""
    moment = _moment(raw)
    assert moment is not None
    return moment


def _series_to(series: Sequence[tuple[datetime, float]]) -> list[list[Any]]:
    """Times as integer microseconds since the epoch (a third of the ISO text's size: the fill
    history is most of the table value)."""
    known = _MICROS_KNOWN.get
    return [[known(t) or _micros_new(t), v] for t, v in series]


def _series_from(raw: Sequence[Sequence[Any]]) -> tuple[tuple[datetime, float], ...]:
    return tuple((_EPOCH + timedelta(0, 0, t) if type(t) is int else time_of_micros(t), float(v)) for t, v in raw)


_IDLE_FIELDS = (None, None, None, 0, None, None, None)  # what an idle episode holds besides its time


def _episode_to(episode: EpisodeState) -> list[Any]:
    """``[last event time]`` for an idle episode (the usual case), every field for an active one;
    domain, source and rule are the state's own and not repeated."""
    if episode.alert_id is None and (
        episode.raise_time, episode.severity, episode.threshold, episode.revision, episode.last_emit_time,
        episode.last_emitted_value, episode.clear_hold_since,
    ) == _IDLE_FIELDS:
        return [micros_of(episode.last_event_time)]
    return [
        micros_of(episode.last_event_time), episode.alert_id, micros_of(episode.raise_time),
        None if episode.severity is None else int(episode.severity), episode.threshold, episode.revision,
        micros_of(episode.last_emit_time), episode.last_emitted_value, micros_of(episode.clear_hold_since),
    ]


def _episode_from(raw: Mapping[str, Any] | Sequence[Any], source_id: str, rule_id: str) -> EpisodeState:
    if isinstance(raw, Mapping):  # EpisodeState.to_dict, as states written before the compact form hold
        return EpisodeState.from_dict(raw)
    if len(raw) == 1:
        return EpisodeState(DOMAIN, source_id, rule_id, last_event_time=_moment(raw[0]))
    last_event, alert, raised, severity, threshold, revision, last_emit, last_value, hold = raw
    return EpisodeState(
        DOMAIN, source_id, rule_id, last_event_time=_moment(last_event), alert_id=alert, raise_time=_moment(raised),
        severity=None if severity is None else Severity(severity), threshold=threshold, revision=revision,
        last_emit_time=_moment(last_emit), last_emitted_value=last_value, clear_hold_since=_moment(hold),
    )


def _data_gap_to(gap: DataGapState) -> dict[str, Any]:
    """Without its episode while that is idle and new (rebuilt on load): most records find it so."""
    data: dict[str, Any] = {
        "last_observation_time": micros_of(gap.last_observation_time),
        "watched_since": micros_of(gap.watched_since),
    }
    if gap.episode != DataGapState.new(DOMAIN, gap.episode.source_id).episode:
        data["episode"] = _episode_to(gap.episode)
    return data


def _data_gap_from(data: Mapping[str, Any], container_id: str) -> DataGapState:
    fresh = DataGapState.new(DOMAIN, container_id).episode
    raw = data.get("episode")
    return DataGapState(
        episode=fresh if raw is None else _episode_from(raw, container_id, fresh.rule_id),
        last_observation_time=_moment(data.get("last_observation_time")),
        watched_since=_moment(data.get("watched_since")),
    )
