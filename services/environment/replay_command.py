"""``madina environment replay --profile FILE --from T1 --to T2``: what a proposed threshold profile
would have raised on the stored observations, against the alerts actually raised (or, with
``--against current``, against what the profiles in force raise when replayed now).

It reads the observation topics (``environment.*.v1``, kept 14 days) whole with
:func:`madina.bus.reader.read_topic` (no consumer group, nothing committed), keeps the
observations made in ``[T1, T2)``, and runs the pure :func:`~.domain.replay.replay` under every
profile of ``FILE`` (each name's highest version there). What it compares that run with:

* ``--against raised`` (the default): the environment's alert revisions on ``alerts.v1`` (30 days
  kept), read the same way, folded into episodes by :func:`~.domain.raised.raised_episodes`
  (data-gap alerts left out; only episodes active in ``[T1, T2)``). The codec checks each
  record's signature when ``MADINA_ALERT_SIGNING_KEY_FILE`` is set, so forged alerts are skipped
  as the alert ledger skips them; without a key nothing is signed, nothing checked.
* ``--against current``: a second replay under the profiles in force (``MADINA_ENVIRONMENT_PROFILES``
  and extra files, as the processor reads them), to see a change of profile on its own, free of
  what the live run also saw (late data, restarts, a profile changed within the period).

It prints, per station and rule, how many episodes each side has and how they matched, then the
episodes only one side has, those both have with other times, and the unchanged ones, as a table
or with ``--json`` as JSON; progress goes to stderr. Nothing is published: a replay raises no alert.

Each station starts from a fresh state at its first observation after ``T1``, so a 24 h rule is
judged once 75 % of its hours are covered (choose ``T1`` a day before the period of interest), and
a year's exceedance count starts at ``T1`` (allowance alerts raised live count from January).
Episodes match on station, rule (the id without the profile name, so ``eu-2008-50/pm10-24h``
meets ``eu-2024-2881/pm10-24h``) and overlapping spans.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from madina.alerts import AlertState, Severity
from madina.bus.reader import read_topic
from madina.bus.topics import ALERTS
from madina.contract import InvalidRecord
from madina_proto.alerts.v1 import alerts_pb2
from services.environment.convert import observations_from_batch
from services.environment.domain.durations import format_duration
from services.environment.domain.evaluator import DOMAIN, EvaluatorConfig
from services.environment.domain.measurands import Observation
from services.environment.domain.profiles import (
    ProfileError,
    Rule,
    load_profiles,
    select_rules,
)
from services.environment.domain.raised import AlertRevision, raised_episodes
from services.environment.domain.replay import (
    Episode,
    ReplayComparison,
    StationRuleCounts,
    compare_runs,
    per_station_rule,
    replay,
)
from services.environment.domain.stations import Station, load_stations
from services.environment.settings import EnvironmentProcessorSettings
from services.environment.topics import OBSERVATION_TOPICS

PROGRESS_EVERY = 10_000
AGAINST_RAISED = "raised"
AGAINST_CURRENT = "current"
BASELINE_LABEL = {AGAINST_RAISED: "raised", AGAINST_CURRENT: "in force"}
"""How the report names the side the proposal is compared with (JSON keys use ``_`` for spaces)."""


class ReplayUsageError(ValueError):
    """A bad argument, named: the profile file's field, or which time and why."""


@dataclass(frozen=True)
class ReplayReport:
    """The proposal's run compared with the baseline (alerts raised, or profiles in force), and the inputs."""

    comparison: ReplayComparison
    observations: int
    current_profiles: tuple[str, ...]
    """The baseline's profiles: those in force, or those the raised alerts' rules belong to."""
    proposed_profiles: tuple[str, ...]
    start: datetime
    end: datetime
    against: str = AGAINST_CURRENT

    @property
    def baseline(self) -> str:
        return BASELINE_LABEL[self.against]

    @property
    def counts(self) -> tuple[StationRuleCounts, ...]:
        return per_station_rule(self.comparison, local_rule_id)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", required=True, type=Path, help="YAML file with the proposed profile(s)")
    parser.add_argument(
        "--from", dest="start", required=True, help="start of the period, RFC 3339, e.g. 2026-11-01T00:00:00Z"
    )
    parser.add_argument("--to", dest="end", required=True, help="end of the period (exclusive), RFC 3339")
    parser.add_argument(
        "--against", choices=(AGAINST_RAISED, AGAINST_CURRENT), default=AGAINST_RAISED,
        help="compare with the alerts actually raised on alerts.v1 (default), or with a replay "
             "under the profiles in force now",
    )
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON instead of a table")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


def run(args: argparse.Namespace) -> int:
    """The command: 0 on success, 2 on a bad argument (message on stderr)."""
    from madina.settings import load_settings

    progress = None if args.quiet else Progress(sys.stderr)
    try:
        start = parse_time(args.start, "--from")
        end = parse_time(args.end, "--to")
        if end <= start:
            raise ReplayUsageError(f"--to: {args.end} is not after --from {args.start}")
        proposed, proposed_names = proposed_rules(args.profile)
        settings = load_settings(EnvironmentProcessorSettings)
        current = select_rules(load_profiles(settings.environment_extra_profile_files), settings.environment_profiles)
    except (ReplayUsageError, ProfileError) as error:
        print(f"madina environment replay: {error}", file=sys.stderr)
        return 2
    stations = {s.id: s for s in load_stations(settings.environment_stations_file, serving=settings.cities)}
    observations = asyncio.run(read_observations(settings.bootstrap_servers, start, end, progress))
    if args.against == AGAINST_RAISED:
        revisions = asyncio.run(read_alert_revisions(settings.bootstrap_servers, progress))
        report = compare_with_raised(
            observations, revisions, proposed, stations, start, end, proposed_names=proposed_names, progress=progress
        )
    else:
        report = compare_profiles(
            observations, current, proposed, stations, start, end,
            current_names=tuple(settings.environment_profiles), proposed_names=proposed_names, progress=progress,
        )
    print(json.dumps(report_json(report), indent=2) if args.json else report_table(report))
    return 0


def parse_time(text: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ReplayUsageError(
            f"{option}: {text!r} is not an RFC 3339 time, e.g. 2026-11-01T00:00:00Z"
        ) from None
    if moment.tzinfo is None:
        raise ReplayUsageError(f"{option}: {text!r} has no UTC offset (add Z or e.g. +01:00)")
    return moment.astimezone(UTC)


def proposed_rules(path: Path) -> tuple[tuple[Rule, ...], tuple[str, ...]]:
    """Every profile of ``path`` (its highest version of each name); ProfileError names the field."""
    if not path.is_file():
        raise ReplayUsageError(f"--profile: {path} is not a file")
    profiles = load_profiles([path], include_builtin=False)
    names = tuple(sorted({profile.name for profile in profiles.values()}))
    if not names:
        raise ProfileError(f"{path}: field 'profiles': no profile defined")
    return select_rules(profiles, names), names


async def read_observations(
    bootstrap: str, start: datetime, end: datetime, progress: Progress | None = None
) -> list[Observation]:
    """Observations made in ``[start, end)`` on every observation topic, as stored."""
    kept: list[Observation] = []
    for spec in OBSERVATION_TOPICS:
        read = 0

        def on_batch(_key: str, batch: Any, topic: str = spec.name) -> None:
            nonlocal read
            if batch is None:
                return
            try:
                observations = observations_from_batch(batch)
            except InvalidRecord:
                return  # the processor dead-lettered it; a replay skips it too
            kept.extend(o for o in observations if start <= o.observe_time < end)
            read += 1
            if progress is not None and read % PROGRESS_EVERY == 0:
                progress(f"{topic}: {read} records read, {len(kept)} observations in the period")

        await read_topic(bootstrap, spec, on_batch, follow=False, wait_for_topic=False)
        if progress is not None:
            progress(f"{spec.name}: {read} records read, {len(kept)} observations in the period")
    return kept


async def read_alert_revisions(bootstrap: str, progress: Progress | None = None) -> list[AlertRevision]:
    """The environment's alert revisions on ``alerts.v1``, as stored (forged ones skipped when a key is set)."""
    revisions: list[AlertRevision] = []

    def on_event(_key: str, event: alerts_pb2.AlertEvent | None) -> None:
        if event is not None and event.domain == DOMAIN:
            revisions.append(alert_revision(event))

    await read_topic(bootstrap, ALERTS, on_event, follow=False, wait_for_topic=False)
    if progress is not None:
        progress(f"{ALERTS.name}: {len(revisions)} environment alert revisions")
    return revisions


def alert_revision(event: alerts_pb2.AlertEvent) -> AlertRevision:
    """The plain values of one AlertEvent; InvalidRecord (the reader skips it) without a state or severity."""
    try:
        state, severity = AlertState(event.state), Severity(event.severity)
    except ValueError:
        raise InvalidRecord(f"alert {event.alert_id[:64]!r}: state or severity unspecified") from None
    return AlertRevision(
        alert_id=event.alert_id,
        revision=event.revision,
        domain=event.domain,
        category=event.category,
        station_id=event.source.entity_id,
        rule_id=event.rule_id,
        state=state,
        severity=severity,
        raise_time=event.raise_time.ToDatetime(tzinfo=UTC),
        clear_time=event.clear_time.ToDatetime(tzinfo=UTC) if event.HasField("clear_time") else None,
        event_time=event.event_time.ToDatetime(tzinfo=UTC),
    )


def compare_with_raised(
    observations: Sequence[Observation],
    revisions: Sequence[AlertRevision],
    proposed: Sequence[Rule],
    stations: dict[str, Station],
    start: datetime,
    end: datetime,
    *,
    proposed_names: tuple[str, ...] = (),
    config: EvaluatorConfig = EvaluatorConfig(),
    progress: Progress | None = None,
) -> ReplayReport:
    """Replay under the proposed profiles and compare the episodes with those actually raised in the period."""
    on_station = progress.stations("replay under the proposed profiles") if progress is not None else None
    proposal = replay(observations, proposed, stations, config, on_station)
    raised = raised_episodes(revisions, start, end, open_until=proposal.end)
    raised_profiles = tuple(sorted({episode.rule_id.split("/", 1)[0] for episode in raised}))
    comparison = compare_runs(raised, proposal, rule_key=local_rule_id)
    return ReplayReport(comparison, len(observations), raised_profiles, proposed_names, start, end, AGAINST_RAISED)


def compare_profiles(
    observations: Sequence[Observation],
    current: Sequence[Rule],
    proposed: Sequence[Rule],
    stations: dict[str, Station],
    start: datetime,
    end: datetime,
    *,
    current_names: tuple[str, ...] = (),
    proposed_names: tuple[str, ...] = (),
    config: EvaluatorConfig = EvaluatorConfig(),
    progress: Progress | None = None,
) -> ReplayReport:
    """Replay under the profiles in force and under the proposed ones, and compare the episodes."""
    runs = []
    for label, rules in (("in force", current), ("proposed", proposed)):
        on_station = None
        if progress is not None:
            on_station = progress.stations(f"replay under the profiles {label}")
        runs.append(replay(observations, rules, stations, config, on_station))
    comparison = compare_runs(runs[0], runs[1], rule_key=local_rule_id)
    return ReplayReport(comparison, len(observations), current_names, proposed_names, start, end)


def local_rule_id(rule_id: str) -> str:
    """``"eu-2024-2881/pm10-24h"`` -> ``"pm10-24h"``: the rule within its profile."""
    return rule_id.split("/", 1)[-1]


class Progress:
    """Progress lines on a stream (stderr), so stdout holds only the report."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def stations(self, what: str) -> Callable[[str, int, int], None]:
        def report(station_id: str, done: int, total: int) -> None:
            self(f"{what}: station {done + 1} of {total} ({station_id})")

        return report


def report_table(report: ReplayReport) -> str:
    comparison = report.comparison
    baseline = report.baseline
    lines = [
        f"Replay of {report.observations} observations from {_time(report.start)} to {_time(report.end)}",
        f"  {baseline}: {', '.join(report.current_profiles) or '-'}   proposed: {', '.join(report.proposed_profiles)}",
        f"  only {baseline}: {len(comparison.only_in_first)}   only proposed: {len(comparison.only_in_second)}   "
        f"changed: {len(comparison.changed)}   unchanged: {len(comparison.unchanged)}",
        "",
    ]
    if report.counts:
        lines.extend(_aligned(
            ("station", "rule", baseline, "proposed", "unchanged", "changed", f"only {baseline}", "only proposed"),
            [(c.station_id, c.rule, *(str(n) for n in (c.first, c.second, c.unchanged, c.changed, c.only_in_first,
                                                          c.only_in_second))) for c in report.counts],
        ))
        lines.append("")
    header = ("change", "station", "rule", "raised at", "cleared at", "duration", "peak")
    rows: list[tuple[str, ...]] = []
    for episode in comparison.only_in_first:
        rows.append((f"only {baseline}", *_cells(episode)))
    for episode in comparison.only_in_second:
        rows.append(("only proposed", *_cells(episode)))
    for change in comparison.changed:
        before, after = _cells(change.before), _cells(change.after)
        rows.append(("changed", after[0], f"{before[1]} -> {after[1]}",
                     *(b if b == a else f"{b} -> {a}" for b, a in zip(before[2:], after[2:], strict=True))))
    for before_episode, after_episode in comparison.unchanged:
        rows.append(("unchanged", *_cells(before_episode)[:1], local_rule_id(after_episode.rule_id),
                     *_cells(after_episode)[2:]))
    if not rows:
        return "\n".join([*lines, "No alert episodes on either side."])
    return "\n".join([*lines, *_aligned(header, rows)])


def _aligned(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in (header, *rows)]


def report_json(report: ReplayReport) -> dict[str, Any]:
    """Keys name the baseline: ``in_force`` against the current profiles, ``raised`` against alerts.v1."""
    comparison = report.comparison
    baseline = report.baseline.replace(" ", "_")
    return {
        "from": _time(report.start),
        "to": _time(report.end),
        "against": report.against,
        "observations": report.observations,
        f"profiles_{baseline}": list(report.current_profiles),
        "proposed_profiles": list(report.proposed_profiles),
        "per_station_rule": [
            {"station_id": c.station_id, "rule": c.rule, baseline: c.first, "proposed": c.second,
             "unchanged": c.unchanged, "changed": c.changed, f"only_{baseline}": c.only_in_first,
             "only_proposed": c.only_in_second}
            for c in report.counts
        ],
        f"only_{baseline}": [episode_json(e) for e in comparison.only_in_first],
        "only_proposed": [episode_json(e) for e in comparison.only_in_second],
        "changed": [
            {baseline: episode_json(c.before), "proposed": episode_json(c.after),
             "duration_change_s": c.duration_change.total_seconds()}
            for c in comparison.changed
        ],
        "unchanged": [{baseline: episode_json(a), "proposed": episode_json(b)} for a, b in comparison.unchanged],
    }


def episode_json(episode: Episode) -> dict[str, Any]:
    return {
        "alert_id": episode.alert_id,
        "station_id": episode.station_id,
        "rule_id": episode.rule_id,
        "raised_at": _time(episode.raised_at),
        "cleared_at": _time(episode.cleared_at) if episode.cleared_at is not None else None,
        "duration_s": episode.duration.total_seconds(),
        "peak_severity": episode.peak_severity.name,
    }


def _cells(episode: Episode) -> tuple[str, ...]:
    return (
        episode.station_id,
        episode.rule_id,
        _time(episode.raised_at),
        _time(episode.cleared_at) if episode.cleared_at is not None else "open",
        format_duration(episode.duration) if episode.duration > timedelta(0) else "0s",
        episode.peak_severity.name,
    )


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")
