"""A producer's GTFS-Realtime feed entity by entity: what each message changes, and what it withdraws.

Shared by pull mode (one :class:`FeedEntities` per polled URL, :mod:`.pull`) and push ingest (one
per publishing principal, ``POST /v1/gtfs-rt`` and gRPC ``PublishFeed``: :func:`.publisher.ingest_feed`).

``is_deleted`` removes an entity, in both modes and whatever the header says (the reference
allows it only in ``DIFFERENTIAL`` messages; one in a full dataset is honoured the same way, the
producer plainly means it). A deleted entity is known by its id alone: it is withdrawn as the same
producer last sent it, or, never seen (deleted before our first message, or after a restart), by
the trip and vehicle selectors it carries itself; with neither there is nothing to withdraw. A
trip or vehicle the producer still carries under another entity id is not withdrawn.

Absence withdraws in pull mode only. The reference defines ``FULL_DATASET`` for a fetched feed
("this feed update will overwrite all preceding realtime information for the feed"), so a poll
that no longer carries an entity withdraws it. A push is an event, not the feed: FULL_DATASET is
the protobuf default that a producer sending one bus, one route or one cancellation at a time
leaves in its header (Madina's simulator and the scripted test morning do exactly that), and
reading absence as withdrawal would clear that producer's alerts and empty its trips from the
feeds out at every partial push, while a withdrawal missed costs only a run that goes stale or
ends. So a pushed message withdraws only what it marks ``is_deleted``, and never anything of
another producer (entities are remembered per principal). A producer that wants snapshot
semantics publishes its feed at a URL for pull mode.

What is kept is in memory, per API process: after a restart, or when a producer's pushes are
spread over several API replicas, a replica resolves an id-only deletion only for entities it saw
itself (a deletion that carries its trip or vehicle works anywhere). A producer that never
deletes keeps adding entity ids, so at most ``limit`` are remembered (the longest-known go first).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from google.transit import gtfs_realtime_pb2


@dataclass(frozen=True)
class FeedChanges:
    """What one message changed: entities new or changed, and entities withdrawn (as last known)."""

    changed: gtfs_realtime_pb2.FeedMessage
    withdrawn: gtfs_realtime_pb2.FeedMessage


@dataclass
class FeedEntities:
    """The entities one producer's feed carries now, by entity id."""

    limit: int = 100_000
    entities: dict[str, bytes] = field(default_factory=dict)  # entity id -> serialised FeedEntity
    # entity id -> the trip run and vehicle it speaks of, kept so a message parses only what changed
    subjects: dict[str, frozenset[tuple[str, ...]]] = field(default_factory=dict)

    def fold(self, feed: gtfs_realtime_pb2.FeedMessage, *, absence_withdraws: bool = True) -> FeedChanges:
        """What ``feed`` changes (new or changed entities, withdrawn ones), folding it into the known entities.

        ``absence_withdraws``: a FULL_DATASET replaces the known entities (pull); without it every
        message only adds to them, as a DIFFERENTIAL does (push).
        """
        full = absence_withdraws and feed.header.incrementality != gtfs_realtime_pb2.FeedHeader.DIFFERENTIAL
        known = {} if full else dict(self.entities)
        known_subjects = {} if full else dict(self.subjects)
        changed, withdrawn = gtfs_realtime_pb2.FeedMessage(), gtfs_realtime_pb2.FeedMessage()
        changed.header.CopyFrom(feed.header)
        withdrawn.header.CopyFrom(feed.header)
        deleted_unknown: list[gtfs_realtime_pb2.FeedEntity] = []
        for entity in feed.entity:
            if entity.is_deleted:
                known.pop(entity.id, None)
                known_subjects.pop(entity.id, None)
                if entity.id not in self.entities:  # e.g. deleted before our first message: its own selectors
                    deleted_unknown.append(entity)
                continue
            wire = entity.SerializeToString(deterministic=True)
            if self.entities.get(entity.id) != wire:
                changed.entity.append(entity)
                known_subjects[entity.id] = subjects_of(entity)
            else:
                known_subjects[entity.id] = self.subjects[entity.id]
            known[entity.id] = wire
        current = set().union(*known_subjects.values())
        gone = [gtfs_realtime_pb2.FeedEntity.FromString(self.entities[entity_id])
                for entity_id in sorted(set(self.entities) - set(known))]
        for entity in (*gone, *deleted_unknown):
            subjects = subjects_of(entity)
            if subjects and not subjects & current:
                withdrawn.entity.append(entity)
        for entity_id in list(known)[:max(0, len(known) - self.limit)]:
            del known[entity_id], known_subjects[entity_id]
        self.entities, self.subjects = known, known_subjects
        return FeedChanges(changed, withdrawn)


def subjects_of(entity: gtfs_realtime_pb2.FeedEntity) -> frozenset[tuple[str, ...]]:
    """What an entity speaks of: its trip run and its vehicle (two entity ids may speak of one)."""
    subjects: set[tuple[str, ...]] = set()
    if entity.HasField("trip_update"):
        trip = entity.trip_update.trip
        if trip.trip_id:
            subjects.add(("trip", trip.trip_id, trip.start_date, trip.start_time))
    if entity.HasField("vehicle") and entity.vehicle.vehicle.id:
        subjects.add(("vehicle", entity.vehicle.vehicle.id))
    return frozenset(subjects)
