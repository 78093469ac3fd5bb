"""Builders for the operations domain objects, with defaults for everything a test does not care about."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from services.operations.domain import (
    ActionType,
    AlertAction,
    AlertEvent,
    AlertState,
    AlertView,
    District,
    Severity,
    SourceRef,
    apply_event,
)

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def event(
    revision: int = 1,
    state: AlertState = AlertState.RAISED,
    *,
    alert_id: str = "alert-1",
    severity: Severity = Severity.MAJOR,
    at: datetime | None = None,
    domain: str = "environment",
    category: str = "air-quality",
    rule_id: str = "who-2021/pm25-24h",
    source_id: str = "cas-air-anfa",
    district_id: str = "anfa",
    labels: Mapping[str, str] | None = None,
    clear_time: datetime | None = None,
) -> AlertEvent:
    return AlertEvent(
        alert_id=alert_id,
        revision=revision,
        domain=domain,
        category=category,
        rule_id=rule_id,
        source=SourceRef(domain=domain, kind="station", entity_id=source_id),
        severity=severity,
        state=state,
        observed_value=40.0 + revision,
        threshold_value=15.0,
        unit="ug/m3",
        raise_time=T0,
        clear_time=clear_time,
        event_time=at or minutes(10 * (revision - 1)),
        message="PM2.5 above the WHO 24-hour guideline",
        district=District(city_id="casablanca", district_id=district_id, display_name=district_id.title()),
        labels=dict(labels or {}),
    )


def action(
    action_type: ActionType,
    at: datetime,
    *,
    action_id: str | None = None,
    alert_id: str = "alert-1",
    actor: str = "amina",
    assignee: str = "",
    text: str = "",
) -> AlertAction:
    return AlertAction(
        action_id=action_id or f"{action_type.name.lower()}-{actor}-{at.isoformat()}",
        alert_id=alert_id,
        action_type=action_type,
        actor=actor,
        assignee=assignee,
        text=text,
        action_time=at,
    )


def raised(**overrides: object) -> AlertView:
    view = apply_event(None, event(**overrides))  # type: ignore[arg-type]
    assert view is not None
    return view
