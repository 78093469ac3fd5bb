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

from madina.bus import EventProducer
from madina.eventtime import EventTimeBounds, event_time_problem
from madina.inputs import echo
from services.environment.convert import batches_by_station
from services.environment.domain.measurands import Observation, StationKind, validate_observation
from services.environment.domain.stations import Station
from services.environment.domain.windows import DEFAULT_ALLOWED_LATENESS, late_reason
from services.environment.topics import TOPIC_OF


class ObservationRejected(ValueError):
    """Raised with a message naming the field, e.g. ``observations[3].pm25_ugm3: ...``."""


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
    futures = []
    for kind, station_id, batch in batches_by_station(observations):
        newest = max(
            o.observe_time for o in observations if o.station_id == station_id and StationKind(o.kind) is kind
        )
        futures.append(
            await producer.send(
                TOPIC_OF[kind], station_id, batch, event_time_ms=int(newest.timestamp() * 1000)
            )
        )
    await asyncio.gather(*futures)
    return len(observations)
