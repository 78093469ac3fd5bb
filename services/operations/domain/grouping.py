"""Correlating alerts into groups so operators see one problem once, not fifty lamps.

Alerts group when the same rule of the same domain fires in the same place. "Place" is the
district by default; a source that knows a tighter common cause says so with a grouping label
(``group`` wins over ``circuit``), e.g. every lamp on circuit C12 lands in one group even when
the circuit crosses a district boundary. The key names its scope (``circuit=C12`` versus
``district=casablanca/ain-sebaa``) so a circuit and a district with the same name never merge.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from services.operations.domain.model import AlertEvent, AlertView, Severity

GROUPING_LABELS = ("group", "circuit")
"""Labels that name a common cause, most deliberate first."""


def group_key(event: AlertEvent) -> str:
    """The correlation key for an alert: ``<domain>:<rule_id>:<scope>=<value>``."""
    for label in GROUPING_LABELS:
        value = event.labels.get(label)
        if value:
            return f"{event.domain}:{event.rule_id}:{label}={value}"
    district = event.district
    return f"{event.domain}:{event.rule_id}:district={district.city_id}/{district.district_id}"


@dataclass(frozen=True)
class GroupSummary:
    """What operators need to triage a group at a glance."""

    group_key: str
    domain: str
    rule_id: str
    active_count: int
    total_count: int
    max_active_severity: Severity | None
    """Worst severity among the group's active alerts; ``None`` once all have cleared."""
    last_updated_time: datetime


def summarize_groups(alerts: Iterable[AlertView]) -> list[GroupSummary]:
    """One summary per group key, worst first (max active severity, then active count)."""
    members: dict[str, list[AlertView]] = {}
    for alert in alerts:
        members.setdefault(alert.group_key, []).append(alert)
    summaries = [_summarize(key, group) for key, group in members.items()]
    summaries.sort(
        key=lambda s: (-(s.max_active_severity or 0), -s.active_count, s.group_key),
    )
    return summaries


def _summarize(key: str, group: list[AlertView]) -> GroupSummary:
    active = [alert for alert in group if alert.active]
    newest = max(group, key=lambda alert: alert.updated_time)
    return GroupSummary(
        group_key=key,
        domain=newest.latest.domain,
        rule_id=newest.latest.rule_id,
        active_count=len(active),
        total_count=len(group),
        max_active_severity=max((alert.severity for alert in active), default=None),
        last_updated_time=newest.updated_time,
    )
