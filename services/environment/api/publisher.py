"""Validating and publishing observations: the one ingest path HTTP and gRPC (and any later gateway) share.

:func:`check_observation` refuses what the processor would drop, naming the field: an unknown
station or sensor kind, an implausible value, an event time outside the bounds of the clock,
and a reading *late* behind the station's newest observation by more than the processor's
allowed lateness. The newest observation is the one the status feed last reported, so the
check is only as fresh as the feed: a reading made late by observations still in flight passes
here and is dropped (dead-lettered) by the processor, as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from madina.bus import EventProducer
from madina.eventtime import EventTimeBounds, event_time_problem
from madina.http import parse_items
from madina.inputs import InvalidInput, UtcTime, echo
from services.environment.convert import MEASURANDS_OF, batches_by_station
from services.environment.domain.measurands import MEASURANDS, Observation, StationKind, validate_observation
from services.environment.domain.stations import Station
from services.environment.domain.windows import DEFAULT_ALLOWED_LATENESS, late_reason
from services.environment.topics import TOPIC_OF


class ObservationRejected(ValueError):
    """Raised with a message naming the field, e.g. ``observations[3].pm25_ugm3: ...``."""


# The ingest contract: one JSON observation per kind (the HTTP body's and an MQTT message's shape).
PATHS = {StationKind.AIR: "air-quality", StationKind.WATER: "water-quality", StationKind.NOISE: "noise"}


def _observation_model(kind: StationKind) -> type[BaseModel]:
    fields: dict[str, Any] = {
        "station_id": (str, Field(min_length=1, max_length=64, description="Station identifier.")),
        "observe_time": (UtcTime, Field(description="When it was measured, RFC 3339 with offset.")),
    }
    for name in MEASURANDS_OF[kind]:
        measurand = MEASURANDS[name]
        fields[name] = (
            float | None,
            Field(
                default=None,
                ge=measurand.minimum,
                le=measurand.maximum,
                allow_inf_nan=False,
                strict=True,
                description=f"{measurand.label}, {measurand.unit or 'unitless'}",
            ),
        )
    title = "".join(part.title() for part in PATHS[kind].split("-")) + "Observation"
    return create_model(title, __config__=ConfigDict(extra="forbid", title=title), **fields)


MODELS = {kind: _observation_model(kind) for kind in StationKind}


def parse_observations(kind: StationKind, body: Any, max_batch: int) -> list[Observation]:
    """One observation or ``{"observations": [...]}`` of ``kind``; ObservationRejected names the bad field.

    Only the shape and ranges of the body: :func:`check_observation` then checks each against the stations.
    """
    try:
        items = parse_items(body, MODELS[kind], "observations", max_batch)
    except InvalidInput as error:
        raise ObservationRejected(str(error)) from None
    observations = []
    for where, parsed in items:
        values = {
            name: value
            for name, value in parsed.model_dump(exclude={"station_id", "observe_time"}).items()
            if value is not None
        }
        if not values:
            raise ObservationRejected(
                f"{where + '.' if where else ''}values: at least one measurand is required"
            )
        observations.append(
            Observation(
                station_id=parsed.station_id,  # type: ignore[attr-defined]
                observe_time=parsed.observe_time.astimezone(UTC),  # type: ignore[attr-defined]
                kind=kind,
                values=values,
            )
        )
    return observations


def check_observation(
    observation: Observation,
    stations: Mapping[str, Station],
    where: str = "",
    now: datetime | None = None,
    bounds: EventTimeBounds = EventTimeBounds(),
    newest_observed: datetime | None = None,
    allowed_lateness: timedelta = DEFAULT_ALLOWED_LATENESS,
) -> None:
    """Raise ObservationRejected naming the field; the event-time and lateness rules are the processor's own.

    ``newest_observed`` is the station's newest observation as the status feed knows it.
    """
    prefix = f"{where}." if where else ""
    station = stations.get(observation.station_id)
    if station is None:
        raise ObservationRejected(f"{prefix}station_id: unknown station {echo(observation.station_id)}")
    if StationKind(observation.kind) not in station.kinds:
        raise ObservationRejected(
            f"{prefix}station_id: station {station.id} has no {StationKind(observation.kind).value} sensors"
        )
    problems = validate_observation(observation)
    if problems:
        raise ObservationRejected(
            "; ".join(f"{prefix}{problem.removeprefix('values.')}" for problem in problems)
        )
    problem = event_time_problem(observation.observe_time, now or datetime.now(UTC), bounds)
    if problem is not None:
        raise ObservationRejected(f"{prefix}observe_time: {problem}")
    late = late_reason(observation.observe_time, newest_observed, allowed_lateness)
    if late is not None:
        raise ObservationRejected(f"{prefix}observe_time: {late} (the station's newest observation)")


async def publish(producer: EventProducer, observations: Sequence[Observation]) -> int:
    """One record per (kind, station) batch; returns once every record is acknowledged (acks=all)."""
    newest: dict[tuple[StationKind, str], datetime] = {}  # one pass: a large batch stays linear
    for o in observations:
        key = (StationKind(o.kind), o.station_id)
        newest[key] = max(newest.get(key, o.observe_time), o.observe_time)
    futures = []
    for kind, station_id, batch in batches_by_station(observations):
        event_time_ms = int(newest[(kind, station_id)].timestamp() * 1000)
        futures.append(await producer.send(TOPIC_OF[kind], station_id, batch, event_time_ms=event_time_ms))
    await asyncio.gather(*futures)
    return len(observations)
