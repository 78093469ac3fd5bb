"""The waste processor's step over its stored state: the active alerts a status shows survive the
table's JSON round trip, a state written in the earlier form (base64 AlertEvents, ISO times)
still loads and serves the same status, and the fill KPI and district summary go out only when
their readers would see a change."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

from madina.bus.topics import KPIS
from madina_proto.alerts.v1 import alerts_pb2
from services.waste.convert import batches_by_container
from services.waste.domain.containers import load_containers
from services.waste.domain.detector import DetectionConfig
from services.waste.domain.districts import ContainerSummary, summary_to_dict
from services.waste.domain.readings import Reading
from services.waste.processor.container_stream import StoredState, _summary_due, apply_batch, status_event
from services.waste.topics import CONTAINER_LEVELS, CONTAINER_STATUS
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


def _outputs_per_hour(fills: list[float], every: timedelta = timedelta(hours=1)) -> list[list[str]]:
    """One record per hour (or ``every``) holding one reading, through the table's JSON each time;
    the topics each record published to."""
    stored, config, sent = StoredState.new(CONTAINER.id), DetectionConfig(), []
    for index, fill in enumerate(fills):
        (batch,) = batches_by_container([Reading(CONTAINER.id, T0 + index * every, fill, 21.0)])
        step = apply_batch(stored, batch, CONTAINER, config, None, CONTAINER_LEVELS)
        sent.append([spec.name for spec, _, _ in step.records])
        stored = StoredState.from_dict(json.loads(json.dumps(step.state.to_dict())), CONTAINER.id)
    return sent


def test_the_fill_kpi_follows_a_fill_step_at_most_every_two_hours_and_a_band_change_at_once() -> None:
    # The judged fill (median of the last three) per hour: .10 .10 .10 .16 .22 .28 .30 .31 .32 .90
    sent = _outputs_per_hour([0.10, 0.10, 0.16, 0.22, 0.28, 0.30, 0.31, 0.32, 0.90, 0.95])
    assert all(topics[0] == CONTAINER_STATUS.name for topics in sent)  # the status goes with every record
    assert [KPIS.name in topics for topics in sent] == [
        True,  # the first
        False, False,  # no change
        True,  # a step, three hours after the first
        False,  # a step, but one hour after the last sent
        True,  # two hours after
        False, False, False,  # under a step since the last sent, however long after
        True,  # band 2 (and 4 would be at once too)
    ]


def test_an_emptying_sends_the_fill_kpi_at_once() -> None:
    sent = _outputs_per_hour([0.60, 0.62, 0.64, 0.05], every=timedelta(minutes=20))
    assert [KPIS.name in topics for topics in sent] == [True, False, False, True]  # band 0 throughout


def _summary(hour: float, fill: float, needs: bool = False, fire: bool = False) -> ContainerSummary:
    return ContainerSummary(CONTAINER.id, CONTAINER.city, CONTAINER.district, fill, needs, fire,
                            T0 + timedelta(hours=hour))


def test_a_district_summary_waits_two_hours_for_a_fill_change_alone_but_not_for_a_flag_or_the_full_level() -> None:
    last = _summary(0, 0.30)
    assert _summary_due(None, last)
    assert not _summary_due(last, _summary(1, 0.32))  # under the district's fill step
    assert not _summary_due(last, _summary(1, 0.40))  # a step, one hour after
    assert _summary_due(last, _summary(2, 0.40))  # a step, two hours after
    assert _summary_due(last, _summary(0.1, 0.31, needs=True))
    assert _summary_due(last, _summary(0.1, 0.31, fire=True))
    assert _summary_due(_summary(0, 0.76), _summary(0.1, 0.83))  # now counted full in its district


def test_a_summary_stored_with_an_iso_time_still_loads() -> None:
    stored, _ = _fill_and_burn()
    assert stored.summary is not None
    data = json.loads(json.dumps(stored.to_dict()))
    assert isinstance(data["summary"]["time"], int)
    data["summary"] = summary_to_dict(stored.summary)  # the form states were written in before
    assert StoredState.from_dict(data, CONTAINER.id).summary == stored.summary


def test_a_fill_kpi_held_back_goes_out_with_a_tick_once_the_interval_has_passed_if_the_sensor_falls_silent() -> None:
    from madina.bus.alert_events import timestamp
    from madina_proto.waste.v1 import container_pb2
    from services.waste.processor.container_stream import apply_tick
    from services.waste.topics import CONTAINER_SUMMARIES

    # Judged fills .10 .10 .10 .16 .22: the KPI at .16 went out, the step to .22 an hour later was
    # held back; then the sensor says nothing more.
    stored, config = StoredState.new(CONTAINER.id), DetectionConfig()
    for index, fill in enumerate([0.10, 0.10, 0.16, 0.22, 0.28]):
        (batch,) = batches_by_container([Reading(CONTAINER.id, T0 + index * timedelta(hours=1), fill, 21.0)])
        step = apply_batch(stored, batch, CONTAINER, config, None, CONTAINER_LEVELS)
        stored = StoredState.from_dict(json.loads(json.dumps(step.state.to_dict())), CONTAINER.id)
    assert KPIS.name not in [spec.name for spec, _, _ in step.records] and stored.held_back

    def tick(at: datetime) -> list[tuple[str, object]]:
        nonlocal stored
        message = container_pb2.ContainerClockTick(container_id=CONTAINER.id, tick_time=timestamp(at))
        result = apply_tick(stored, message, CONTAINER, config)
        stored = StoredState.from_dict(json.loads(json.dumps(result.state.to_dict())), CONTAINER.id)
        return [(spec.name, value) for spec, _, value in result.records]

    assert tick(T0 + timedelta(hours=4, minutes=30)) == []  # 1.5 h after the KPI last sent (hour 3)
    sent = tick(T0 + timedelta(hours=5, minutes=1))
    kpis = [value for name, value in sent if name == KPIS.name]
    assert kpis and abs(kpis[0].value - 0.22) < 1e-9  # the held-back step, not the .16 shown so far
    assert CONTAINER_SUMMARIES.name in [name for name, _ in sent] and not stored.held_back
    later = [name for name, _ in tick(T0 + timedelta(hours=8))]  # a data gap by then: its status only
    assert KPIS.name not in later and CONTAINER_SUMMARIES.name not in later  # sent once
