"""Push ingest's withdrawals, without a broker: is_deleted resolved against the same publisher's entities,
no withdrawal by absence, a bounded memory, and nothing forgotten when publishing fails."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, cast

import pytest
from google.transit import gtfs_realtime_pb2 as rt

from madina.bus import EventProducer
from services.mobility.api.incrementality import SHARE_AGAIN_AFTER_S, FeedEntities, pushed_entity_key_parts
from services.mobility.api.publisher import ingest_feed
from services.mobility.domain.gtfs import Schedule
from services.mobility.topics import PUSHED_ENTITIES, TRIP_UPDATES
from tests.unit.mobility.test_mobility_withdrawals import T0, _feed, _withdrawn_trips


def test_a_pushed_full_dataset_withdraws_nothing_by_absence_and_is_deleted_withdraws_as_last_sent() -> None:
    known = FeedEntities()
    known.fold(_feed({"a": "1-0800", "b": "1-0820"}, vehicles=("BK-E01",)), absence_withdraws=False)
    partial = known.fold(_feed({"a": "1-0800"}), absence_withdraws=False)  # FULL_DATASET of "a" alone
    assert not partial.withdrawn.entity and set(known.entities) == {"a", "b", "vp-BK-E01"}
    # is_deleted counts in a full dataset too, and an id-only deletion is the entity as last sent.
    deletion = known.fold(_feed({}, deleted=("b", "vp-BK-E01")), absence_withdraws=False)
    assert _withdrawn_trips(deletion.withdrawn) == ["1-0820", "BK-E01"]
    assert deletion.withdrawn.entity[0].trip_update.stop_time_update[0].departure.delay == 60
    assert set(known.entities) == {"a"}


def test_remembered_entities_are_bounded_the_longest_known_forgotten_first() -> None:
    known = FeedEntities(limit=2)
    for entity_id, trip_id in (("a", "1-0800"), ("b", "1-0820"), ("c", "1-0840")):
        known.fold(_feed({entity_id: trip_id}, rt.FeedHeader.DIFFERENTIAL))
    assert list(known.entities) == ["b", "c"] and set(known.subjects) == {"b", "c"}
    forgotten = known.fold(_feed({}, rt.FeedHeader.DIFFERENTIAL, deleted=("a",)))
    assert not forgotten.withdrawn.entity  # an id-only deletion of a forgotten entity has nothing to name


def test_a_deleted_entity_whose_trip_another_entity_still_carries_is_not_withdrawn_until_that_one_goes() -> None:
    known = FeedEntities()
    known.fold(_feed({"a": "1-0800", "a-again": "1-0800", "b": "1-0820"}), absence_withdraws=False)
    first = known.fold(_feed({}, deleted=("a",)), absence_withdraws=False)
    assert not first.withdrawn.entity  # "a-again" still speaks of 1-0800
    second = known.fold(_feed({}, deleted=("a-again", "b")), absence_withdraws=False)
    assert sorted(_withdrawn_trips(second.withdrawn)) == ["1-0800", "1-0820"]
    assert known.entities == {} and known.subjects == {} and known.carriers == {}  # nothing left behind


class _FailingProducer:
    """A producer whose broker is down: every send fails."""

    source = "test"

    async def send(self, *args: Any, **kwargs: Any) -> asyncio.Future[None]:
        raise ConnectionError("broker down")


class _RecordingProducer:
    source = "test"

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, Any]] = []

    async def send(self, spec: Any, key: str, message: Any) -> asyncio.Future[None]:
        self.sent.append((spec.name, key, message))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


async def test_a_push_that_fails_to_publish_is_not_taken_as_said_so_its_retry_still_withdraws(
    schedule: Schedule,
) -> None:
    pushed = FeedEntities()
    recording = _RecordingProducer()
    await ingest_feed(cast(EventProducer, recording), schedule, _feed({"a": "1-0800", "b": "1-0820"}), pushed, "op")
    deletion = _feed({}, rt.FeedHeader.DIFFERENTIAL, at=T0, deleted=("b",))
    with pytest.raises(ConnectionError):
        await ingest_feed(cast(EventProducer, _FailingProducer()), schedule, deletion, pushed, "op")
    assert set(pushed.entities) == {"a", "b"}
    recording.sent.clear()
    retried = await ingest_feed(cast(EventProducer, recording), schedule, deletion, pushed, "op")
    assert retried.withdrawn == 1
    [(topic, key, batch)] = [sent for sent in recording.sent if sent[0] != PUSHED_ENTITIES.name]
    assert (topic, key) == ("mobility.trip-updates.v1", "BK-1")
    assert [(u.trip_id, u.deleted, u.feed_id) for u in batch.trip_updates] == [("1-0820", True, "op")]


def _shared(recording: _RecordingProducer) -> list[tuple[str, Any]]:
    return [(key, entity) for topic, key, entity in recording.sent if topic == PUSHED_ENTITIES.name]


async def test_a_replica_resolves_an_id_only_deletion_of_what_another_replica_or_its_past_self_accepted(
    schedule: Schedule,
) -> None:
    # Replica A accepts the pushes; replica B (or A restarted) knows only what it read on the shared topic.
    replica_a, recording = FeedEntities(), _RecordingProducer()
    first = _feed({"a": "1-0800", "b": "1-0820"}, vehicles=("BK-E01",))
    await ingest_feed(cast(EventProducer, recording), schedule, first, replica_a, "op/berkane")
    assert [key for key, _ in _shared(recording)] == ["op%2Fberkane/a", "op%2Fberkane/b", "op%2Fberkane/vp-BK-E01"]
    written = len(recording.sent)
    later = _feed({"a": "1-0800", "b": "1-0820"}, vehicles=("BK-E01",), at=T0 + timedelta(seconds=10))
    await ingest_feed(cast(EventProducer, recording), schedule, later, replica_a, "op/berkane")
    assert len(_shared(recording)) == 3 and len(recording.sent) > written  # same trips and bus: not again
    await ingest_feed(cast(EventProducer, recording), schedule, _feed({"a": "1-0800"}, deleted=("vp-BK-E01",)),
                      replica_a, "op/berkane")

    replicas_b: dict[str, FeedEntities] = {}
    for key, entity in _shared(recording):
        publisher, entity_id = pushed_entity_key_parts(key)
        replicas_b.setdefault(publisher, FeedEntities()).learn(entity_id, entity, now_s=0.0)
    replica_b = replicas_b["op/berkane"]
    assert set(replica_b.entities) == set(replica_a.entities) == {"a", "b"}
    assert replica_b.carriers == replica_a.carriers

    recording.sent.clear()
    deletion = _feed({}, deleted=("b",))  # under a FULL_DATASET header, as producers leave it
    withdrawn = await ingest_feed(cast(EventProducer, recording), schedule, deletion, replica_b, "op/berkane")
    assert withdrawn.withdrawn == 1
    [(_, _, batch)] = [sent for sent in recording.sent if sent[0] == TRIP_UPDATES.name]
    assert [(u.trip_id, u.deleted) for u in batch.trip_updates] == [("1-0820", True)]
    other = await ingest_feed(cast(EventProducer, recording), schedule, deletion, FeedEntities(), "other-operator")
    assert other.withdrawn == 0  # never another publisher's


def test_an_entity_is_shared_again_when_its_trip_changes_or_a_day_after_it_was_last_shared() -> None:
    known = FeedEntities()

    def shared_ids(feed: rt.FeedMessage, now_s: float) -> list[str]:
        changes = known.changes(feed, absence_withdraws=False)
        out = known.to_share(changes, now_s)
        known.apply(changes)
        known.shared(out, now_s)
        return [entity.id for entity in out]

    assert shared_ids(_feed({"a": "1-0800"}, vehicles=("BK-E01",)), 0) == ["a", "vp-BK-E01"]
    for seconds in (10, 20, 30):  # the bus moves, its trip and vehicle stay
        assert shared_ids(_feed({"a": "1-0800"}, vehicles=("BK-E01",), at=T0 + timedelta(seconds=seconds)),
                          seconds) == []
    assert shared_ids(_feed({"a": "1-0820"}, at=T0 + timedelta(seconds=40)), 40) == ["a"]  # another trip
    assert shared_ids(_feed({"a": "1-0820"}, vehicles=("BK-E01",), at=T0 + timedelta(seconds=50)),
                      SHARE_AGAIN_AFTER_S + 1) == ["vp-BK-E01"]
    assert shared_ids(_feed({}, deleted=("a", "never-seen")), SHARE_AGAIN_AFTER_S + 2) == ["a", "never-seen"]
