"""The REST/SSE JSON shapes of alerts, history, silences and groups (RFC 3339 UTC, lower-case enums).

An alert's event fields are derived from its ``AlertEvent`` message (``MessageToDict``), so a field
added to the contract reaches the dashboard and partners with no code here; this module only
adapts what JSON readers expect: enums lower-case without their prefix, absent times, districts
and positions as null, positions as ``{"lat", "lon"}``. The operations center's own facts
(status, acknowledgement, comments, KPIs) follow. Numbers are always JSON: a non-finite value is
null, a position off the globe is no position.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from google.protobuf.json_format import MessageToDict

from madina.contract import InvalidRecord, coordinates
from madina.inputs import finite_or_none
from services.operations.domain import (
    EVENT_CAUSE,
    AlertView,
    Change,
    GroupSummary,
    Silence,
    summarize_groups,
)
from services.operations.domain.model import AlertEvent, GeoPoint
from services.operations.store.mapping import event_to_message

_ENUM_PREFIXES = {"severity": "SEVERITY_", "state": "ALERT_STATE_"}
_TIMES = ("raise_time", "clear_time", "event_time")


def rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def location_json(location: GeoPoint | None) -> dict[str, float] | None:
    """The alert's position, or None for one that is not on Earth (NaN has no JSON form)."""
    if location is None:
        return None
    try:
        lat, lon = coordinates(location.latitude_deg, location.longitude_deg, "location")
    except InvalidRecord:
        return None
    return {"lat": lat, "lon": lon}


def _seconds(value: Any) -> float | None:
    return None if value is None else value.total_seconds()


def event_json(event: AlertEvent) -> dict[str, Any]:
    """The event as its contract spells it, adapted for JSON readers (see the module docstring)."""
    data = MessageToDict(
        event_to_message(event), preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    for name, prefix in _ENUM_PREFIXES.items():
        data[name] = data[name].removeprefix(prefix).lower()
    for name, value in data.items():
        if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity"):
            data[name] = None  # a double MessageToDict could only spell as text
    for name in _TIMES:
        data.setdefault(name, None)
    district = data.get("district", {})
    data["district"] = (
        {"city_id": "", "district_id": "", "display_name": "", **district}
        if district.get("city_id") or district.get("district_id")
        else None
    )
    data["location"] = location_json(event.location)
    return data


def alert_json(alert: AlertView) -> dict[str, Any]:
    return {
        **event_json(alert.latest),
        "status": alert.status.name.lower(),
        "active": alert.active,
        # The alert may be over by an operator's hand while its source's last event is not.
        "clear_time": rfc3339(alert.clear_time),
        "acknowledged_by": alert.acknowledged_by or None,
        "acknowledge_time": rfc3339(alert.acknowledge_time),
        "assignee": alert.assignee or None,
        "silenced": alert.silenced,
        "group_key": alert.group_key,
        "time_to_acknowledge_s": _seconds(alert.time_to_acknowledge),
        "time_to_clear_s": _seconds(alert.time_to_clear),
        "comments": [{"actor": c.actor, "text": c.text, "time": rfc3339(c.time)} for c in alert.comments],
    }


def change_json(change: Change) -> dict[str, Any]:
    """One SSE ``alert`` event's data."""
    return {"cursor": change.cursor, "cause": change.cause, "alert": alert_json(change.alert)}


_ACTION_VERBS = {
    "acknowledge": "acknowledged", "assign": "assigned", "comment": "commented", "resolve": "resolved",
}


def history_json(change: Change) -> dict[str, Any]:
    """One entry of an alert's history: what happened, in a line, and its particulars."""
    if change.cause == EVENT_CAUSE or change.action is None:
        event = change.alert.latest
        unit = f" {event.unit}" if event.unit else ""
        summary = (f"{event.state.name.lower()} at {event.severity.name.lower()}: "
                   f"{event.observed_value:g}{unit} (threshold {event.threshold_value:g}{unit})")
        return {
            "seq": change.seq, "kind": "event", "time": rfc3339(change.occurred_time), "summary": summary,
            "detail": {"revision": event.revision, "state": event.state.name.lower(),
                       "severity": event.severity.name.lower(),
                       "observed_value": finite_or_none(event.observed_value),
                       "threshold_value": finite_or_none(event.threshold_value), "unit": event.unit,
                       "message": event.message},
        }
    action = change.action
    verb = _ACTION_VERBS.get(change.cause, change.cause)
    summary = f"{verb} by {action.actor}"
    if action.assignee:
        summary += f" to {action.assignee}"
    if action.text:
        summary += f": {action.text}"
    return {
        "seq": change.seq, "kind": "action", "time": rfc3339(change.occurred_time), "summary": summary,
        "detail": {"action_id": action.action_id, "action_type": change.cause, "actor": action.actor,
                   "assignee": action.assignee or None, "text": action.text or None},
    }


def silence_json(silence: Silence, now: datetime) -> dict[str, Any]:
    return {
        "silence_id": silence.silence_id,
        "matchers": [{"name": m.name, "op": str(m.op), "value": m.value} for m in silence.matchers],
        "starts_at": rfc3339(silence.starts_at),
        "ends_at": rfc3339(silence.ends_at),
        "created_by": silence.created_by,
        "comment": silence.comment,
        "active": silence.is_active(now),
        "disabled_reason": silence.disabled_reason,
    }


def groups_json(active_alerts: Iterable[AlertView]) -> list[dict[str, Any]]:
    """Groups of active alerts, worst first, with their members (newest change first)."""
    members: dict[str, list[AlertView]] = {}
    alerts = list(active_alerts)
    for alert in alerts:
        members.setdefault(alert.group_key, []).append(alert)
    return [_group_json(summary, members[summary.group_key]) for summary in summarize_groups(alerts)]


def _group_json(summary: GroupSummary, members: list[AlertView]) -> dict[str, Any]:
    districts = {alert.latest.district.district_id for alert in members}
    return {
        "group_key": summary.group_key,
        "domain": summary.domain,
        "rule_id": summary.rule_id,
        # A circuit may cross districts; then the group has no single district.
        "district_id": next(iter(districts)) or None if len(districts) == 1 else None,
        "active_count": summary.active_count,
        "max_severity": None if summary.max_active_severity is None
        else summary.max_active_severity.name.lower(),
        "alert_ids": [alert.alert_id for alert in members],
    }
