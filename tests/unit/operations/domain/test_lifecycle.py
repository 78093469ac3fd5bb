"""Behaviour of the alert lifecycle rules (services.operations.domain.lifecycle)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from services.operations.domain import (
    ActionType,
    AlertState,
    AlertStatus,
    Severity,
    apply_action,
    apply_event,
    status_of,
)
from tests.unit.operations.factories import T0, action, event, minutes, raised


@pytest.mark.parametrize(
    ("active", "acknowledged", "expected"),
    [
        (True, False, AlertStatus.ACTIVE_UNACKNOWLEDGED),
        (True, True, AlertStatus.ACTIVE_ACKNOWLEDGED),
        (False, False, AlertStatus.CLEARED_UNACKNOWLEDGED),
        (False, True, AlertStatus.CLEARED_ACKNOWLEDGED),
    ],
)
def test_status_combines_activity_and_acknowledgement(active, acknowledged, expected):
    assert status_of(active, acknowledged) is expected


def test_first_event_opens_an_active_unacknowledged_alert():
    view = raised()
    assert view.status is AlertStatus.ACTIVE_UNACKNOWLEDGED
    assert view.raise_time == T0
    assert view.group_key == "environment:who-2021/pm25-24h:district=casablanca/anfa"


def test_first_event_seen_mid_episode_still_shows_the_alert():
    view = apply_event(None, event(revision=3, state=AlertState.UPDATED))
    assert view is not None and view.active and view.revision == 3


def test_same_event_delivered_twice_changes_nothing():
    view = raised()
    assert apply_event(view, event(revision=1)) is None


def test_older_revision_does_not_overwrite_newer():
    view = apply_event(raised(), event(revision=3, state=AlertState.ESCALATED, severity=Severity.CRITICAL))
    assert view is not None
    assert apply_event(view, event(revision=2, state=AlertState.UPDATED)) is None
    assert apply_event(view, event(revision=2, state=AlertState.CLEARED)) is None


def test_escalation_raises_severity_and_keeps_the_alert_active():
    view = apply_event(raised(), event(revision=2, state=AlertState.ESCALATED, severity=Severity.CRITICAL))
    assert view is not None
    assert view.severity is Severity.CRITICAL and view.active
    assert view.updated_time == minutes(10)


def test_cleared_event_clears_with_the_source_clear_time():
    view = apply_event(raised(), event(revision=2, state=AlertState.CLEARED, clear_time=minutes(42)))
    assert view is not None
    assert view.status is AlertStatus.CLEARED_UNACKNOWLEDGED
    assert view.clear_time == minutes(42)
    assert view.resolved_by == ""


def test_ack_then_clear_gives_cleared_acknowledged():
    acknowledged = apply_action(raised(), action(ActionType.ACKNOWLEDGE, minutes(3)))
    cleared = apply_event(acknowledged, event(revision=2, state=AlertState.CLEARED))
    assert cleared is not None
    assert cleared.status is AlertStatus.CLEARED_ACKNOWLEDGED


def test_acknowledging_a_cleared_alert_gives_cleared_acknowledged():
    cleared = apply_event(raised(), event(revision=2, state=AlertState.CLEARED))
    assert cleared is not None
    view = apply_action(cleared, action(ActionType.ACKNOWLEDGE, minutes(30)))
    assert view.status is AlertStatus.CLEARED_ACKNOWLEDGED


def test_time_to_acknowledge_recorded():
    view = apply_action(raised(), action(ActionType.ACKNOWLEDGE, minutes(7), actor="amina"))
    assert view.acknowledged_by == "amina"
    assert view.acknowledge_time == minutes(7)
    assert view.time_to_acknowledge == timedelta(minutes=7)


def test_time_to_clear_measured_from_raise_time():
    view = apply_event(raised(), event(revision=2, state=AlertState.CLEARED, at=minutes(95)))
    assert view is not None
    assert view.time_to_clear == timedelta(minutes=95)
    assert raised().time_to_clear is None


def test_times_before_the_raise_time_count_as_zero_not_negative():
    view = apply_action(raised(), action(ActionType.ACKNOWLEDGE, T0 - timedelta(seconds=20)))
    assert view.time_to_acknowledge == timedelta(0)


def test_second_acknowledgement_keeps_the_first():
    first = apply_action(raised(), action(ActionType.ACKNOWLEDGE, minutes(5), actor="amina"))
    second = apply_action(first, action(ActionType.ACKNOWLEDGE, minutes(9), actor="youssef"))
    assert second == first
    assert second.acknowledged_by == "amina" and second.time_to_acknowledge == timedelta(minutes=5)


def test_assign_sets_and_replaces_the_assignee():
    view = apply_action(raised(), action(ActionType.ASSIGN, minutes(2), assignee="roads-team"))
    view = apply_action(view, action(ActionType.ASSIGN, minutes(4), assignee="lighting-team"))
    assert view.assignee == "lighting-team"
    assert view.status is AlertStatus.ACTIVE_UNACKNOWLEDGED


def test_comments_append_in_order():
    view = apply_action(raised(), action(ActionType.COMMENT, minutes(1), text="crew on the way"))
    view = apply_action(view, action(ActionType.COMMENT, minutes(2), actor="youssef", text="sensor checked"))
    assert [(c.actor, c.text) for c in view.comments] == [
        ("amina", "crew on the way"),
        ("youssef", "sensor checked"),
    ]
    assert view.updated_time == minutes(2)


def test_manual_resolve_clears_and_names_the_operator():
    view = apply_action(raised(), action(ActionType.RESOLVE, minutes(20), actor="youssef"))
    assert view.status is AlertStatus.CLEARED_UNACKNOWLEDGED
    assert view.clear_time == minutes(20)
    assert view.resolved_by == "youssef" and view.resolved_manually


def test_source_update_after_manual_resolve_is_kept_but_does_not_reopen():
    resolved = apply_action(raised(), action(ActionType.RESOLVE, minutes(20), actor="youssef"))
    later = apply_event(resolved, event(revision=2, state=AlertState.ESCALATED, severity=Severity.CRITICAL))
    assert later is not None
    assert later.latest.revision == 2 and later.severity is Severity.CRITICAL
    assert not later.active
    assert later.clear_time == minutes(20) and later.resolved_by == "youssef"


def test_source_clear_after_manual_resolve_keeps_the_operator_clear_time():
    resolved = apply_action(raised(), action(ActionType.RESOLVE, minutes(20)))
    later = apply_event(resolved, event(revision=2, state=AlertState.CLEARED, at=minutes(60)))
    assert later is not None
    assert later.clear_time == minutes(20)


def test_resolving_a_cleared_alert_changes_nothing():
    cleared = apply_event(raised(), event(revision=2, state=AlertState.CLEARED))
    assert cleared is not None
    assert apply_action(cleared, action(ActionType.RESOLVE, minutes(50))) == cleared


def test_higher_revision_from_the_source_after_its_own_clear_reopens():
    cleared = apply_event(raised(), event(revision=2, state=AlertState.CLEARED))
    reopened = apply_event(cleared, event(revision=3, state=AlertState.UPDATED))
    assert reopened is not None
    assert reopened.active and reopened.clear_time is None


def test_group_key_follows_the_latest_labels():
    view = apply_event(
        raised(), replace(event(revision=2, state=AlertState.UPDATED), labels={"circuit": "C12"})
    )
    assert view is not None
    assert view.group_key.endswith(":circuit=C12")
