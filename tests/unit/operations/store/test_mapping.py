"""Behaviour of the protobuf mapping (services.operations.store.mapping); needs no database."""

from __future__ import annotations

from dataclasses import replace

import pytest

from madina_proto.alerts.v1 import alerts_pb2
from services.operations.domain import ActionType, AlertStatus, Change, GeoPoint, apply_action
from services.operations.store.mapping import (
    InvalidRecord,
    action_to_message,
    change_to_message,
    event_to_message,
    record_from_message,
)
from tests.unit.operations.factories import action, event, minutes, raised


def test_event_round_trips_through_the_wire_form():
    original = replace(
        event(labels={"circuit": "C12"}, clear_time=minutes(9)), location=GeoPoint(33.59, -7.62)
    )
    assert record_from_message(event_to_message(original)) == original


def test_action_round_trips_through_the_wire_form():
    original = action(ActionType.ASSIGN, minutes(3), assignee="roads-team", text="night shift")
    assert record_from_message(action_to_message(original)) == original


def test_missing_raise_time_falls_back_to_event_time():
    message = event_to_message(event(revision=2))
    message.ClearField("raise_time")
    assert record_from_message(message).raise_time == minutes(10)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "breakage",
    [
        lambda m: setattr(m, "alert_id", ""),
        lambda m: setattr(m, "revision", 0),
        lambda m: setattr(m, "severity", 0),
        lambda m: setattr(m, "state", 0),
        lambda m: (m.ClearField("raise_time"), m.ClearField("event_time")),
    ],
)
def test_events_breaking_the_contract_are_invalid(breakage):
    message = event_to_message(event())
    breakage(message)
    with pytest.raises(InvalidRecord):
        record_from_message(message)


def test_actions_breaking_the_contract_are_invalid():
    for field_name in ("action_id", "alert_id"):
        message = action_to_message(action(ActionType.COMMENT, minutes(1)))
        setattr(message, field_name, "")
        with pytest.raises(InvalidRecord):
            record_from_message(message)
    untimed = action_to_message(action(ActionType.COMMENT, minutes(1)))
    untimed.ClearField("action_time")
    with pytest.raises(InvalidRecord):
        record_from_message(untimed)
    with pytest.raises(InvalidRecord):
        record_from_message(
            alerts_pb2.AlertAction(
                action_id="x", alert_id="y", action_type=alerts_pb2.AlertActionType.ValueType(0)
            )
        )


def test_change_carries_status_acknowledgement_and_cursor():
    view = apply_action(raised(), action(ActionType.ACKNOWLEDGE, minutes(4), actor="amina"))
    message = change_to_message(
        Change(seq=42, cause="acknowledge", alert=replace(view, silenced=True), occurred_time=minutes(4))
    )
    assert message.cursor == "42" and message.cause == "acknowledge"
    assert message.alert.status == int(AlertStatus.ACTIVE_ACKNOWLEDGED)
    assert message.alert.acknowledged_by == "amina" and message.alert.silenced
    assert message.alert.acknowledge_time.ToSeconds() == int(minutes(4).timestamp())
    assert message.alert.latest.alert_id == "alert-1"
    assert message.alert.group_key == view.group_key
