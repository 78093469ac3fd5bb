"""Mapping between the ``madina.alerts.v1`` contracts and the operations domain objects.

This is the only module of the operations center that knows protobuf, so the domain stays
free of generated code. Inbound, :func:`record_from_message` validates: a message that breaks
the contract raises :class:`InvalidRecord` (a ``ValueError``), which the consumer sends to the
dead-letter topic. Every wire value is converted through :mod:`madina.contract` (a timestamp no
datetime can hold, an unknown enum number, NaN, a point off the globe are InvalidRecord), so
nothing raises on the way in outside that path: not in live ingest, not in ``rebuild``.
Outbound, :func:`alert_to_message` and :func:`change_to_message` build what gRPC and the
REST/SSE layer serve.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from madina.contract import InvalidRecord, coordinates, enum_member, finite, optional_time, plain_fields
from madina_proto.alerts.v1 import alerts_pb2
from madina_proto.common.v1 import common_pb2
from services.operations.domain.model import (
    ActionType,
    AlertAction,
    AlertEvent,
    AlertState,
    AlertView,
    Change,
    District,
    GeoPoint,
    Record,
    Severity,
    SourceRef,
)

Message = alerts_pb2.AlertEvent | alerts_pb2.AlertAction
"""A wire record as consumed from ``alerts.v1`` / ``alerts.actions.v1``."""

__all__ = ["InvalidRecord", "Message", "Record", "record_from_message"]

_EVENT_FIELDS = plain_fields(AlertEvent, alerts_pb2.AlertEvent)
_ACTION_FIELDS = plain_fields(AlertAction, alerts_pb2.AlertAction)
_SOURCE_FIELDS = plain_fields(SourceRef, common_pb2.EntityRef)
_DISTRICT_FIELDS = plain_fields(District, common_pb2.District)


def record_from_message(record: Message | Record) -> Record:
    """The domain form of a consumed message; domain records pass through unchanged."""
    if isinstance(record, AlertEvent | AlertAction):
        return record
    if isinstance(record, alerts_pb2.AlertEvent):
        return event_from_message(record)
    if isinstance(record, alerts_pb2.AlertAction):
        return action_from_message(record)
    raise InvalidRecord(f"not an alert event or action: {type(record).__name__}")


def event_from_message(message: alerts_pb2.AlertEvent) -> AlertEvent:
    where = f"alert {message.alert_id[:200]!r} rev {message.revision}: "
    event_time = optional_time(message, "event_time", where)
    raise_time = optional_time(message, "raise_time", where)
    clear_time = optional_time(message, "clear_time", where)
    # A producer that forgot one of the two still gave us the moment the transition happened.
    event_time = event_time or raise_time
    raise_time = raise_time or event_time
    if event_time is None or raise_time is None:
        raise InvalidRecord(f"{where}has no event or raise time")
    location = (
        coordinates(message.location.latitude_deg, message.location.longitude_deg, f"{where}location")
        if message.HasField("location")
        else None
    )
    try:
        return AlertEvent(
            **_copied(message, _EVENT_FIELDS),
            source=SourceRef(**_copied(message.source, _SOURCE_FIELDS)),
            severity=enum_member(Severity, message.severity, f"{where}severity"),
            state=enum_member(AlertState, message.state, f"{where}state"),
            observed_value=finite(message.observed_value, f"{where}observed_value"),
            threshold_value=finite(message.threshold_value, f"{where}threshold_value"),
            raise_time=raise_time,
            clear_time=clear_time,
            event_time=event_time,
            district=District(**_copied(message.district, _DISTRICT_FIELDS)),
            location=GeoPoint(*location) if location is not None else None,
            labels=dict(message.labels),
        )
    except InvalidRecord:
        raise
    except ValueError as error:
        raise InvalidRecord(f"invalid alert event {message.alert_id[:200]!r}: {error}") from error


def action_from_message(message: alerts_pb2.AlertAction) -> AlertAction:
    where = f"action {message.action_id[:200]!r}: "
    action_time = optional_time(message, "action_time", where)
    if action_time is None:
        raise InvalidRecord(f"{where}has no action_time")
    try:
        return AlertAction(
            **_copied(message, _ACTION_FIELDS),
            action_type=enum_member(ActionType, message.action_type, f"{where}action_type"),
            action_time=action_time,
        )
    except InvalidRecord:
        raise
    except ValueError as error:
        raise InvalidRecord(f"invalid alert action {message.action_id[:200]!r}: {error}") from error


def event_to_message(event: AlertEvent) -> alerts_pb2.AlertEvent:
    message = alerts_pb2.AlertEvent(
        **_copied(event, _EVENT_FIELDS),
        source=common_pb2.EntityRef(**_copied(event.source, _SOURCE_FIELDS)),
        severity=alerts_pb2.Severity.ValueType(event.severity),
        state=alerts_pb2.AlertState.ValueType(event.state),
        observed_value=event.observed_value,
        threshold_value=event.threshold_value,
        district=common_pb2.District(**_copied(event.district, _DISTRICT_FIELDS)),
        labels=dict(event.labels),
    )
    if event.location is not None:
        message.location.latitude_deg = event.location.latitude_deg
        message.location.longitude_deg = event.location.longitude_deg
    _set_time(message.raise_time, event.raise_time)
    _set_time(message.clear_time, event.clear_time)
    _set_time(message.event_time, event.event_time)
    return message


def action_to_message(action: AlertAction) -> alerts_pb2.AlertAction:
    message = alerts_pb2.AlertAction(
        **_copied(action, _ACTION_FIELDS),
        action_type=alerts_pb2.AlertActionType.ValueType(action.action_type),
    )
    _set_time(message.action_time, action.action_time)
    return message


def alert_to_message(alert: AlertView) -> alerts_pb2.Alert:
    message = alerts_pb2.Alert(
        status=alerts_pb2.AlertStatus.ValueType(alert.status),
        acknowledged_by=alert.acknowledged_by,
        assignee=alert.assignee,
        silenced=alert.silenced,
        group_key=alert.group_key,
    )
    message.latest.CopyFrom(event_to_message(alert.latest))
    _set_time(message.acknowledge_time, alert.acknowledge_time)
    return message


def change_to_message(change: Change) -> alerts_pb2.AlertChange:
    message = alerts_pb2.AlertChange(cursor=change.cursor, cause=change.cause)
    message.alert.CopyFrom(alert_to_message(change.alert))
    return message


def _copied(source: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(source, name) for name in names}


def _set_time(target: Timestamp, moment: datetime | None) -> None:
    if moment is not None:
        target.FromDatetime(moment)
