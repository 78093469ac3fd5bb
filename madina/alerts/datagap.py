"""Data-gap alerts: a source that stops reporting is itself an alert.

A silent sensor looks exactly like clean air to threshold rules, so silence longer than
``expected_interval * gap_factor`` (or an explicit ``max_silence``) raises rule ``data-gap``
through the same episode machine as any other rule, and the next observation clears it.

Silence is only measurable against a clock. Domain code has no wall clock, so
:func:`check_silence` takes ``now`` from the caller; pass an event-time watermark (for example
the newest event time seen across the city) rather than ``datetime.now()`` if the outcome must
be identical on replay.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from madina.alerts.episode import EpisodePolicy, EpisodeState, Evaluation, step
from madina.alerts.model import AlertDetails, AlertTransition, Severity
from madina.alerts.timeutil import require_utc, time_from_text, time_to_text

DATA_GAP_RULE_ID = "data-gap"

# Clearing is immediate (the data is back) and repeating "still silent" adds nothing.
_GAP_EPISODE_POLICY = EpisodePolicy(clear_after=timedelta(0), update_interval=None)


@dataclass(frozen=True)
class DataGapPolicy:
    """How long a source may stay silent before it is reported."""

    expected_interval: timedelta
    gap_factor: float = 3.0
    max_silence: timedelta | None = None
    """Overrides ``expected_interval * gap_factor`` when set."""
    severity: Severity = Severity.WARNING

    def __post_init__(self) -> None:
        if self.expected_interval <= timedelta(0):
            raise ValueError("expected_interval must be positive")
        if self.gap_factor <= 0:
            raise ValueError("gap_factor must be positive")
        if self.max_silence is not None and self.max_silence <= timedelta(0):
            raise ValueError("max_silence must be positive")

    @property
    def silence_limit(self) -> timedelta:
        """Longest silence tolerated without an alert."""
        if self.max_silence is not None:
            return self.max_silence
        return self.expected_interval * self.gap_factor


@dataclass(frozen=True)
class DataGapState:
    """Last observation time of one source plus its ``data-gap`` episode."""

    episode: EpisodeState
    last_observation_time: datetime | None = None
    watched_since: datetime | None = None
    """The first silence check: the baseline for a source that has never reported (a sensor
    installed but never connected is as silent as one that stopped)."""

    @classmethod
    def new(cls, domain: str, source_id: str) -> DataGapState:
        return cls(episode=EpisodeState(domain=domain, source_id=source_id, rule_id=DATA_GAP_RULE_ID))

    def to_dict(self) -> dict[str, Any]:
        return {
            "episode": self.episode.to_dict(),
            "last_observation_time": time_to_text(self.last_observation_time),
            "watched_since": time_to_text(self.watched_since),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataGapState:
        return cls(
            episode=EpisodeState.from_dict(data["episode"]),
            last_observation_time=time_from_text(data.get("last_observation_time")),
            watched_since=time_from_text(data.get("watched_since")),
        )


def record_observation(
    state: DataGapState, observe_time: datetime, details: AlertDetails | None = None
) -> tuple[DataGapState, AlertTransition | None]:
    """Note that the source reported at ``observe_time``; clears an open gap if this is new data.

    Only an observation newer than the last one counts as the source coming back: a straggler
    from before the gap proves nothing about the present.
    """
    observe_time = require_utc(observe_time, "observe_time")
    previous = state.last_observation_time
    if previous is not None and observe_time <= previous:
        return state, None
    # Runs per observation; replace() costs 4x more.
    state = DataGapState(state.episode, observe_time, state.watched_since)
    if not state.episode.active:
        return state, None
    if previous is None:  # the first report of a source whose absence was raised
        previous = state.watched_since or observe_time
    # The gap was raised at a check time that may be later than this (delayed) observation;
    # clearing at that check time keeps the episode's event times monotonic.
    last_seen = state.episode.last_event_time or observe_time
    clear_time = max(observe_time, last_seen)
    silence = observe_time - previous
    evaluation = Evaluation(
        event_time=clear_time,
        severity=None,
        observed_value=silence.total_seconds(),
        below_clear_level=True,
        message=f"{state.episode.source_id} reporting again after {_format_span(silence)} of silence",
        details=details or AlertDetails(),
    )
    episode, transition = step(state.episode, evaluation, _GAP_EPISODE_POLICY)
    return replace(state, episode=episode), transition


def check_silence(
    state: DataGapState,
    now: datetime,
    policy: DataGapPolicy,
    details: AlertDetails | None = None,
) -> tuple[DataGapState, AlertTransition | None]:
    """Raise ``data-gap`` if the source has been silent longer than the policy allows at ``now``.

    A source never heard from is measured from the first check (``watched_since``, set by it):
    it gets the same allowance as one that just reported.
    """
    now = require_utc(now, "now")
    if state.last_observation_time is None and state.watched_since is None:
        return replace(state, watched_since=now), None
    baseline = state.last_observation_time or state.watched_since
    assert baseline is not None
    silence = now - baseline
    limit = policy.silence_limit
    if silence <= limit:
        return state, None
    if state.last_observation_time is None:
        message = f"no data from {state.episode.source_id} since monitoring began {_format_span(silence)} ago"
    else:
        message = f"no data from {state.episode.source_id} for {_format_span(silence)}"
    evaluation = Evaluation(
        event_time=now,
        severity=policy.severity,
        observed_value=silence.total_seconds(),
        threshold=limit.total_seconds(),
        message=f"{message} (limit {_format_span(limit)})",
        details=details or AlertDetails(),
    )
    episode, transition = step(state.episode, evaluation, _GAP_EPISODE_POLICY)
    return replace(state, episode=episode), transition


def _format_span(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    hours, remainder = divmod(seconds, 3600)
    minutes, seconds = divmod(remainder, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {seconds:02d} s"
    return f"{seconds} s"
