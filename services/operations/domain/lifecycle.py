"""How events from sources and actions from operators change an alert.

Both functions are pure: they take the current view and return the next one, so the store, a
replay and a unit test all run the very same rules.

Decisions, so they are not re-litigated:

* **Events are monotonic by revision.** An event whose revision is not above the stored one
  changes nothing and is not recorded. ``alerts.v1`` is keyed by alert id, so within one alert
  a lower revision can only be a duplicate delivery or a replay; ignoring it makes both
  idempotent and keeps the outcome independent of redelivery.
* **A manual resolve is final for the episode** (PagerDuty's model: a resolved incident is never
  reopened by its integration). Later events from the source for the same alert id are still
  applied to ``latest`` and recorded in history, so operators can see the source disagrees,
  but the alert stays cleared with the operator's clear time and name. A new problem comes as a
  new episode, and alert ids are per episode, so nothing is lost: once the source clears and
  breaches again it raises a fresh alert id. Reopening instead would let a flapping source
  undo an operator's decision every few minutes.
* **A clear by the source is not final.** If the source itself sends a higher revision that is
  not CLEARED (it should not, but sources have bugs), the source is the authority on its own
  condition and the alert is active again.
* **Acknowledgement happens once.** The first ACKNOWLEDGE sets who and when; later ones are
  recorded in history by the store but change nothing, so time-to-acknowledge stays honest.
  Acknowledging a cleared alert is allowed: operators review alerts that cleared unattended.
* **Idempotency of actions is by action id** and lives in the store, which remembers every
  action id it has seen; these functions apply whatever they are given.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from services.operations.domain.grouping import group_key
from services.operations.domain.model import (
    ActionType,
    AlertAction,
    AlertEvent,
    AlertState,
    AlertView,
    Comment,
)


def open_alert(event: AlertEvent) -> AlertView:
    """The view of an alert first seen through ``event`` (normally RAISED, but any state works:
    a consumer that starts mid-episode still shows the alert)."""
    cleared = event.state is AlertState.CLEARED
    return AlertView(
        latest=event,
        group_key=group_key(event),
        updated_time=event.event_time,
        cleared=cleared,
        clear_time=_clear_time(event) if cleared else None,
    )


def apply_event(current: AlertView | None, event: AlertEvent) -> AlertView | None:
    """The view after ``event``, or ``None`` when the event is a duplicate or older than the view."""
    if current is None:
        return open_alert(event)
    if event.revision <= current.revision:
        return None
    updated = replace(
        current,
        latest=event,
        group_key=group_key(event),
        updated_time=max(current.updated_time, event.event_time),
    )
    if current.resolved_manually:
        return updated
    if event.state is AlertState.CLEARED:
        return replace(updated, cleared=True, clear_time=_clear_time(event))
    return replace(updated, cleared=False, clear_time=None)


def apply_action(current: AlertView, action: AlertAction) -> AlertView:
    """The view after an operator's ``action``; unchanged (equal) when the action has no effect."""
    updated = replace(current, updated_time=max(current.updated_time, action.action_time))
    match action.action_type:
        case ActionType.ACKNOWLEDGE:
            if current.acknowledged:
                return current
            return replace(updated, acknowledged_by=action.actor, acknowledge_time=action.action_time)
        case ActionType.ASSIGN:
            return replace(updated, assignee=action.assignee)
        case ActionType.COMMENT:
            comment = Comment(actor=action.actor, text=action.text, time=action.action_time)
            return replace(updated, comments=(*current.comments, comment))
        case ActionType.RESOLVE:
            if current.cleared:
                return current
            return replace(updated, cleared=True, clear_time=action.action_time, resolved_by=action.actor)
    raise AssertionError(f"unhandled action type {action.action_type!r}")


def _clear_time(event: AlertEvent) -> datetime:
    return event.clear_time or event.event_time
