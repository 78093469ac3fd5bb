"""GTFS-Realtime pull mode against a producer feed served over HTTP on loopback, which changes between polls.

The producer answers with ETag and Last-Modified, a 304 when the poller's validators match, once a
503 (the poller backs off and asks again), then a DIFFERENTIAL update (one entity changed, one
deleted) and a FULL_DATASET that changes one entity and drops another. The trip-updates topic
must carry exactly the entities that were new or changed, once each, and a withdrawal (``deleted``)
of each entity deleted or dropped, once each.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from aiohttp import web
from google.transit import gtfs_realtime_pb2 as rt

from madina.bus import EventProducer, ensure_topics
from madina.bus.reader import read_topics
from services.mobility.api.pull import FeedPoller, poll_feeds
from services.mobility.topics import ALL, TRIP_UPDATES
from tests.integration.mobility.api_support import producer_feed_at
from tests.integration.mobility.morning import schedule

NOW = int(datetime.now(UTC).timestamp())
LAST_MODIFIED = "Mon, 30 Nov 2026 08:00:00 GMT"


def _feed(delays: dict[str, int], incrementality: int = rt.FeedHeader.FULL_DATASET,
          deleted: tuple[str, ...] = ()) -> bytes:
    feed = rt.FeedMessage()
    feed.header.gtfs_realtime_version, feed.header.timestamp = "2.0", NOW
    feed.header.incrementality = incrementality  # type: ignore[assignment]
    for trip_id, delay in delays.items():
        entity = feed.entity.add(id=f"tu-{trip_id}")
        update = entity.trip_update
        update.trip.trip_id, update.timestamp = trip_id, NOW
        update.stop_time_update.add(stop_sequence=1).departure.delay = delay
    for trip_id in deleted:
        feed.entity.add(id=f"tu-{trip_id}", is_deleted=True)
    return feed.SerializeToString()


# What the producer serves, request after request: (status, ETag, body, the If-None-Match it expects).
SCRIPT = [
    (200, '"v1"', _feed({"1-0400": 60, "1-0430": 120, "1-0500": 30}), None),
    (304, '"v1"', b"", '"v1"'),
    (503, "", b"", '"v1"'),
    # Differential: 1-0500, not mentioned, is still current.
    (200, '"v2"', _feed({"1-0400": 360}, rt.FeedHeader.DIFFERENTIAL, deleted=("1-0430",)), '"v1"'),
    (200, '"v3"', _feed({"1-0400": 360, "1-0500": 30, "1-0530": 90}), '"v2"'),
    # Full datasets: 1-0500 and 1-0530 are gone, then 1-0500 is back (new again, so published again).
    (200, '"v4"', _feed({"1-0400": 360}), '"v3"'),
    (200, '"v5"', _feed({"1-0400": 360, "1-0500": 30}), '"v4"'),
]


@contextlib.asynccontextmanager
async def producer_feed() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []

    async def serve(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        step = min(len(seen), len(SCRIPT)) - 1
        status, etag, body, _ = SCRIPT[step] if len(seen) <= len(SCRIPT) else (304, '"v5"', b"", None)
        headers = {"ETag": etag, "Last-Modified": LAST_MODIFIED} if etag else {}
        return web.Response(status=status, body=body or None, headers=headers,
                            content_type="application/x-protobuf" if body else None)

    async with producer_feed_at(serve) as url:
        yield url, seen


async def test_poller_publishes_only_new_or_changed_entities_with_conditional_requests_and_backoff(
    kafka_bootstrap: str,
) -> None:
    # The session's broker, not one of the test's own: the poller's records carry its URL (a port
    # of this test) as feed_id, which tells them from any other test's on the shared topic.
    broker = kafka_bootstrap
    plan = schedule()
    await ensure_topics(broker, ALL, default_partitions=2)
    producer = EventProducer(broker, source="mobility-api")
    await producer.start()
    pollers: list[FeedPoller] = []
    try:
        async with producer_feed() as (url, seen):
            task = asyncio.create_task(poll_feeds([url], plan, producer, interval_s=0.05, max_backoff_s=0.2,
                                                  max_entities=100, pollers=pollers))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while len(seen) < len(SCRIPT) + 1:  # one more: the poll after v3 must be conditional on it
                assert loop.time() < deadline, f"{len(seen)} requests seen"
                await asyncio.sleep(0.05)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        await producer.stop()

    assert "If-None-Match" not in seen[0] and "If-Modified-Since" not in seen[0]
    for request, (_, _, _, expected_etag) in zip(seen[1:], SCRIPT[1:], strict=False):
        assert request.get("If-None-Match") == expected_etag
        assert request.get("If-Modified-Since") == LAST_MODIFIED
    assert seen[len(SCRIPT)].get("If-None-Match") == '"v5"'
    assert set(pollers[0].entities) == {"tu-1-0400", "tu-1-0500"} and pollers[0].failures == 0

    batches = await read_topics(broker, [TRIP_UPDATES], lambda message: message)
    mine = [u for b in batches for u in b.trip_updates if u.feed_id == url]
    published = [(u.trip_id, u.stop_time_updates[0].departure.delay_s) for u in mine if not u.deleted]
    # v1: all three; 304 and 503: nothing; v2: the changed one; v3: only the new one; v4: nothing; v5: 1-0500.
    assert sorted(published) == sorted([("1-0400", 60), ("1-0430", 120), ("1-0500", 30), ("1-0400", 360),
                                        ("1-0530", 90), ("1-0500", 30)])
    # v2 deletes 1-0430 (is_deleted); v4, a full dataset, no longer carries 1-0500 and 1-0530: each is
    # withdrawn once, as last known, at the feed's time.
    withdrawn = [(u.trip_id, u.stop_time_updates[0].departure.delay_s, u.update_time.seconds)
                 for u in mine if u.deleted]
    assert sorted(withdrawn) == [("1-0430", 120, NOW), ("1-0500", 30, NOW), ("1-0530", 90, NOW)]
