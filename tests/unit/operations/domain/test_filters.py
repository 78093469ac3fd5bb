"""Behaviour of alert filters in memory (services.operations.domain.filters)."""

from __future__ import annotations

import pytest

from services.operations.domain import (
    ActionType,
    AlertFilter,
    AlertState,
    AlertStatus,
    Severity,
    apply_action,
)
from services.operations.domain.lifecycle import apply_event
from tests.unit.operations.factories import action, event, minutes, raised


def test_empty_filter_matches_everything():
    assert AlertFilter().matches(raised())


def test_state_status_domain_severity_district_and_since():
    alert = apply_action(raised(severity=Severity.MAJOR), action(ActionType.ACKNOWLEDGE, minutes(5)))
    assert AlertFilter(state="active").matches(alert)
    assert not AlertFilter(state="cleared").matches(alert)
    assert AlertFilter(status=AlertStatus.ACTIVE_ACKNOWLEDGED).matches(alert)
    assert not AlertFilter(status=AlertStatus.ACTIVE_UNACKNOWLEDGED).matches(alert)
    assert AlertFilter(domains=("mobility", "environment")).matches(alert)
    assert not AlertFilter(domains=("mobility",)).matches(alert)
    assert AlertFilter(min_severity=Severity.MAJOR).matches(alert)
    assert not AlertFilter(min_severity=Severity.CRITICAL).matches(alert)
    assert AlertFilter(district_ids=["anfa"]).matches(alert)
    assert not AlertFilter(district_ids="maarif").matches(alert)
    assert AlertFilter(since=minutes(5)).matches(alert)
    assert not AlertFilter(since=minutes(6)).matches(alert)


def test_cleared_filter_matches_cleared_alerts():
    cleared = apply_event(raised(), event(revision=2, state=AlertState.CLEARED))
    assert cleared is not None
    assert AlertFilter(state="cleared").matches(cleared)


def test_unknown_state_is_rejected():
    with pytest.raises(ValueError):
        AlertFilter(state="open")  # type: ignore[arg-type]
