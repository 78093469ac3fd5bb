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

What a pushing producer said is shared: a push also writes to the compacted
``mobility.pushed-entities.v1`` (key :func:`pushed_entity_key`) each entity whose trip or vehicle
is new under its id, and each deletion, and every API replica reads that topic from the start and
follows it (:meth:`FeedEntities.learn`). So an API that restarted, or a replica behind the same
load balancer as the one that accepted the entity, resolves an id-only deletion too. A deletion
misses when it reaches a replica before that replica has read the entity's record: in the
milliseconds after another replica accepted it, and, after a start, until the start-up read of the
topic is done (``/healthz`` says 503 until then; pushes are not refused meanwhile). What is
shared is the entity as first sent for its trip and vehicle, not every position: a withdrawal
needs only what it names (the processor keys it by trip run or vehicle and times it by the
deleting message), and a bus reporting every 10 s would otherwise double the ingest's broker
writes. An entity still pushed is written again after ``SHARE_AGAIN_AFTER_S``, so the topic's
retention forgets only entities no longer pushed. Pull mode keeps its poller's view in memory
only (a poll carries the whole feed; the first poll after a restart is the baseline). A producer
that never deletes keeps adding entity ids, so at most ``limit`` are remembered (the longest
unheard-of go first).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from google.transit import gtfs_realtime_pb2

SHARE_AGAIN_AFTER_S = 24 * 3600.0  # well within mobility.pushed-entities.v1's retention

Subject = tuple[str, ...]  # ("trip", trip_id, start_date, start_time) or ("vehicle", vehicle_id)
Known = tuple[bytes, frozenset[Subject]]  # an entity as last sent (serialised) and what it speaks of


@dataclass(frozen=True)
class FeedChanges:
    """What one message changes: entities new or changed, entities withdrawn (as last known), and
    what it leaves known (:meth:`FeedEntities.apply`)."""

    feed: gtfs_realtime_pb2.FeedMessage
    changed_entities: list[gtfs_realtime_pb2.FeedEntity]  # of ``feed``
    withdrawn: gtfs_realtime_pb2.FeedMessage
    updates: dict[str, Known | None]  # entity id -> as now known, or None: no longer known
    replaces: bool  # a full dataset: ``updates`` is everything known after it

    @property
    def changed(self) -> gtfs_realtime_pb2.FeedMessage:
        """The new or changed entities as a message (copied: push ingest, which sends them all, never asks)."""
        message = gtfs_realtime_pb2.FeedMessage()
        message.header.CopyFrom(self.feed.header)
        message.entity.extend(self.changed_entities)
        return message


@dataclass
class FeedEntities:
    """The entities one producer's feed carries now, by entity id.

    :meth:`changes` only reads, in time proportional to the message (a full dataset: also to what
    is known), and :meth:`apply` takes a message's changes as said: push ingest applies them once
    they are published, so a push that fails is not taken as said.
    """

    limit: int = 100_000
    entities: dict[str, bytes] = field(default_factory=dict)  # entity id -> serialised FeedEntity
    # entity id -> the trip run and vehicle it speaks of, kept so a message parses only what changed
    subjects: dict[str, frozenset[Subject]] = field(default_factory=dict)
    carriers: dict[Subject, int] = field(default_factory=dict)  # how many known entities speak of each
    shared_at: dict[str, float] = field(default_factory=dict)  # entity id -> when last written or read shared (s)

    def fold(self, feed: gtfs_realtime_pb2.FeedMessage, *, absence_withdraws: bool = True) -> FeedChanges:
        """:meth:`changes`, applied at once."""
        changes = self.changes(feed, absence_withdraws=absence_withdraws)
        self.apply(changes)
        return changes

    def changes(self, feed: gtfs_realtime_pb2.FeedMessage, *, absence_withdraws: bool = True) -> FeedChanges:
        """What ``feed`` changes: new or changed entities, and withdrawn ones.

        ``absence_withdraws``: a FULL_DATASET replaces the known entities (pull); without it every
        message only adds to them, as a DIFFERENTIAL does (push).
        """
        full = absence_withdraws and feed.header.incrementality != gtfs_realtime_pb2.FeedHeader.DIFFERENTIAL
        changed: list[gtfs_realtime_pb2.FeedEntity] = []
        withdrawn = gtfs_realtime_pb2.FeedMessage()
        withdrawn.header.CopyFrom(feed.header)
        updates: dict[str, Known | None] = {}
        deleted_unknown: list[gtfs_realtime_pb2.FeedEntity] = []
        for entity in feed.entity:
            if entity.is_deleted:
                updates[entity.id] = None
                if entity.id not in self.entities:  # e.g. deleted before our first message: its own selectors
                    deleted_unknown.append(entity)
                continue
            wire = entity.SerializeToString(deterministic=True)
            if self.entities.get(entity.id) != wire:
                changed.append(entity)
                updates[entity.id] = (wire, subjects_of(entity))
            else:
                updates[entity.id] = (wire, self.subjects[entity.id])
        if full:
            gone_ids = sorted(set(self.entities) - {i for i, known in updates.items() if known is not None})
            after = _counts(known[1] for known in updates.values() if known is not None)

            def carried(subject: Subject) -> bool:
                return after.get(subject, 0) > 0
        else:
            gone_ids = sorted(i for i, known in updates.items() if known is None and i in self.entities)
            delta: dict[Subject, int] = {}
            for entity_id, known in updates.items():
                for subject in self.subjects.get(entity_id, ()):
                    delta[subject] = delta.get(subject, 0) - 1
                for subject in known[1] if known is not None else ():
                    delta[subject] = delta.get(subject, 0) + 1

            def carried(subject: Subject) -> bool:
                return self.carriers.get(subject, 0) + delta.get(subject, 0) > 0
        gone = [gtfs_realtime_pb2.FeedEntity.FromString(self.entities[entity_id]) for entity_id in gone_ids]
        for entity in (*gone, *deleted_unknown):
            subjects = subjects_of(entity)
            if subjects and not any(carried(subject) for subject in subjects):
                withdrawn.entity.append(entity)
        return FeedChanges(feed, changed, withdrawn, updates, full)

    def apply(self, changes: FeedChanges) -> None:
        """Take ``changes`` as said; beyond ``limit`` entities the longest unheard-of are forgotten."""
        if changes.replaces:
            self.entities, self.subjects, self.carriers = {}, {}, {}
        for entity_id, known in changes.updates.items():
            self._know(entity_id, known)
        self._keep_limit()

    def learn(self, entity_id: str, entity: gtfs_realtime_pb2.FeedEntity | None, now_s: float) -> None:
        """Take one entity as its producer sent it, through another replica (or this one before a
        restart); ``None`` or ``is_deleted``: no longer known."""
        if entity is None or entity.is_deleted:
            self._know(entity_id, None)
        else:
            self._know(entity_id, (entity.SerializeToString(deterministic=True), subjects_of(entity)))
            self.shared_at[entity_id] = now_s
        self._keep_limit()

    def to_share(self, changes: FeedChanges, now_s: float) -> list[gtfs_realtime_pb2.FeedEntity]:
        """What the other replicas must learn of ``changes``: entities whose trip or vehicle is new
        under their id, or last shared ``SHARE_AGAIN_AFTER_S`` ago, and deletions (by id)."""
        out = []
        for entity in changes.feed.entity:
            known = changes.updates.get(entity.id)
            if known is None:
                continue
            if known[1] != self.subjects.get(entity.id) or (
                    now_s - self.shared_at.get(entity.id, -SHARE_AGAIN_AFTER_S) >= SHARE_AGAIN_AFTER_S):
                out.append(entity)
        out += [gtfs_realtime_pb2.FeedEntity(id=entity_id, is_deleted=True)
                for entity_id, known in changes.updates.items() if known is None]
        return out

    def shared(self, entities: Iterable[gtfs_realtime_pb2.FeedEntity], now_s: float) -> None:
        """Note that ``entities`` (of changes applied) were written for the other replicas at ``now_s``."""
        for entity in entities:
            if entity.id in self.entities:
                self.shared_at[entity.id] = now_s

    def _know(self, entity_id: str, known: Known | None) -> None:
        shared_at = self.shared_at.get(entity_id)
        self._forget(entity_id)
        if known is not None:
            if shared_at is not None:
                self.shared_at[entity_id] = shared_at
            self.entities[entity_id], self.subjects[entity_id] = known
            for subject in known[1]:
                self.carriers[subject] = self.carriers.get(subject, 0) + 1

    def _keep_limit(self) -> None:
        while len(self.entities) > self.limit:
            self._forget(next(iter(self.entities)))

    def _forget(self, entity_id: str) -> None:
        self.entities.pop(entity_id, None)
        self.shared_at.pop(entity_id, None)
        for subject in self.subjects.pop(entity_id, ()):
            left = self.carriers[subject] - 1
            if left:
                self.carriers[subject] = left
            else:
                del self.carriers[subject]


def _counts(groups: Iterable[frozenset[Subject]]) -> dict[Subject, int]:
    counts: dict[Subject, int] = {}
    for group in groups:
        for subject in group:
            counts[subject] = counts.get(subject, 0) + 1
    return counts


def subjects_of(entity: gtfs_realtime_pb2.FeedEntity) -> frozenset[Subject]:
    """What an entity speaks of: its trip run and its vehicle (two entity ids may speak of one)."""
    subjects: set[Subject] = set()
    if entity.HasField("trip_update"):
        trip = entity.trip_update.trip
        if trip.trip_id:
            subjects.add(("trip", trip.trip_id, trip.start_date, trip.start_time))
    if entity.HasField("vehicle") and entity.vehicle.vehicle.id:
        subjects.add(("vehicle", entity.vehicle.vehicle.id))
    return frozenset(subjects)


def pushed_entity_key(publisher: str, entity_id: str) -> str:
    """``<publisher>/<entity id>``, the publisher percent-encoded so the first ``/`` splits them."""
    return f"{quote(publisher, safe='')}/{entity_id}"


def pushed_entity_key_parts(key: str) -> tuple[str, str]:
    """(publisher, entity id) of a :func:`pushed_entity_key`; ValueError when it is not one."""
    publisher, slash, entity_id = key.partition("/")
    if not slash or not entity_id:
        raise ValueError(f"key {key[:200]!r} is not <publisher>/<entity id>")
    return unquote(publisher), entity_id
