"""The alert episodes the processor actually raised, folded from their revisions on ``alerts.v1``.

``madina environment replay`` compares what a proposed profile would have raised with what was
raised. The command reads the AlertEvents and hands each over as an :class:`AlertRevision` (plain
values); :func:`raised_episodes` keeps the environment's threshold alerts whose episodes overlap
the period and folds each alert id's revisions into one :class:`~.replay.Episode`, the shape a
replay produces, so :func:`~.replay.compare_runs` compares the two directly.

Revisions arrive at least once and, across partitions, in any order, and the oldest may have
left the topic (30 days kept): the fold keys on the alert id, keeps one revision per number and
takes every field from the revisions themselves (each carries the raise time and the peak
severity so far; the cleared one carries the clear time), so a duplicate or a missing revision
changes nothing. Data-gap alerts are left out: a replay does not judge silence.

An episode cleared at or after the period's end was still open at the end as far as the replay
can see, so it is reported open, and an open episode's duration runs to ``open_until`` (the
replay's newest observation), as a replayed open episode's does: the profile in force, replayed,
then meets its own alerts unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from madina.alerts import AlertState, Severity
from services.environment.domain.evaluator import DATA_GAP_CATEGORY, DOMAIN
from services.environment.domain.replay import Episode


@dataclass(frozen=True)
class AlertRevision:
    """One published alert transition, as read back from ``alerts.v1``."""

    alert_id: str
    revision: int
    domain: str
    category: str
    station_id: str
    rule_id: str
    state: AlertState
    severity: Severity
    raise_time: datetime
    clear_time: datetime | None
    event_time: datetime


def raised_episodes(
    revisions: Iterable[AlertRevision],
    start: datetime,
    end: datetime,
    open_until: datetime | None = None,
) -> tuple[Episode, ...]:
    """One episode per environment threshold alert that was active at some time in ``[start, end)``.

    Ordered as a replay's episodes are (raise time, station, rule). ``open_until`` defaults to ``end``.
    """
    by_alert: dict[str, dict[int, AlertRevision]] = {}
    for revision in revisions:
        if revision.domain == DOMAIN and revision.category != DATA_GAP_CATEGORY:
            by_alert.setdefault(revision.alert_id, {})[revision.revision] = revision
    stop_open = min(open_until, end) if open_until is not None else end
    episodes: list[Episode] = []
    for alert_id, numbered in by_alert.items():
        history = [numbered[number] for number in sorted(numbered)]
        raised_at = min(r.raise_time for r in history)
        cleared_at = next((r.clear_time or r.event_time for r in history if r.state is AlertState.CLEARED), None)
        if raised_at >= end or (cleared_at is not None and cleared_at <= start):
            continue
        if cleared_at is not None and cleared_at >= end:
            cleared_at = None
        first = history[0]
        episodes.append(Episode(
            alert_id=alert_id,
            station_id=first.station_id,
            rule_id=first.rule_id,
            raised_at=raised_at,
            cleared_at=cleared_at,
            duration=max((cleared_at or stop_open) - raised_at, timedelta(0)),
            peak_severity=max(r.severity for r in history),
        ))
    return tuple(sorted(episodes, key=lambda e: (e.raised_at, e.station_id, e.rule_id)))
