"""From a published GTFS-Realtime FeedMessage (or AVL fixes) to route-keyed events, shared by HTTP and gRPC.

Ticket validations and car-park counts go through :func:`ingest_validations` and
:func:`ingest_parking`, also shared by HTTP and gRPC: every item is checked (known route, stop of
that route's feed, known car park, counts within capacity) before any is published, so a
request is taken whole or refused naming the first bad field (:class:`madina.contract.InvalidRecord`).

Every entity is keyed by its route (the processor keeps one state per route). A partner may leave
``route_id`` out: it is filled in from the static feed by ``trip_id``. An entity whose trip the
static feed does not have, whose trip runs on another route than it says, or which names neither
a known trip nor a known route, cannot be keyed: it goes to the input topic's ``.dlq`` alone (as
a batch of one, with the reason) and the feed's other entities still flow. A FeedMessage that
does not parse is refused whole (:class:`FeedRejected`, HTTP 400): nothing of it can be trusted.

A pushed FeedMessage (:func:`ingest_feed`) also withdraws, as a polled one does, its
``is_deleted`` entities, resolved against what the same producer (principal) pushed before, on
any replica or before a restart (``mobility.pushed-entities.v1``); unlike a poll, a pushed
FULL_DATASET withdraws nothing by absence (why: :mod:`.incrementality`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import DecodeError, Message
from google.transit import gtfs_realtime_pb2
from pydantic import BaseModel, ConfigDict, Field

from madina.bus import EventProducer
from madina.bus.codec import standard_headers
from madina.bus.topics import TopicSpec
from madina.contract import InvalidRecord
from madina.http import parse_items
from madina.inputs import echo
from madina_proto.mobility.v1 import events_pb2
from services.mobility.api.incrementality import FeedEntities, pushed_entity_key
from services.mobility.convert import (
    feed_from_pb,
    parking_to_wire,
    position_to_wire,
    trip_update_to_wire,
    validation_to_wire,
)
from services.mobility.domain.gtfs import Schedule
from services.mobility.domain.parking import CarPark, ParkingObservation
from services.mobility.domain.realtime import TripUpdate, VehiclePosition
from services.mobility.domain.tickets import Validation
from services.mobility.topics import (
    PARKING_OCCUPANCY,
    PUSHED_ENTITIES,
    TICKET_VALIDATIONS,
    TRIP_UPDATES,
    VEHICLE_POSITIONS,
)


class FeedRejected(ValueError):
    """The whole feed is refused; the message names the problem."""


@dataclass
class RouteBatches:
    """One feed's entities as route batches, and those that could not be keyed."""

    trip_updates: dict[str, events_pb2.TripUpdateReceivedBatch] = field(default_factory=dict)
    positions: dict[str, events_pb2.VehiclePositionReportedBatch] = field(default_factory=dict)
    dead: list[tuple[TopicSpec, str, Message, str]] = field(default_factory=list)  # topic, key, batch, reason
    trip_updates_count: int = 0
    positions_count: int = 0


def parse_feed(body: bytes, max_entities: int) -> gtfs_realtime_pb2.FeedMessage:
    """The FeedMessage in ``body``, or FeedRejected naming what is wrong with it."""
    if not body:
        raise FeedRejected("body is empty: expected a GTFS-Realtime FeedMessage (application/x-protobuf)")
    feed = gtfs_realtime_pb2.FeedMessage()
    try:
        feed.ParseFromString(body)
    except (DecodeError, RuntimeError) as error:
        raise FeedRejected(f"body is not a valid GTFS-Realtime FeedMessage: {error}") from None
    if not feed.header.gtfs_realtime_version:
        raise FeedRejected("header.gtfs_realtime_version: required")
    if not feed.header.timestamp:
        raise FeedRejected("header.timestamp: required (POSIX seconds)")
    if len(feed.entity) > max_entities:
        raise FeedRejected(f"entity: {len(feed.entity)} entities, more than the {max_entities} allowed")
    return feed


def route_batches(
    schedule: Schedule,
    trip_updates: Iterable[TripUpdate] = (),
    positions: Iterable[VehiclePosition] = (),
    feed_id: str = "",
) -> RouteBatches:
    out = RouteBatches()
    for update in trip_updates:
        if (run_id := schedule.run_id(update.trip_id, update.start_time)) != update.trip_id:
            update = replace(update, trip_id=run_id)  # a frequency run, named by its template and start
        route_id, problem = route_of(schedule, update.trip_id, update.route_id)
        wire = trip_update_to_wire(replace(update, route_id=route_id or update.route_id), feed_id)
        if problem is not None:
            single = events_pb2.TripUpdateReceivedBatch(route_id=wire.route_id, trip_updates=[wire])
            out.dead.append((TRIP_UPDATES, wire.route_id or update.trip_id, single, problem))
            continue
        batch = out.trip_updates.setdefault(route_id, events_pb2.TripUpdateReceivedBatch(route_id=route_id))
        batch.trip_updates.append(wire)
        out.trip_updates_count += 1
    for position in positions:
        route_id, problem = route_of(schedule, position.trip_id, position.route_id)
        wire_position = position_to_wire(replace(position, route_id=route_id or position.route_id))
        if problem is not None:
            dead = events_pb2.VehiclePositionReportedBatch(route_id=wire_position.route_id,
                                                           vehicle_positions=[wire_position])
            out.dead.append((VEHICLE_POSITIONS, wire_position.route_id or position.vehicle_id, dead, problem))
            continue
        positions_batch = out.positions.setdefault(
            route_id, events_pb2.VehiclePositionReportedBatch(route_id=route_id))
        positions_batch.vehicle_positions.append(wire_position)
        out.positions_count += 1
    return out


def route_of(schedule: Schedule, trip_id: str | None, route_id: str | None) -> tuple[str, str | None]:
    """(route id, None), or ("", the reason the entity cannot be keyed by route)."""
    if trip_id:
        trip = schedule.trips.get(trip_id)
        if trip is None:
            return "", f"trip_id: unknown trip {echo(trip_id)}"
        if route_id and route_id != trip.route_id:
            return "", f"route_id: {echo(route_id)}, but trip {trip_id} runs on route {trip.route_id}"
        return trip.route_id, None
    if not route_id:
        return "", "trip_id or route_id: required"
    if route_id not in schedule.routes:
        return "", f"route_id: unknown route {echo(route_id)}"
    return route_id, None


def feed_batches(feed: gtfs_realtime_pb2.FeedMessage, schedule: Schedule, feed_id: str = "") -> RouteBatches:
    trip_updates, positions, _deleted = feed_from_pb(feed)
    return route_batches(schedule, trip_updates, positions, feed_id)


def withdrawal_batches(
    withdrawn: gtfs_realtime_pb2.FeedMessage, schedule: Schedule, at: datetime | None = None, feed_id: str = ""
) -> RouteBatches:
    """Removal events for entities a producer withdrew: each one's last known form, ``deleted`` at ``at``
    (by default the time in ``withdrawn``'s header, that of the message that withdrew them).

    An entity that could not be keyed by route never reached the topic, so there is nothing to remove:
    it is left out rather than dead-lettered a second time.
    """
    live = gtfs_realtime_pb2.FeedMessage()
    live.CopyFrom(withdrawn)
    for entity in live.entity:
        entity.is_deleted = False  # feed_from_pb skips deleted entities; these carry their selectors
    trip_updates, positions, _ = feed_from_pb(live)
    at = at if at is not None else datetime.fromtimestamp(withdrawn.header.timestamp, UTC)
    batches = route_batches(schedule, [replace(u, deleted=True, timestamp=at) for u in trip_updates],
                            [replace(p, deleted=True, timestamp=at) for p in positions], feed_id)
    batches.dead.clear()
    return batches


@dataclass(frozen=True)
class Pushed:
    """What one pushed FeedMessage published: its entities as route batches, and how many it withdrew."""

    batches: RouteBatches
    withdrawn: int


async def ingest_feed(
    producer: EventProducer, schedule: Schedule, feed: gtfs_realtime_pb2.FeedMessage, known: FeedEntities,
    feed_id: str,
) -> Pushed:
    """Publish a pushed FeedMessage: every entity it carries, and the withdrawal of those it marks
    ``is_deleted``, as last pushed by the same producer (``known``; :mod:`.incrementality`, as pull mode).

    Unlike a poll, every entity is published even if unchanged: a push is the producer's own update.
    What the producer has said is only taken as known once everything is acknowledged, so a push
    that fails (and is retried) still withdraws what it withdraws. A producer's concurrent pushes are
    not serialised (that would cap it at one push per broker acknowledgement): a pushed message only
    adds to what is known, entity by entity, so they apply in any order; only two concurrent pushes
    of one entity id race, as they would on the topic.
    """
    changes = known.changes(feed, absence_withdraws=False)
    batches = feed_batches(feed, schedule, feed_id)
    withdrawals = withdrawal_batches(changes.withdrawn, schedule, feed_id=feed_id)
    # For the other replicas and the next start (:mod:`.incrementality`); queued first, awaited
    # last, so the events' acknowledgement does not wait behind them.
    now_s = time.time()
    to_share = known.to_share(changes, now_s)
    shared = [await producer.send(PUSHED_ENTITIES, pushed_entity_key(feed_id, entity.id), entity)
              for entity in to_share]
    await publish(producer, batches)
    await publish(producer, withdrawals)
    await asyncio.gather(*shared)
    known.apply(changes)
    known.shared(to_share, now_s)
    return Pushed(batches, withdrawals.trip_updates_count + withdrawals.positions_count)


async def publish(producer: EventProducer, batches: RouteBatches) -> None:
    """Every batch and dead letter, acknowledged (acks=all) before it returns."""
    futures = [await producer.send(TRIP_UPDATES, route_id, batch) for route_id, batch in batches.trip_updates.items()]
    futures += [await producer.send(VEHICLE_POSITIONS, route_id, batch)
                for route_id, batch in batches.positions.items()]
    for spec, key, message, reason in batches.dead:
        futures.append(await producer.send_dead_letter(
            spec, key=key.encode(), value=message.SerializeToString(),
            headers=standard_headers(spec, producer.source), reason=reason))
    await asyncio.gather(*futures)


def check_validation(schedule: Schedule, validation: Validation, where: str = "") -> None:
    """InvalidRecord naming the field unless the validation names a served route (and a known stop)."""
    route = schedule.routes.get(validation.route_id)
    if route is None:
        raise InvalidRecord(f"{where}route_id: unknown route {echo(validation.route_id)}")
    if validation.stop_id and validation.stop_id not in schedule.stops:
        raise InvalidRecord(f"{where}stop_id: unknown stop {echo(validation.stop_id)}")


async def ingest_validations(producer: EventProducer, schedule: Schedule, validations: Iterable[Validation]) -> int:
    """Check every validation, then publish each keyed by its card (acks=all); how many were published."""
    items = list(validations)
    for index, validation in enumerate(items):
        check_validation(schedule, validation, f"ticket_validations[{index}].")
    futures = [await producer.send(TICKET_VALIDATIONS, v.card_hash, validation_to_wire(v)) for v in items]
    await asyncio.gather(*futures)
    return len(items)


# The ingest contract of a car-park count (the HTTP body's items and an MQTT message's shape).
class ParkingOccupancyIn(BaseModel):
    """One count of a car park."""

    model_config = ConfigDict(extra="forbid")
    car_park_id: str = Field(min_length=1, max_length=200)
    occupied_spaces: int = Field(ge=0, le=100_000)
    capacity_spaces: int = Field(gt=0, le=100_000)
    timestamp: datetime = Field(description="When the count was taken, RFC 3339 with offset.")


def parking_observation(item: ParkingOccupancyIn, where: str = "") -> ParkingObservation:
    """The count as the domain's; InvalidRecord naming the field when its time has no UTC offset."""
    if item.timestamp.tzinfo is None:
        raise InvalidRecord(f"{where}timestamp: needs a UTC offset")
    return ParkingObservation(item.car_park_id, item.timestamp.astimezone(UTC), item.occupied_spaces,
                              item.capacity_spaces)


def parse_parking(body: Any, car_parks: dict[str, CarPark], max_batch: int) -> list[ParkingObservation]:
    """One ``ParkingOccupancyIn`` or ``{"parking_occupancies": [...]}``, checked; InvalidInput or InvalidRecord
    names the field."""
    observations = []
    for where, item in parse_items(body, ParkingOccupancyIn, "parking_occupancies", max_batch):
        prefix = f"{where}." if where else ""
        observation = parking_observation(item, prefix)
        check_parking(car_parks, observation, prefix)
        observations.append(observation)
    return observations


def check_parking(car_parks: dict[str, CarPark], observation: ParkingObservation, where: str = "") -> None:
    """InvalidRecord naming the field unless the count is of a registered car park and within its capacity."""
    park = car_parks.get(observation.car_park_id)
    if park is None:
        raise InvalidRecord(f"{where}car_park_id: unknown car park {echo(observation.car_park_id)}")
    if observation.occupied > observation.capacity:
        raise InvalidRecord(f"{where}occupied_spaces_count: {observation.occupied} is more than the "
                            f"{observation.capacity} spaces")


async def ingest_parking(
    producer: EventProducer, car_parks: dict[str, CarPark], observations: Iterable[ParkingObservation]
) -> int:
    """Check every count, then publish each keyed by its car park (acks=all); how many were published."""
    items = list(observations)
    for index, observation in enumerate(items):
        check_parking(car_parks, observation, f"parking_occupancies[{index}].")
    futures = [await producer.send(PARKING_OCCUPANCY, o.car_park_id, parking_to_wire(o)) for o in items]
    await asyncio.gather(*futures)
    return len(items)
