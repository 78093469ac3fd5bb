"""JSON documents for the domain objects the store keeps in JSON columns.

Enums are written by name and times as canonical ISO-8601 UTC text (see
:mod:`madina.alerts.timeutil`), so stored rows stay readable in ``psql`` and ``sqlite3`` and
equal views always serialise identically (which the replay test relies on).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from madina.alerts.timeutil import time_from_text, time_to_text
from services.operations.domain.model import (
    ActionType,
    AlertAction,
    AlertEvent,
    AlertState,
    AlertView,
    Comment,
    District,
    GeoPoint,
    Severity,
    SourceRef,
)
from services.operations.domain.silences import Matcher, MatchOp

Document = dict[str, Any]


def event_to_document(event: AlertEvent) -> Document:
    return {
        "alert_id": event.alert_id,
        "revision": event.revision,
        "domain": event.domain,
        "category": event.category,
        "rule_id": event.rule_id,
        "source": {
            "domain": event.source.domain,
            "kind": event.source.kind,
            "entity_id": event.source.entity_id,
        },
        "severity": event.severity.name,
        "state": event.state.name,
        "observed_value": event.observed_value,
        "threshold_value": event.threshold_value,
        "unit": event.unit,
        "raise_time": time_to_text(event.raise_time),
        "clear_time": time_to_text(event.clear_time),
        "event_time": time_to_text(event.event_time),
        "message": event.message,
        "district": {
            "city_id": event.district.city_id,
            "district_id": event.district.district_id,
            "display_name": event.district.display_name,
        },
        "location": (
            None
            if event.location is None
            else {"latitude_deg": event.location.latitude_deg, "longitude_deg": event.location.longitude_deg}
        ),
        "standard_reference": event.standard_reference,
        "labels": dict(event.labels),
    }


def event_from_document(document: Mapping[str, Any]) -> AlertEvent:
    location = document.get("location")
    return AlertEvent(
        alert_id=document["alert_id"],
        revision=document["revision"],
        domain=document["domain"],
        category=document["category"],
        rule_id=document["rule_id"],
        source=SourceRef(**document["source"]),
        severity=Severity[document["severity"]],
        state=AlertState[document["state"]],
        observed_value=document["observed_value"],
        threshold_value=document["threshold_value"],
        unit=document["unit"],
        raise_time=_time(document["raise_time"]),
        clear_time=time_from_text(document.get("clear_time")),
        event_time=_time(document["event_time"]),
        message=document["message"],
        district=District(**document["district"]),
        location=None if location is None else GeoPoint(**location),
        standard_reference=document["standard_reference"],
        labels=dict(document["labels"]),
    )


def action_to_document(action: AlertAction) -> Document:
    return {
        "action_id": action.action_id,
        "alert_id": action.alert_id,
        "action_type": action.action_type.name,
        "actor": action.actor,
        "assignee": action.assignee,
        "text": action.text,
        "action_time": time_to_text(action.action_time),
    }


def action_from_document(document: Mapping[str, Any]) -> AlertAction:
    return AlertAction(
        action_id=document["action_id"],
        alert_id=document["alert_id"],
        action_type=ActionType[document["action_type"]],
        actor=document["actor"],
        assignee=document["assignee"],
        text=document["text"],
        action_time=_time(document["action_time"]),
    )


def view_to_document(view: AlertView) -> Document:
    """The view without ``silenced``, which is evaluated when read, never stored."""
    return {
        "latest": event_to_document(view.latest),
        "group_key": view.group_key,
        "updated_time": time_to_text(view.updated_time),
        "cleared": view.cleared,
        "clear_time": time_to_text(view.clear_time),
        "resolved_by": view.resolved_by,
        "acknowledged_by": view.acknowledged_by,
        "acknowledge_time": time_to_text(view.acknowledge_time),
        "assignee": view.assignee,
        "comments": [
            {"actor": comment.actor, "text": comment.text, "time": time_to_text(comment.time)}
            for comment in view.comments
        ],
    }


def view_from_document(document: Mapping[str, Any]) -> AlertView:
    return AlertView(
        latest=event_from_document(document["latest"]),
        group_key=document["group_key"],
        updated_time=_time(document["updated_time"]),
        cleared=document["cleared"],
        clear_time=time_from_text(document.get("clear_time")),
        resolved_by=document["resolved_by"],
        acknowledged_by=document["acknowledged_by"],
        acknowledge_time=time_from_text(document.get("acknowledge_time")),
        assignee=document["assignee"],
        comments=tuple(
            Comment(actor=comment["actor"], text=comment["text"], time=_time(comment["time"]))
            for comment in document["comments"]
        ),
    )


def matchers_to_document(matchers: tuple[Matcher, ...]) -> list[Document]:
    return [{"name": matcher.name, "op": str(matcher.op), "value": matcher.value} for matcher in matchers]


def matchers_from_document(document: list[Mapping[str, Any]]) -> tuple[Matcher, ...]:
    return tuple(Matcher(item["name"], MatchOp(item["op"]), item["value"]) for item in document)


def _time(text: str) -> datetime:
    moment = time_from_text(text)
    if moment is None:
        raise ValueError("a required time is missing from a stored document")
    return moment
