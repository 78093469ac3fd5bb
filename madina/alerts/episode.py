"""Episode state machine: turns a stream of rule evaluations into alert transitions.

One :class:`EpisodeState` exists per (domain, source, rule). The caller evaluates its rule at an
event time and hands the result to :func:`step`, which returns the next state and at most one
:class:`~madina.alerts.model.AlertTransition`. Nothing is sent from here; the caller publishes.

Life of an episode::

    idle --breach--> RAISED --worse--> ESCALATED --breach again (throttled)--> UPDATED
                        \\____ at/below clear level continuously for clear_after ____/--> CLEARED --> idle

Design decisions, so they are not re-litigated:

* **One alert per episode.** A breach while active never raises a second alert; it escalates,
  updates, or does nothing.
* **Severity never de-escalates within an episode.** Operators act on the worst the episode
  reached, and a ticket that silently drops from CRITICAL to MINOR while the pollutant is still
  over the limit invites closing it early. A lower breach therefore emits UPDATED carrying the
  fresh value but the peak severity; the episode ends only via CLEARED.
* **UPDATED is throttled** by :attr:`EpisodePolicy.update_interval` of *event* time (and an
  optional minimum relative change), so a breach lasting hours does not flood the alert topic.
* **Hysteresis.** Clearing needs the value at or below the rule's clear level (which may sit
  below the raise threshold) at every evaluation for ``clear_after``. A value back between the
  clear level and the threshold, or a re-breach, restarts the hold without starting a new episode.
* **Out-of-order evaluations are ignored.** An evaluation older than the newest one seen carries
  stale information: letting it clear or re-raise would make the outcome depend on arrival order,
  which breaks exactly-once replay. Equal times are accepted (several rules or samples can share
  a timestamp).
* **Revisions** count transitions within an episode from 1, so ``(alert_id, revision)`` is a
  dedupe key for anything downstream of a replay.

Evaluators run :func:`step` for every rule after every sample, and almost every call emits
nothing, so two cheaper entry points exist for hot loops; both give exactly what :func:`step`
would. :func:`quiet_step` answers from the evaluation's fields alone (no :class:`Evaluation`,
message or details built) and returns ``None`` only when :func:`step` must be called to emit;
:func:`touch` stands for any run of quiet evaluations of an idle episode, which only move its
event time, so a caller may skip them and touch once with the newest time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from madina.alerts.model import AlertDetails, AlertState, AlertTransition, Severity, alert_id
from madina.alerts.timeutil import require_utc, time_from_text, time_to_text

DEFAULT_UPDATE_INTERVAL = timedelta(minutes=15)


@dataclass(frozen=True)
class EpisodePolicy:
    """Per-rule tuning of the state machine."""

    clear_after: timedelta = timedelta(0)
    """How long the value must stay at/below the clear level before CLEARED."""
    update_interval: timedelta | None = DEFAULT_UPDATE_INTERVAL
    """Minimum event time between UPDATED transitions; ``None`` disables UPDATED."""
    update_min_change: float = 0.0
    """Minimum relative change of the value since the last transition for UPDATED (0.1 = 10%)."""

    def __post_init__(self) -> None:
        if self.clear_after < timedelta(0):
            raise ValueError("clear_after must not be negative")
        if self.update_interval is not None and self.update_interval < timedelta(0):
            raise ValueError("update_interval must not be negative")
        if self.update_min_change < 0:
            raise ValueError("update_min_change must not be negative")


@dataclass(frozen=True)
class Evaluation:
    """A rule's verdict at one event time.

    ``severity`` is the breached level, or ``None`` when the value is under every raise
    threshold; ``threshold`` is the threshold of that level. ``below_clear_level`` says whether
    the value is at or below the clear level (it is ignored when ``severity`` is set: a breach
    always wins). ``message`` and ``details`` are copied onto any transition produced; a caller
    for whom they are costly can leave them empty and ``dataclasses.replace`` them onto the rare
    transition afterwards, and ask :func:`quiet_step` first to skip building this at all.
    """

    event_time: datetime
    severity: Severity | None
    observed_value: float
    threshold: float | None = None
    below_clear_level: bool = False
    message: str = ""
    details: AlertDetails = field(default_factory=AlertDetails)

    def __post_init__(self) -> None:
        object.__setattr__(self, "event_time", require_utc(self.event_time, "event_time"))
        if self.severity is not None and self.threshold is None:
            raise ValueError("a breaching evaluation needs the threshold it crossed")


@dataclass(frozen=True)
class EpisodeState:
    """Everything :func:`step` needs to remember for one (domain, source, rule)."""

    domain: str
    source_id: str
    rule_id: str
    last_event_time: datetime | None = None
    alert_id: str | None = None
    raise_time: datetime | None = None
    severity: Severity | None = None
    threshold: float | None = None
    revision: int = 0
    last_emit_time: datetime | None = None
    last_emitted_value: float | None = None
    clear_hold_since: datetime | None = None

    @property
    def active(self) -> bool:
        """True while an episode is open (raised and not yet cleared)."""
        return self.alert_id is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form for changelogged tables."""
        return {
            "domain": self.domain,
            "source_id": self.source_id,
            "rule_id": self.rule_id,
            "last_event_time": time_to_text(self.last_event_time),
            "alert_id": self.alert_id,
            "raise_time": time_to_text(self.raise_time),
            "severity": self.severity.name if self.severity is not None else None,
            "threshold": self.threshold,
            "revision": self.revision,
            "last_emit_time": time_to_text(self.last_emit_time),
            "last_emitted_value": self.last_emitted_value,
            "clear_hold_since": time_to_text(self.clear_hold_since),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EpisodeState:
        severity = data.get("severity")
        return cls(
            domain=data["domain"],
            source_id=data["source_id"],
            rule_id=data["rule_id"],
            last_event_time=time_from_text(data.get("last_event_time")),
            alert_id=data.get("alert_id"),
            raise_time=time_from_text(data.get("raise_time")),
            severity=Severity[severity] if severity is not None else None,
            threshold=data.get("threshold"),
            revision=int(data.get("revision", 0)),
            last_emit_time=time_from_text(data.get("last_emit_time")),
            last_emitted_value=data.get("last_emitted_value"),
            clear_hold_since=time_from_text(data.get("clear_hold_since")),
        )


def step(
    state: EpisodeState, evaluation: Evaluation, policy: EpisodePolicy
) -> tuple[EpisodeState, AlertTransition | None]:
    """Advance ``state`` by one evaluation; return the new state and the transition, if any."""
    now = evaluation.event_time
    quiet = quiet_step(
        state, now, evaluation.severity, evaluation.observed_value, evaluation.below_clear_level, policy
    )
    if quiet is not None:
        return quiet, None
    if not state.active:
        return _raise(_moved(state, now, state.clear_hold_since), evaluation)
    if evaluation.severity is not None:
        state = _moved(state, now, None)
        assert state.severity is not None
        if evaluation.severity > state.severity:
            return _emit(
                state,
                evaluation,
                AlertState.ESCALATED,
                severity=evaluation.severity,
                threshold=evaluation.threshold,
            )
        return _emit(state, evaluation, AlertState.UPDATED)
    return _clear(_moved(state, now, state.clear_hold_since or now), evaluation)


def quiet_step(
    state: EpisodeState,
    event_time: datetime,
    severity: Severity | None,
    observed_value: float,
    below_clear_level: bool,
    policy: EpisodePolicy,
) -> EpisodeState | None:
    """The state :func:`step` reaches for an evaluation with these fields, or ``None`` if it would emit.

    Nearly every evaluation emits nothing, and building its :class:`Evaluation` (with a message
    and details) is most of the cost of stepping. A caller evaluating many rules per sample can
    ask this first and only build the :class:`Evaluation` for :func:`step` when ``None`` comes
    back. :func:`step` itself decides through this function, so the two cannot disagree.
    """
    now = require_utc(event_time, "event_time")
    if state.last_event_time is not None and now < state.last_event_time:
        return state
    if state.alert_id is None:
        return _moved(state, now, state.clear_hold_since) if severity is None else None
    if severity is not None:
        assert state.severity is not None
        if severity > state.severity or _update_is_due(state, now, observed_value, policy):
            return None
        return _moved(state, now, None)
    if not below_clear_level:
        return _moved(state, now, None)
    hold_since = state.clear_hold_since or now
    if now - hold_since >= policy.clear_after:
        return None
    return _moved(state, now, hold_since)


def touch(state: EpisodeState, event_time: datetime) -> EpisodeState:
    """What :func:`step` makes of an idle episode and an evaluation without a breach.

    That is the common case by far (most rules are quiet most of the time), and it only moves
    ``last_event_time`` forward. A caller evaluating many rules per observation may therefore
    skip building the :class:`Evaluation` and calling :func:`step` while ``not state.active`` and
    nothing is breached, and call this instead, once, with the newest time it skipped: the
    result is the state that stepping through every skipped evaluation would have reached.
    """
    now = require_utc(event_time, "event_time")
    if state.last_event_time is not None and now < state.last_event_time:
        return state
    if state.active:
        raise ValueError("touch() is only for idle episodes; an active one needs step()")
    return _moved(state, now, state.clear_hold_since)


def _moved(state: EpisodeState, now: datetime, clear_hold_since: datetime | None) -> EpisodeState:
    """``replace(state, last_event_time=now, clear_hold_since=clear_hold_since)``, minus its cost.

    :func:`step` runs for every rule after every observation and nearly always changes only these
    two fields. ``EpisodeState`` has no ``__post_init__``, so copying its fields directly gives
    exactly what ``replace`` would, at a fraction of the cost of re-running the frozen
    ``__init__``; ``state`` itself comes back when nothing changes at all.
    """
    if state.last_event_time == now and state.clear_hold_since == clear_hold_since:
        return state
    moved = object.__new__(EpisodeState)
    fields = moved.__dict__
    fields.update(state.__dict__)
    fields["last_event_time"] = now
    fields["clear_hold_since"] = clear_hold_since
    return moved


def force_clear(
    state: EpisodeState,
    event_time: datetime,
    observed_value: float,
    message: str,
    details: AlertDetails | None = None,
) -> tuple[EpisodeState, AlertTransition | None]:
    """Close an open episode without hysteresis, e.g. when its rule is withdrawn from service.

    Without this an alert whose rule disappears would stay open downstream forever. Returns the
    state unchanged and no transition if idle or if ``event_time`` is older than the last seen.
    """
    now = require_utc(event_time, "event_time")
    if not state.active or (state.last_event_time is not None and now < state.last_event_time):
        return state, None
    evaluation = Evaluation(
        event_time=now,
        severity=None,
        observed_value=observed_value,
        below_clear_level=True,
        message=message,
        details=details or AlertDetails(),
    )
    return _clear(replace(state, last_event_time=now), evaluation)


def _raise(state: EpisodeState, evaluation: Evaluation) -> tuple[EpisodeState, AlertTransition]:
    now = evaluation.event_time
    opened = replace(
        state,
        alert_id=alert_id(state.domain, state.source_id, state.rule_id, now),
        raise_time=now,
        severity=evaluation.severity,
        threshold=evaluation.threshold,
        revision=0,
        clear_hold_since=None,
    )
    return _emit(opened, evaluation, AlertState.RAISED)


def _clear(state: EpisodeState, evaluation: Evaluation) -> tuple[EpisodeState, AlertTransition]:
    closed, transition = _emit(state, evaluation, AlertState.CLEARED, clear_time=evaluation.event_time)
    idle = EpisodeState(
        domain=state.domain,
        source_id=state.source_id,
        rule_id=state.rule_id,
        last_event_time=closed.last_event_time,
    )
    return idle, transition


def _emit(
    state: EpisodeState,
    evaluation: Evaluation,
    alert_state: AlertState,
    *,
    severity: Severity | None = None,
    threshold: float | None = None,
    clear_time: datetime | None = None,
) -> tuple[EpisodeState, AlertTransition]:
    severity = severity if severity is not None else state.severity
    threshold = threshold if threshold is not None else state.threshold
    assert state.alert_id is not None and state.raise_time is not None
    assert severity is not None and threshold is not None
    revision = state.revision + 1
    transition = AlertTransition(
        alert_id=state.alert_id,
        domain=state.domain,
        source_id=state.source_id,
        rule_id=state.rule_id,
        state=alert_state,
        severity=severity,
        observed_value=evaluation.observed_value,
        threshold=threshold,
        raise_time=state.raise_time,
        clear_time=clear_time,
        event_time=evaluation.event_time,
        revision=revision,
        message=evaluation.message,
        details=evaluation.details,
    )
    next_state = replace(
        state,
        severity=severity,
        threshold=threshold,
        revision=revision,
        last_emit_time=evaluation.event_time,
        last_emitted_value=evaluation.observed_value,
    )
    return next_state, transition


def _update_is_due(state: EpisodeState, now: datetime, observed_value: float, policy: EpisodePolicy) -> bool:
    if policy.update_interval is None or state.last_emit_time is None:
        return False
    if now - state.last_emit_time < policy.update_interval:
        return False
    return _relative_change(state.last_emitted_value, observed_value) >= policy.update_min_change


def _relative_change(previous: float | None, current: float) -> float:
    if previous is None:
        return math.inf
    if previous == 0:
        return 0.0 if current == 0 else math.inf
    return abs(current - previous) / abs(previous)
