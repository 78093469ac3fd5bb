"""Pull mode end to end: what a producer's feed withdraws leaves Madina's GTFS-Realtime feeds out.

A producer feed on loopback (real HTTP) is polled into the real broker; the real processor keeps the
route's status and the API serves /gtfs-rt/*.pb from it. A FULL_DATASET that no longer carries a
trip update and a vehicle takes them out of the feeds; a DIFFERENTIAL that marks the remaining trip
update is_deleted takes it out too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
from aiohttp import web
from google.transit import gtfs_realtime_pb2 as rt

from services.mobility.api.pull import FeedPoller, poll_once
from services.mobility.domain.gtfs import Schedule
from services.mobility.domain.servicedays import ScheduledRun, runs_active
from tests.integration.mobility.api_support import MobilityApi, producer_feed_at, running_mobility_api
from tests.integration.mobility.morning import KIT, schedule


def _two_runs(plan: Schedule, now: datetime) -> tuple[ScheduledRun, ScheduledRun]:
    for route_id in sorted(plan.routes):
        runs = sorted(runs_active(plan, now, route_id), key=lambda run: run.start)
        if len(runs) >= 2:
            return runs[0], runs[1]
    raise AssertionError("the sample feeds run two trips of one route at every hour")


def _feed(now: datetime, runs: list[ScheduledRun], vehicle: ScheduledRun | None,
          incrementality: int = rt.FeedHeader.FULL_DATASET, deleted: tuple[str, ...] = ()) -> bytes:
    feed = rt.FeedMessage()
    feed.header.gtfs_realtime_version, feed.header.timestamp = "2.0", int(now.timestamp())
    feed.header.incrementality = incrementality  # type: ignore[assignment]
    for run in runs:
        update = feed.entity.add(id=f"tu-{run.trip.trip_id}").trip_update
        update.trip.trip_id, update.trip.start_date = run.trip.trip_id, run.key.start_date
        update.timestamp = int(now.timestamp())
        update.stop_time_update.add(stop_sequence=run.trip.stop_times[0].stop_sequence).departure.delay = 60
    if vehicle is not None:
        position = feed.entity.add(id="vp-1").vehicle
        position.vehicle.id, position.trip.trip_id = "PULL-BUS-1", vehicle.trip.trip_id
        position.trip.start_date = vehicle.key.start_date
        position.position.latitude, position.position.longitude = 34.93, -2.33
        position.timestamp = int(now.timestamp())
    for entity_id in deleted:
        feed.entity.add(id=entity_id, is_deleted=True)
    return feed.SerializeToString()


@contextlib.asynccontextmanager
async def producer_feed(body: list[bytes]) -> AsyncIterator[str]:
    """Serves ``body[0]``, whatever it is at the time, with a new ETag each time it changes."""

    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=body[0], headers={"ETag": f'"{hash(body[0])}"'}, content_type="application/x-protobuf")

    async with producer_feed_at(serve) as url:
        yield url


async def served_feed(client: httpx.AsyncClient, api: MobilityApi, which: str) -> rt.FeedMessage:
    """The API's GTFS-Realtime feed ``which`` (trip-updates, vehicle-positions, alerts), as a reader gets it."""
    response = await client.get(f"/gtfs-rt/{which}.pb", headers=api.headers("dashboard"))
    assert response.status_code == 200, response.text
    return rt.FeedMessage.FromString(response.content)


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 45
    while not await check():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def test_a_withdrawn_trip_update_and_vehicle_leave_the_feeds_out(broker: str, tmp_path: Path) -> None:
    plan = schedule()
    now = datetime.now(UTC).replace(microsecond=0)
    first, second = _two_runs(plan, now)
    body = [_feed(now, [first, second], vehicle=first)]
    await KIT.create_topics(broker)
    processor = KIT.start(broker, tmp_path, debug_trace=False)
    try:
        async with (running_mobility_api(broker, tmp_path) as api, producer_feed(body) as url,
                    httpx.AsyncClient(base_url=api.url) as client, httpx.AsyncClient() as fetcher):
            poller = FeedPoller(url, interval_s=1, max_backoff_s=1, max_entities=100)

            async def trips() -> list[str]:
                feed = await served_feed(client, api, "trip-updates")
                return sorted(e.trip_update.trip.trip_id for e in feed.entity)

            async def vehicles() -> list[str]:
                return [e.vehicle.vehicle.id for e in (await served_feed(client, api, "vehicle-positions")).entity]

            assert await poll_once(poller, fetcher, plan, api.runtime.producer) == 3
            both = sorted([first.trip.trip_id, second.trip.trip_id])
            await until(lambda: _all(trips, both, vehicles, ["PULL-BUS-1"]), "both trips and the bus in the feeds")

            body[0] = _feed(now, [first], vehicle=None)  # a full dataset without the second trip and the bus
            assert await poll_once(poller, fetcher, plan, api.runtime.producer) == 2  # two withdrawals
            await until(lambda: _all(trips, [first.trip.trip_id], vehicles, []), "the withdrawn trip and bus gone")

            body[0] = _feed(now, [], None, rt.FeedHeader.DIFFERENTIAL, deleted=(f"tu-{first.trip.trip_id}",))
            assert await poll_once(poller, fetcher, plan, api.runtime.producer) == 1
            await until(lambda: _all(trips, [], vehicles, []), "the deleted trip gone")
    finally:
        processor.stop()


async def _all(trips: Callable[[], Awaitable[list[str]]], want_trips: list[str],
               vehicles: Callable[[], Awaitable[list[str]]], want_vehicles: list[str]) -> bool:
    return await trips() == want_trips and await vehicles() == want_vehicles
