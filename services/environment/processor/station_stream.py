"""Per-record work of the processor, free of faust: the step :mod:`madina.streams.entities` runs.

One input record is one station's batch of observations (or a clock tick). The pure evaluator
turns the station's state and the batch into a new state, alert transitions and an AQI; this
module maps them to the records the processor must publish and to the state it must store. The
runner keeps offsets and the alert outbox beside this state.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message

from madina.alerts import AlertState
from madina.bus.topics import KPIS, TopicSpec
from madina.contract import InvalidRecord, required_time
from madina.eventtime import event_time_problem
from madina.streams.entities import EntityRecord, Step, decode_entity_record
from madina_proto.alerts.v1 import alerts_pb2
from madina_proto.environment.v1 import station_pb2
from services.environment.convert import (
    alert_event,
    aqi_event,
    observation_to_pb,
    observations_from_batch,
    status_message,
)
from services.environment.domain.evaluator import (
    EvaluatorConfig,
    RejectCode,
    Rejection,
    StationState,
    apply_observations,
    check_data_gaps,
)
from services.environment.domain.profiles import AnnualLimit, Rule
from services.environment.domain.stations import Station
from services.environment.reporting import add_regulatory_status, aqi_kpi, kpis_on_change
from services.environment.topics import AQI, STATION_STATUS, STATION_TICKS


@dataclass
class Outputs:
    """What one input record asks the processor to publish, in this order."""

    alerts: list[alerts_pb2.AlertEvent] = field(default_factory=list)
    records: list[tuple[TopicSpec, str, Message]] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


@dataclass
class StoredState:
    """A station's state in the table: the evaluator's, plus what the processor needs for status."""

    evaluator: StationState
    active_alerts: dict[str, str]  # alert_id -> base64 AlertEvent, for station status
    last_aqi_value: int | None

    @classmethod
    def new(cls, station_id: str) -> StoredState:
        return cls(StationState.new(station_id), {}, None)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, station_id: str) -> StoredState:
        if not data:
            return cls.new(station_id)
        return cls(
            StationState.from_dict(data["evaluator"]),
            dict(data.get("active_alerts", {})),
            data.get("last_aqi_value"),
        )

    def to_dict(self) -> dict[str, Any]:
        # Copies, never aliases: the table must not change when this object is updated.
        return {
            "evaluator": self.evaluator.to_dict(),
            "active_alerts": dict(self.active_alerts),
            "last_aqi_value": self.last_aqi_value,
        }


def decode_input(
    spec: TopicSpec,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]] | None,
    stations: Mapping[str, Station],
) -> tuple[Any, Station]:
    """An input record's message and its station, or InvalidRecord: the station's own, under its key.

    The content-type header is required (the runner's default decode): air, water and noise
    batches share their wire layout, so a noise batch of a station that also measures air would
    otherwise read as its air readings (LAeq as PM2.5). Every Madina producer sets the header.
    """
    station_id, decoded = decode_entity_record(spec, key, value, headers)
    return decoded, station_of(station_id, stations)


def station_of(station_id: str, stations: Mapping[str, Station]) -> Station:
    station = stations.get(station_id)
    if station is None:
        raise InvalidRecord(f"station_id: unknown station {station_id[:200]!r}")
    return station


def station_step(
    stations: Mapping[str, Station],
    rules: Sequence[Rule],
    config: EvaluatorConfig,
    annual_limits: Sequence[AnnualLimit] = (),
) -> Callable[[StoredState, EntityRecord], Step[StoredState]]:
    """The processor's step: a tick checks for silence, a batch is evaluated."""

    def step(stored: StoredState, record: EntityRecord) -> Step[StoredState]:
        station = station_of(record.entity_id, stations)
        if record.spec is STATION_TICKS:
            outputs = apply_tick(stored, record.value, station, config, record.now, rules, annual_limits)
        else:
            outputs = apply_batch(stored, record.value, station, rules, config, record.now, annual_limits)
        rejected = [
            (f"{rejection.code}: {rejection.detail}",
             record.spec.message_type(station_id=station.id, observations=[observation_to_pb(rejection.observation)]))
            for rejection in outputs.rejected
        ]
        return Step(stored, outputs.alerts, outputs.records, rejected)

    return step


def apply_batch(
    stored: StoredState,
    batch: Message,
    station: Station,
    rules: Sequence[Rule],
    config: EvaluatorConfig,
    now: datetime | None = None,
    annual_limits: Sequence[AnnualLimit] = (),
) -> Outputs:
    """Fold one batch record into ``stored`` (mutated) and say what to publish.

    Raises InvalidRecord (before changing ``stored``) for a batch that does not convert;
    ``now``, the processor's clock, bounds the event times it accepts.
    """
    observations = observations_from_batch(batch)
    before = stored.evaluator
    result = apply_observations(before, observations, rules, station, config, now)
    stored.evaluator = result.state
    outputs = Outputs(rejected=list(result.rejected))
    _collect_alerts(stored, result.transitions, station, outputs)
    if result.aqi is not None and result.aqi.aqi != stored.last_aqi_value:
        stored.last_aqi_value = result.aqi.aqi
        newest = result.state.windows.max_event_time or datetime.now(UTC)
        computed = aqi_event(result.aqi, station, newest)
        outputs.records.append((AQI, station.id, computed))
        outputs.records.append((KPIS, f"aqi/{station.id}", aqi_kpi(computed, station)))
    outputs.records.extend(kpis_on_change(before, result.state, station, rules))
    if len(result.rejected) < len(batch.observations):  # type: ignore[attr-defined]
        outputs.records.append((STATION_STATUS, station.id, status_event(stored, station, rules, annual_limits)))
    return outputs


def apply_tick(
    stored: StoredState,
    tick: station_pb2.StationClockTick,
    station: Station,
    config: EvaluatorConfig,
    clock: datetime | None = None,
    rules: Sequence[Rule] = (),
    annual_limits: Sequence[AnnualLimit] = (),
) -> Outputs:
    """Check the station for silence at the tick's time.

    Raises InvalidRecord (before changing ``stored``) for a tick without a usable time or, given
    the processor's ``clock``, one outside the event-time bounds of it: a forged tick far ahead
    would otherwise declare every station silent for millennia.
    """
    now = required_time(tick, "tick_time")
    if clock is not None and (problem := event_time_problem(now, clock, config.event_time_bounds)):
        raise InvalidRecord(f"{RejectCode.OUT_OF_BOUNDS}: tick_time: {problem}")
    stored.evaluator, transition = check_data_gaps(stored.evaluator, now, station, config)
    outputs = Outputs()
    if transition is not None:
        _collect_alerts(stored, [transition], station, outputs)
        outputs.records.append((STATION_STATUS, station.id, status_event(stored, station, rules, annual_limits)))
    return outputs


def _collect_alerts(
    stored: StoredState, transitions: Sequence[Any], station: Station, outputs: Outputs
) -> None:
    for transition in transitions:
        event = alert_event(transition, station)
        outputs.alerts.append(event)
        if transition.state is AlertState.CLEARED:
            stored.active_alerts.pop(event.alert_id, None)
        else:
            stored.active_alerts[event.alert_id] = base64.b64encode(event.SerializeToString()).decode()


def status_event(
    stored: StoredState, station: Station, rules: Sequence[Rule] = (), annual_limits: Sequence[AnnualLimit] = ()
) -> station_pb2.StationStatusChanged:
    windows = stored.evaluator.windows
    latest = {
        m: v for m in station.measurands if (found := windows.latest(m)) is not None for _, v in [found]
    }
    means = []
    for spec in sorted(windows.specs, key=lambda s: (s.measurand, s.window)):
        mean = windows.mean(spec)
        if mean is not None:
            means.append((spec.measurand, spec.window, mean.mean, mean.sample_count))
    last_aqi = stored.evaluator.last_aqi
    newest = windows.max_event_time
    active = [
        alerts_pb2.AlertEvent.FromString(base64.b64decode(raw)) for raw in stored.active_alerts.values()
    ]
    status = status_message(
        station,
        last_observe_time=newest,
        latest_values=latest,
        rolling_means=means,
        aqi=aqi_event(last_aqi, station, newest) if last_aqi is not None and newest is not None else None,
        active_alerts=active,
    )
    add_regulatory_status(status, stored.evaluator, station, rules, annual_limits)
    return station_pb2.StationStatusChanged(status=status)

