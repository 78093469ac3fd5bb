"""The waste processor's step: one container's record (a batch of readings, or a clock tick) in;
its new state and what to publish out. Pure apart from the wire conversion, so a test oracle runs
it without a broker (tests/support/processor_kit.py ``expected_from_step``).

Outputs per record: alert transitions (alerts.v1, exactly once through the runner), the
container's status (compacted ``waste.container-status.v1``, with fill rate, predicted full time
and the active alerts), its fill KPI (kpis.v1), its district summary when that changed enough
(``waste.container-summaries.v1``, keyed by district, for the district stage) and, for each
emptying seen, a
``ContainerCollected`` on ``waste.collections.v1`` (an event of its own rather than a KPI: crews
and reports need the time, the fill before and the litres, and per-district daily counts are
derived from it with :func:`services.waste.domain.kpis.collections_per_day`).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from google.protobuf.message import Message

from madina.alerts import AlertState, AlertTransition
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
    status_to_pb,
    summary_to_pb,
)
from services.waste.domain.containers import Container
from services.waste.domain.detector import (
    ContainerState,
    ContainerStatus,
    DetectionConfig,
    RejectCode,
    apply_readings,
    check_data_gap,
    container_status,
)
from services.waste.domain.districts import (
    ContainerSummary,
    summarise,
    summary_changed,
    summary_from_dict,
    summary_to_dict,
)
from services.waste.domain.kpis import container_kpis
from services.waste.topics import COLLECTIONS, CONTAINER_STATUS, CONTAINER_SUMMARIES, CONTAINER_TICKS


@dataclass
class StoredState:
    """The table value's domain part: the detector's state plus the active alerts the status shows."""

    detector: ContainerState
    # alert id -> the newest AlertEvent of an active episode (base64 protobuf: the table is JSON).
    active_alerts: dict[str, str] = field(default_factory=dict)
    # The district summary last forwarded (only a change that matters is forwarded again).
    summary: ContainerSummary | None = None

    @classmethod
    def new(cls, container_id: str) -> StoredState:
        return cls(ContainerState.new(container_id))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], container_id: str) -> StoredState:
        raw = data.get("summary")
        summary = summary_from_dict(container_id, raw) if raw is not None else None
        return cls(ContainerState.from_dict(data["detector"]), dict(data.get("active_alerts", {})), summary)

    def to_dict(self) -> dict[str, Any]:
        data = {"detector": self.detector.to_dict(), "active_alerts": dict(self.active_alerts)}
        if self.summary is not None:
            data["summary"] = summary_to_dict(self.summary)
        return data


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
        records.extend((KPIS, kpi.key, kpi_to_pb(kpi)) for kpi in container_kpis(result.status, container))
        summary = summarise(result.status, container)
        if summary is not None and summary_changed(stored.summary, summary):
            stored.summary = summary
            records.append((CONTAINER_SUMMARIES, summary.district_key, summary_to_pb(summary)))
    rejected = [
        (f"{rejection.code}: {rejection.detail}",
         spec.message_type(container_id=container.id, readings=[reading_to_pb(rejection.reading)]))
        for rejection in result.rejected
    ]
    return Step(stored, alerts, records, rejected)


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
    if transition is None:
        return Step(stored)
    alerts = _track_alerts(stored, [transition], container)
    return Step(stored, alerts, [(CONTAINER_STATUS, container.id, status_event(stored, container))])


def status_event(
    stored: StoredState, container: Container, status: ContainerStatus | None = None
) -> container_pb2.ContainerStatusChanged:
    """``status``: the step's, when it has one (the fill estimate behind it is the costly part)."""
    active = [alerts_pb2.AlertEvent.FromString(base64.b64decode(raw)) for raw in stored.active_alerts.values()]
    return container_pb2.ContainerStatusChanged(
        status=status_to_pb(status or container_status(stored.detector), container, active)
    )


def _track_alerts(
    stored: StoredState, transitions: Sequence[AlertTransition], container: Container
) -> list[alerts_pb2.AlertEvent]:
    events = []
    for transition in transitions:
        event = alert_event(transition, container)
        events.append(event)
        if transition.state is AlertState.CLEARED:
            stored.active_alerts.pop(event.alert_id, None)
        else:
            stored.active_alerts[event.alert_id] = base64.b64encode(event.SerializeToString()).decode()
    return events
