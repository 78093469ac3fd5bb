"""Replay: what alerts a profile set would have raised on recorded observations, and how two differ.

The core of ``madina environment replay --profile FILE --from T1 --to T2``: the command reads the
observations (from the topic or a file) and the profiles, and this module does the rest, purely.
:func:`replay` runs the evaluator from a fresh state per station over the observations in event
time order, exactly as the processor would, and turns the alert transitions into
:class:`Episode` records; :func:`compare_runs` says which episodes only one of two runs has, and
which both have but with a different start, end or duration.

Two runs' episodes of the same rule on the same station are matched when their time spans
overlap (a stricter threshold opens later and closes earlier, so ids differ); ``rule_key`` maps a
rule id to what must be equal for a match (by default the rule id itself: two versions of one
profile; pass e.g. ``lambda r: r.split("/", 1)[1]`` to compare profiles of different names).
:func:`per_station_rule` counts a comparison per station and rule, for a report's summary.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from madina.alerts import AlertState, AlertTransition, Severity
from madina.alerts.timeutil import require_utc
from services.environment.domain.evaluator import EvaluatorConfig, StationState, apply_observations
from services.environment.domain.measurands import Observation
from services.environment.domain.profiles import Rule
from services.environment.domain.stations import Station


@dataclass(frozen=True)
class Episode:
    """One alert episode of a replay; ``cleared_at`` is ``None`` if still open at the end."""

    alert_id: str
    station_id: str
    rule_id: str
    raised_at: datetime
    cleared_at: datetime | None
    duration: timedelta
    """To ``cleared_at``, or to the replay's last event time for an open episode."""
    peak_severity: Severity


@dataclass(frozen=True)
class ReplayResult:
    episodes: tuple[Episode, ...]
    """Ordered by raise time, then station and rule."""
    rejected: int
    """Observations the evaluator refused (invalid, unknown station, too late)."""
    end: datetime | None
    """The newest event time replayed."""


@dataclass(frozen=True)
class ChangedEpisode:
    """Episodes of the same rule and station in both runs whose times differ."""

    before: Episode
    after: Episode

    @property
    def duration_change(self) -> timedelta:
        return self.after.duration - self.before.duration


@dataclass(frozen=True)
class ReplayComparison:
    only_in_first: tuple[Episode, ...] = ()
    only_in_second: tuple[Episode, ...] = ()
    changed: tuple[ChangedEpisode, ...] = ()
    unchanged: tuple[tuple[Episode, Episode], ...] = field(default=())

    @property
    def identical(self) -> bool:
        return not (self.only_in_first or self.only_in_second or self.changed)


@dataclass(frozen=True)
class StationRuleCounts:
    """One station and rule (as ``rule_key`` names it) of a comparison: episodes per run and how they matched."""

    station_id: str
    rule: str
    first: int = 0
    second: int = 0
    unchanged: int = 0
    changed: int = 0
    only_in_first: int = 0
    only_in_second: int = 0


def per_station_rule(
    comparison: ReplayComparison, rule_key: Callable[[str], str] = lambda rule_id: rule_id
) -> tuple[StationRuleCounts, ...]:
    """The comparison counted per station and rule, ordered by station then rule."""
    counts: dict[tuple[str, str], dict[str, int]] = {}

    def add(episode: Episode, **increments: int) -> None:
        tally = counts.setdefault((episode.station_id, rule_key(episode.rule_id)), {})
        for name, increment in increments.items():
            tally[name] = tally.get(name, 0) + increment

    for episode in comparison.only_in_first:
        add(episode, first=1, only_in_first=1)
    for episode in comparison.only_in_second:
        add(episode, second=1, only_in_second=1)
    for change in comparison.changed:
        add(change.before, first=1, second=1, changed=1)
    for before, _after in comparison.unchanged:
        add(before, first=1, second=1, unchanged=1)
    return tuple(StationRuleCounts(station, rule, **tally) for (station, rule), tally in sorted(counts.items()))


def replay(
    observations: Iterable[Observation],
    rules: Sequence[Rule],
    stations: Mapping[str, Station],
    config: EvaluatorConfig = EvaluatorConfig(),
    progress: Callable[[str, int, int], None] | None = None,
) -> ReplayResult:
    """Run the evaluator from fresh state over ``observations`` and collect the alert episodes.

    Observations of unknown stations count as rejected. Event-time bounds against a clock are not
    applied (a replay's data is old by design); lateness against each station's newest reading is.
    ``progress(station_id, done, total)`` is called before each station, for a caller's progress line.
    """
    by_station: dict[str, list[Observation]] = {}
    rejected = 0
    for observation in observations:
        if observation.station_id in stations:
            by_station.setdefault(observation.station_id, []).append(observation)
        else:
            rejected += 1
    transitions: list[AlertTransition] = []
    end: datetime | None = None
    for done, station_id in enumerate(sorted(by_station)):
        if progress is not None:
            progress(station_id, done, len(by_station))
        station = stations[station_id]
        batch = sorted(by_station[station_id], key=lambda o: require_utc(o.observe_time))
        result = apply_observations(StationState.new(station_id), batch, rules, station, config)
        transitions.extend(result.transitions)
        rejected += len(result.rejected)
        newest = result.state.windows.max_event_time
        if newest is not None and (end is None or newest > end):
            end = newest
    return ReplayResult(episodes_from(transitions, end), rejected, end)


def episodes_from(transitions: Iterable[AlertTransition], end: datetime | None) -> tuple[Episode, ...]:
    """Fold alert transitions into one :class:`Episode` per alert id."""
    opened: dict[str, AlertTransition] = {}
    peak: dict[str, Severity] = {}
    cleared: dict[str, datetime] = {}
    for transition in transitions:
        key = transition.alert_id
        if transition.state is AlertState.RAISED:
            opened.setdefault(key, transition)
        peak[key] = max(peak.get(key, transition.severity), transition.severity)
        if transition.state is AlertState.CLEARED:
            cleared[key] = transition.clear_time or transition.event_time
    episodes: list[Episode] = []
    for key, first in opened.items():
        stop = cleared.get(key)
        last = stop or end or first.raise_time
        episodes.append(Episode(
            alert_id=key,
            station_id=first.source_id,
            rule_id=first.rule_id,
            raised_at=first.raise_time,
            cleared_at=stop,
            duration=max(last - first.raise_time, timedelta(0)),
            peak_severity=peak[key],
        ))
    return tuple(sorted(episodes, key=lambda e: (e.raised_at, e.station_id, e.rule_id)))


def compare_runs(
    first: ReplayResult | Sequence[Episode],
    second: ReplayResult | Sequence[Episode],
    rule_key: Callable[[str], str] = lambda rule_id: rule_id,
) -> ReplayComparison:
    """Which episodes appear in only one run, and which both have with different times.

    Episodes match on station, ``rule_key(rule_id)`` and overlapping spans, each at most once,
    earliest first.
    """
    a = first.episodes if isinstance(first, ReplayResult) else tuple(first)
    b = second.episodes if isinstance(second, ReplayResult) else tuple(second)
    unmatched = list(b)
    only_first: list[Episode] = []
    changed: list[ChangedEpisode] = []
    unchanged: list[tuple[Episode, Episode]] = []
    for episode in a:
        match = next((other for other in unmatched if _same(episode, other, rule_key)), None)
        if match is None:
            only_first.append(episode)
            continue
        unmatched.remove(match)
        if (episode.raised_at, episode.cleared_at, episode.duration) == (match.raised_at, match.cleared_at,
                                                                         match.duration):
            unchanged.append((episode, match))
        else:
            changed.append(ChangedEpisode(episode, match))
    return ReplayComparison(tuple(only_first), tuple(unmatched), tuple(changed), tuple(unchanged))


def _same(a: Episode, b: Episode, rule_key: Callable[[str], str]) -> bool:
    if a.station_id != b.station_id or rule_key(a.rule_id) != rule_key(b.rule_id):
        return False
    a_end = a.raised_at + a.duration
    b_end = b.raised_at + b.duration
    return a.raised_at <= b_end and b.raised_at <= a_end
