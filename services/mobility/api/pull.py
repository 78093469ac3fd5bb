"""GTFS-Realtime pull mode: poll producers' feeds (``MADINA_MOBILITY_GTFS_RT_URLS``) into the same ingest.

Many operators publish a FeedMessage at a URL rather than push it. Each URL gets one
:class:`FeedPoller` in the mobility API process, which every ``poll interval``:

- asks with ``If-None-Match`` (the last ``ETag``) and ``If-Modified-Since`` (the last
  ``Last-Modified``), so an unchanged feed costs a 304 and nothing else;
- parses the body with the same :func:`.publisher.parse_feed` as push ingest, and publishes through
  :func:`.publisher.feed_batches` / :func:`.publisher.publish` (route keys, dead letters);
- follows the feed's ``incrementality`` as the GTFS-Realtime reference defines it, with the same
  code as push ingest (:mod:`.incrementality`). A ``FULL_DATASET`` replaces everything known of
  that feed: entities absent from it are gone. A ``DIFFERENTIAL`` message carries only changed
  entities, and ``is_deleted`` removes one. Either way the poller keeps the feed's current entities
  (by entity id) and publishes
  only the ones that are new or changed since the last poll: an unchanged trip is not re-sent every
  interval, so the processor's "two consecutive updates" counts updates, not polls;
- publishes what is gone as a withdrawal: the entity's last known trip update or position, marked
  ``deleted`` and stamped with the feed's time (:func:`.publisher.withdrawal_batches`). The
  processor then removes that run or vehicle from the route's state, status and feeds out
  (:mod:`services.mobility.domain.evaluator`). A trip or vehicle the feed still carries under
  another entity id is not withdrawn, and neither is one whose entity never reached the topic
  (dead-lettered);
- on an error (connection, HTTP status, unparseable feed) waits twice as long as last time, up to
  the configured maximum, and starts again from the interval after a success. A feed that does
  not parse is logged with the problem and skipped whole, like a 400 on push.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import httpx
from google.transit import gtfs_realtime_pb2

from madina.bus import EventProducer
from services.mobility.api.incrementality import FeedChanges, FeedEntities
from services.mobility.api.publisher import FeedRejected, feed_batches, parse_feed, publish, withdrawal_batches
from services.mobility.domain.gtfs import Schedule

log = logging.getLogger(__name__)
PROTOBUF = "application/x-protobuf"


@dataclass
class FeedPoller:
    """One producer feed: what was last fetched, the entities known now, and the error backoff."""

    url: str
    interval_s: float
    max_backoff_s: float
    max_entities: int
    etag: str = ""
    last_modified: str = ""
    known: FeedEntities = field(init=False)
    failures: int = 0
    polls: int = 0  # every completed poll, 304 included: tests and /metrics-style logs wait on it

    def __post_init__(self) -> None:
        self.known = FeedEntities(limit=self.max_entities)

    @property
    def entities(self) -> dict[str, bytes]:
        return self.known.entities

    def request_headers(self) -> dict[str, str]:
        headers = {"Accept": PROTOBUF}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers

    def next_wait_s(self) -> float:
        if not self.failures:
            return self.interval_s
        return min(self.interval_s * 2 ** self.failures, self.max_backoff_s)

    def changed_entities(self, feed: gtfs_realtime_pb2.FeedMessage) -> FeedChanges:
        """What ``feed`` changes (new or changed entities, withdrawn ones), folding it into the known entities."""
        return self.known.fold(feed)


async def poll_once(
    poller: FeedPoller, client: httpx.AsyncClient, schedule: Schedule, producer: EventProducer
) -> int:
    """One conditional GET and its publication; the entities published or withdrawn (0 for a 304)."""
    response = await client.get(poller.url, headers=poller.request_headers())
    if response.status_code == httpx.codes.NOT_MODIFIED:
        return 0
    response.raise_for_status()
    feed = parse_feed(response.content, poller.max_entities)
    changes = poller.changed_entities(feed)
    # Validators only after the body was taken: a feed that failed is asked for in full again.
    poller.etag = response.headers.get("ETag", "")
    poller.last_modified = response.headers.get("Last-Modified", "")
    changed = changes.changed
    if changed.entity:
        await publish(producer, feed_batches(changed, schedule, feed_id=poller.url))
    if changes.withdrawn.entity:
        await publish(producer, withdrawal_batches(changes.withdrawn, schedule, feed_id=poller.url))
    return len(changed.entity) + len(changes.withdrawn.entity)


async def run_poller(
    poller: FeedPoller,
    schedule: Schedule,
    producer: EventProducer,
    client: httpx.AsyncClient,
) -> None:
    """Poll ``poller.url`` until cancelled."""
    while True:
        try:
            published = await poll_once(poller, client, schedule, producer)
            poller.failures = 0
            log.debug("GTFS-Realtime feed polled", extra={"url": poller.url, "published": published})
        except (httpx.HTTPError, FeedRejected) as error:
            poller.failures += 1
            log.warning("GTFS-Realtime feed poll failed; backing off", extra={
                "url": poller.url, "error": str(error)[:500], "retry_in_s": poller.next_wait_s()})
        poller.polls += 1
        await asyncio.sleep(poller.next_wait_s())


async def poll_feeds(
    urls: list[str], schedule: Schedule, producer: EventProducer, *, interval_s: float, max_backoff_s: float,
    max_entities: int, pollers: list[FeedPoller] | None = None,
) -> None:
    """One poller per URL, concurrently, until cancelled; ``pollers`` (if given) receives them."""
    if not urls:
        return
    created = [FeedPoller(url, interval_s, max_backoff_s, max_entities) for url in urls]
    if pollers is not None:
        pollers.extend(created)
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0), follow_redirects=True) as client:
        await asyncio.gather(*(run_poller(p, schedule, producer, client) for p in created))
