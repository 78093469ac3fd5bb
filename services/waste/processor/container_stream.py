"""The waste processor's step: one container's record (a batch of readings, or a clock tick) in;
its new state and what to publish out. Pure apart from the wire conversion, so a test oracle runs
it without a broker (tests/support/processor_kit.py ``expected_from_step``).

Outputs per record: alert transitions (alerts.v1, exactly once through the runner), the
container's status (compacted ``waste.container-status.v1``, with fill rate, predicted full time
and the active alerts: the API, planning and the map read it, so it goes with every record), and,
only when they change in a way their readers see, its fill KPI (kpis.v1: the dashboard's
per-district highest fill and worst band) and its district summary (``waste.container-summaries.v1``,
keyed by district, for the district stage's means and counts): a band, a flag or an emptying at
once, a fill that moved by ``FILL_STEP`` at most once per :data:`FILL_OUTPUT_INTERVAL` of event time (each was
a send per record, and sends are most of the worker's cost per record). And for each emptying
seen, a
``ContainerCollected`` on ``waste.collections.v1`` (an event of its own rather than a KPI: crews
and reports need the time, the fill before and the litres, and per-district daily counts are
derived from it with :func:`services.waste.domain.kpis.collections_per_day`).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.message import Message

from madina.alerts import AlertState, AlertTransition, Severity
from madina.bus.topics import KPIS, TopicSpec
from madina.contract import InvalidRecord, required_time
from madina.eventtime import event_time_problem
from madina.streams.entities import EntityRecord, Step
from madina_proto.alerts.v1 import alerts_pb2
from madina_proto.waste.v1 import container_pb2
from services.waste.convert import (
    alert_event,
    collection_to_pb,
    kpi_to_pb,
    reading_to_pb,
    readings_from_batch,
    status_changed_to_pb,
    summary_to_pb,
)
from services.waste.domain.containers import Container
from services.waste.domain.detector import (
    DOMAIN,
    ContainerState,
    ContainerStatus,
    DetectionConfig,
    RejectCode,
    apply_readings,
    check_data_gap,
    container_status,
    micros_of,
    rule_details,
    time_of_micros,
)
from services.waste.domain.districts import (
    FILL_STEP,
    ContainerSummary,
    summarise,
    summary_changed,
    summary_from_dict,
)
from services.waste.domain.fillrate import FULL_FILL_RATIO
from services.waste.domain.kpis import KpiValue, container_kpis
from services.waste.topics import COLLECTIONS, CONTAINER_STATUS, CONTAINER_SUMMARIES, CONTAINER_TICKS

FILL_OUTPUT_INTERVAL = timedelta(hours=2)
"""The least event time between two fill KPIs, or two district summaries, sent for a fill change
alone: a container's fill moves a step in hours, the indicators they feed are read in hours."""
_FILL_OUTPUT_INTERVAL_US = FILL_OUTPUT_INTERVAL // timedelta(microseconds=1)


@dataclass
class StoredState:
    """The table value's domain part: the detector's state plus the active alerts the status shows."""

    detector: ContainerState
    # alert id -> the newest transition of an active episode, as an ``_alert_row`` (JSON-ready;
    # its AlertEvent is re-created from it and the container, and kept in ``events``).
    active_alerts: dict[str, list[Any]] = field(default_factory=dict)
    # The district summary last forwarded (only a change that matters is forwarded again).
    summary: ContainerSummary | None = None
    # The fill KPI last sent, as [observe time in µs since the epoch, value, band level].
    fill_kpi: list[Any] | None = None
    # A fill KPI or summary changed but was held back by FILL_OUTPUT_INTERVAL: a tick sends it once
    # the interval has passed, so a sensor going silent right after does not leave it stale for good.
    held_back: bool = False
    # alert id -> the AlertEvent of its row: built once per revision, not per status; not stored.
    events: dict[str, alerts_pb2.AlertEvent] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def new(cls, container_id: str) -> StoredState:
        return cls(ContainerState.new(container_id))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], container_id: str) -> StoredState:
        raw = data.get("summary")
        summary = _summary_from(container_id, raw) if raw is not None else None
        stored = cls(ContainerState.from_dict(data["detector"]), {row[0]: row for row in data.get("alerts", ())},
                     summary, data.get("fill_kpi"), bool(data.get("held_back")))
        # States written before the compact rows hold each alert's AlertEvent in base64.
        for alert_id, encoded in data.get("active_alerts", {}).items():
            event = alerts_pb2.AlertEvent.FromString(base64.b64decode(encoded))
            stored.active_alerts[alert_id] = _event_row(event)
            stored.events[alert_id] = event
        return stored

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"detector": self.detector.to_dict(), "alerts": list(self.active_alerts.values())}
        if self.summary is not None:
            data["summary"] = _summary_to(self.summary)
        if self.fill_kpi is not None:
            data["fill_kpi"] = self.fill_kpi
        if self.held_back:
            data["held_back"] = True
        return data


def _summary_to(summary: ContainerSummary) -> dict[str, Any]:
    """As ``districts.summary_to_dict`` with the time in µs since the epoch: ISO text cost a
    formatting per state written."""
    return {"city": summary.city, "district": summary.district, "fill": summary.fill_ratio,
            "needs": summary.needs_collection, "fire": summary.fire_risk, "time": micros_of(summary.change_time)}


def _summary_from(container_id: str, data: Mapping[str, Any]) -> ContainerSummary:
    if isinstance(data["time"], str):  # written by districts.summary_to_dict, as states before the µs form
        return summary_from_dict(container_id, data)
    return ContainerSummary(container_id, data["city"], data["district"], data["fill"], bool(data["needs"]),
                            bool(data["fire"]), time_of_micros(data["time"]))


def container_of(container_id: str, containers: Mapping[str, Container]) -> Container:
    container = containers.get(container_id)
    if container is None:
        raise InvalidRecord(f"container_id: unknown container {container_id[:200]!r}")
    return container


def container_step(
    containers: Mapping[str, Container], config: DetectionConfig
) -> Callable[[StoredState, EntityRecord], Step[StoredState]]:
    """A tick checks for silence, a batch goes through ``apply_readings``."""

    def step(stored: StoredState, record: EntityRecord) -> Step[StoredState]:
        container = container_of(record.entity_id, containers)
        if record.spec is CONTAINER_TICKS:
            return apply_tick(stored, record.value, container, config, record.now)
        return apply_batch(stored, record.value, container, config, record.now, record.spec)

    return step


def apply_batch(
    stored: StoredState,
    batch: container_pb2.ContainerLevelObservedBatch,
    container: Container,
    config: DetectionConfig,
    now: datetime | None,
    spec: TopicSpec,
) -> Step[StoredState]:
    readings = readings_from_batch(batch)  # InvalidRecord before anything changes
    result = apply_readings(stored.detector, readings, container, config, now)
    stored.detector = result.state
    alerts = _track_alerts(stored, result.transitions, container)
    records: list[tuple[TopicSpec, str, Message]] = [
        (COLLECTIONS, container.id, collection_to_pb(collection, container)) for collection in result.collections
    ]
    if result.status is not None:
        records.append((CONTAINER_STATUS, container.id, status_event(stored, container, result.status)))
        # An emptying is news at once, whatever the band or flags.
        _fill_outputs(stored, container, result.status, bool(result.collections), records)
    rejected = [
        (f"{rejection.code}: {rejection.detail}",
         spec.message_type(container_id=container.id, readings=[reading_to_pb(rejection.reading)]))
        for rejection in result.rejected
    ]
    return Step(stored, alerts, records, rejected)


def _fill_outputs(stored: StoredState, container: Container, status: ContainerStatus, force: bool,
                  records: list[tuple[TopicSpec, str, Message]]) -> None:
    """The fill KPI and district summary of ``status`` that are due (all of them with ``force``)."""
    held_back = False
    for kpi in container_kpis(status, container):
        if force or _fill_kpi_due(stored.fill_kpi, kpi):
            stored.fill_kpi = [micros_of(kpi.observe_time), kpi.value, kpi.band_level]
            records.append((KPIS, kpi.key, kpi_to_pb(kpi)))
        elif stored.fill_kpi is not None and stored.fill_kpi[1] != kpi.value:
            held_back = True
    summary = summarise(status, container)
    if summary is not None:
        if force or _summary_due(stored.summary, summary):
            stored.summary = summary
            records.append((CONTAINER_SUMMARIES, summary.district_key, summary_to_pb(summary)))
        elif summary_changed(stored.summary, summary):
            held_back = True
    stored.held_back = held_back


def _fill_kpi_due(last: list[Any] | None, kpi: KpiValue) -> bool:
    """A first KPI and a band change go at once; a fill change alone once it is a step and the
    last one is :data:`FILL_OUTPUT_INTERVAL` old."""
    if last is None:
        return True
    sent_us, value, band = last
    if band != kpi.band_level:
        return True
    return abs(kpi.value - value) >= FILL_STEP and micros_of(kpi.observe_time) - sent_us >= _FILL_OUTPUT_INTERVAL_US


def _summary_due(last: ContainerSummary | None, new: ContainerSummary) -> bool:
    """``summary_changed``, with a fill change alone (no flag flipped, not across the full level the
    district counts) sent at most once per :data:`FILL_OUTPUT_INTERVAL`."""
    if not summary_changed(last, new):
        return False
    if last is None or last.fill_ratio is None or new.fill_ratio is None:
        return True
    if (last.needs_collection, last.fire_risk, last.fill_ratio >= FULL_FILL_RATIO) != (
            new.needs_collection, new.fire_risk, new.fill_ratio >= FULL_FILL_RATIO):
        return True
    return new.change_time - last.change_time >= FILL_OUTPUT_INTERVAL


def apply_tick(
    stored: StoredState,
    tick: container_pb2.ContainerClockTick,
    container: Container,
    config: DetectionConfig,
    clock: datetime | None = None,
) -> Step[StoredState]:
    """Check the container for silence at the tick's time; a tick outside the event-time bounds
    of the processor's clock is refused (a forged tick far ahead would call every sensor silent)."""
    moment = required_time(tick, "tick_time")
    if clock is not None and (problem := event_time_problem(moment, clock, config.event_time_bounds)):
        raise InvalidRecord(f"{RejectCode.OUT_OF_BOUNDS}: tick_time: {problem}")
    stored.detector, transition = check_data_gap(stored.detector, moment, container, config)
    records: list[tuple[TopicSpec, str, Message]] = []
    if stored.held_back and stored.fill_kpi is not None and (
            micros_of(moment) - stored.fill_kpi[0] >= _FILL_OUTPUT_INTERVAL_US):
        _fill_outputs(stored, container, container_status(stored.detector), True, records)
    if transition is None:
        return Step(stored, (), records)
    alerts = _track_alerts(stored, [transition], container)
    return Step(stored, alerts, [(CONTAINER_STATUS, container.id, status_event(stored, container)), *records])


def status_event(
    stored: StoredState, container: Container, status: ContainerStatus | None = None
) -> container_pb2.ContainerStatusChanged:
    """``status``: the step's, when it has one (the fill estimate behind it is the costly part)."""
    active = [_active_event(stored, row, container) for row in stored.active_alerts.values()]
    return status_changed_to_pb(status or container_status(stored.detector), container, active)


def _track_alerts(
    stored: StoredState, transitions: Sequence[AlertTransition], container: Container
) -> list[alerts_pb2.AlertEvent]:
    events = []
    for transition in transitions:
        event = alert_event(transition, container)
        events.append(event)
        if transition.state is AlertState.CLEARED:
            stored.active_alerts.pop(event.alert_id, None)
            stored.events.pop(event.alert_id, None)
        else:
            stored.active_alerts[event.alert_id] = _transition_row(transition)
            stored.events[event.alert_id] = event
    return events


def _transition_row(transition: AlertTransition) -> list[Any]:
    """An active alert as the state keeps it: what its AlertEvent needs beyond the container (which
    gives the source, the district, the position and, by rule, the details; an active alert has no
    clear time). Read back by :func:`_active_event`."""
    return [transition.alert_id, transition.rule_id, int(transition.state), int(transition.severity),
            transition.observed_value, transition.threshold, micros_of(transition.raise_time),
            micros_of(transition.event_time), transition.revision, transition.message]


def _event_row(event: alerts_pb2.AlertEvent) -> list[Any]:
    return [event.alert_id, event.rule_id, int(event.state), int(event.severity), event.observed_value,
            event.threshold_value, micros_of(event.raise_time.ToDatetime(tzinfo=UTC)),
            micros_of(event.event_time.ToDatetime(tzinfo=UTC)), event.revision, event.message]


def _active_event(stored: StoredState, row: list[Any], container: Container) -> alerts_pb2.AlertEvent:
    alert_id, rule_id, state, severity, observed, threshold, raised, moment, revision, message = row
    event = stored.events.get(alert_id)
    if event is None or event.revision != revision:
        transition = AlertTransition(
            alert_id=alert_id, domain=DOMAIN, source_id=container.id, rule_id=rule_id, state=AlertState(state),
            severity=Severity(severity), observed_value=observed, threshold=threshold,
            raise_time=time_of_micros(raised), clear_time=None, event_time=time_of_micros(moment), revision=revision,
            message=message, details=rule_details(container, rule_id),
        )
        event = stored.events[alert_id] = alert_event(transition, container)
    return event

