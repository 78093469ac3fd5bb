"""The waste processor's step over its stored state: the active alerts a status shows survive the
table's JSON round trip, and a state written in the earlier form (base64 AlertEvents, ISO times)
still loads and serves the same status."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

from madina_proto.alerts.v1 import alerts_pb2
from services.waste.convert import batches_by_container
from services.waste.domain.containers import load_containers
from services.waste.domain.detector import DetectionConfig
from services.waste.domain.readings import Reading
from services.waste.processor.container_stream import StoredState, apply_batch, status_event
from services.waste.topics import CONTAINER_LEVELS
from tests.unit.waste.domain.test_detector import earlier_form

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
(CONTAINER,) = [c for c in load_containers() if c.id == "brk-centre-ville-h001"]


def _fill_and_burn() -> tuple[StoredState, dict[str, alerts_pb2.AlertEvent]]:
    """Readings every 10 min: filling past 95 %, then a fire; the newest event of each alert."""
    stored, config, newest = StoredState.new(CONTAINER.id), DetectionConfig(), {}
    for step_index in range(12):
        moment = T0 + timedelta(minutes=10 * step_index)
        temperature = 80.0 if step_index >= 10 else 21.0
        reading = Reading(CONTAINER.id, moment, min(1.0, 0.6 + 0.04 * step_index), temperature, 1.0, False, 80.0)
        (batch,) = batches_by_container([reading])
        step = apply_batch(stored, batch, CONTAINER, config, None, CONTAINER_LEVELS)
        stored = step.state
        newest.update((event.alert_id, event) for event in step.alerts)
    return stored, newest


def test_a_status_after_the_tables_json_round_trip_shows_the_alerts_as_published() -> None:
    stored, newest = _fill_and_burn()
    restored = StoredState.from_dict(json.loads(json.dumps(stored.to_dict())), CONTAINER.id)
    shown = status_event(restored, CONTAINER).status.active_alerts
    assert {event.rule_id for event in shown} == {"container-full", "fire-risk"}
    assert [event.SerializeToString() for event in shown] == [newest[e.alert_id].SerializeToString() for e in shown]
    assert [e.revision for e in shown if e.rule_id == "container-full"] == [2]  # raised, escalated
    assert status_event(restored, CONTAINER) == status_event(stored, CONTAINER)


def test_a_state_written_with_base64_alert_events_and_iso_times_still_loads() -> None:
    stored, _ = _fill_and_burn()
    shown = status_event(stored, CONTAINER).status.active_alerts
    earlier = {
        "detector": earlier_form(stored.detector),
        "active_alerts": {e.alert_id: base64.b64encode(e.SerializeToString()).decode() for e in shown},
    }
    restored = StoredState.from_dict(json.loads(json.dumps(earlier)), CONTAINER.id)
    assert restored.detector == stored.detector
    assert status_event(restored, CONTAINER) == status_event(stored, CONTAINER)
    # Written again, it is in the compact form, and loads to the same state once more.
    again = StoredState.from_dict(json.loads(json.dumps(restored.to_dict())), CONTAINER.id)
    assert "active_alerts" not in restored.to_dict()
    assert again.active_alerts == stored.active_alerts
    assert status_event(again, CONTAINER) == status_event(stored, CONTAINER)
