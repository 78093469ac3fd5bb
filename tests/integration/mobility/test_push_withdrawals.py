"""Push mode end to end: what a publisher's pushed feed deletes leaves Madina's feeds out, and only its own.

Two publishers (two principals) push GTFS-Realtime FeedMessages as protobuf over the real HTTP
endpoint (and one over real gRPC ``PublishFeed``) into the real broker; the real processor keeps the
routes' status and the API serves /gtfs-rt/*.pb from it. A pushed FULL_DATASET that leaves entities
out withdraws nothing; ``is_deleted`` entities, named by id alone, withdraw the trip or bus their
publisher last sent under that id (never another publisher's) and clear the trips' delay alerts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import httpx
from google.transit import gtfs_realtime_pb2 as rt

from madina_proto.alerts.v1 import alerts_pb2
from madina_proto.mobility.v1 import mobility_service_pb2 as pb
from madina_proto.mobility.v1 import mobility_service_pb2_grpc as pb_grpc
from services.mobility.api.main import build_grpc_server
from services.mobility.domain.evaluator import TRIP_DELAY_RULE
from services.mobility.domain.gtfs import Schedule
from services.mobility.domain.servicedays import ScheduledRun, runs_active
from tests.integration.mobility.api_support import MobilityApi, running_mobility_api
from tests.integration.mobility.morning import KIT, schedule
from tests.integration.mobility.test_pull_withdrawals import served_feed, until
from tests.support.processor_kit import alert_events

PROTOBUF = {"Content-Type": "application/x-protobuf"}
LATE_S = 420  # over the 5 min of the trip-delay rule


def _runs(plan: Schedule, now: datetime, count: int) -> list[ScheduledRun]:
    """``count`` runs on the road now, timed ones (frequencies.txt exact_times=0 runs have no delay)."""
    found = [run for route_id in sorted(plan.routes)
             for run in sorted(runs_active(plan, now, route_id), key=lambda run: run.start)
             if run.trip.exact_times is not False and run.end > now + timedelta(minutes=15)]
    assert len(found) >= count, "the sample feeds run several timed trips at every hour"
    return found[:count]


def _feed(at: datetime, runs: list[ScheduledRun], vehicles: dict[str, ScheduledRun],
          incrementality: int = rt.FeedHeader.FULL_DATASET, deleted: tuple[str, ...] = ()) -> rt.FeedMessage:
    feed = rt.FeedMessage()
    feed.header.gtfs_realtime_version, feed.header.timestamp = "2.0", int(at.timestamp())
    feed.header.incrementality = incrementality  # type: ignore[assignment]
    for run in runs:
        update = feed.entity.add(id=f"tu-{run.trip.trip_id}").trip_update
        update.trip.trip_id, update.trip.start_date = run.trip.trip_id, run.key.start_date
        update.timestamp = int(at.timestamp())
        update.stop_time_update.add(stop_sequence=run.trip.stop_times[0].stop_sequence).departure.delay = LATE_S
    for vehicle_id, run in vehicles.items():
        position = feed.entity.add(id=f"vp-{vehicle_id}").vehicle
        position.vehicle.id, position.trip.trip_id = vehicle_id, run.trip.trip_id
        position.trip.start_date = run.key.start_date
        position.position.latitude, position.position.longitude = 34.93, -2.33
        position.timestamp = int(at.timestamp())
    for entity_id in deleted:
        feed.entity.add(id=entity_id, is_deleted=True)
    return feed


async def _push(client: httpx.AsyncClient, api: MobilityApi, publisher: str, feed: rt.FeedMessage) -> dict[str, int]:
    response = await client.post("/v1/gtfs-rt", content=feed.SerializeToString(),
                                 headers=api.headers(publisher, **PROTOBUF))
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["dead_lettered"] == [], body
    return {name: body[name] for name in ("trip_updates", "vehicle_positions", "withdrawn")}


async def test_pushed_withdrawals_leave_the_feeds_and_touch_only_their_publishers_trips(
    broker: str, tmp_path: Path,
) -> None:
    plan = schedule()
    now = datetime.now(UTC).replace(microsecond=0)
    late, dropped, other = _runs(plan, now, 3)
    await KIT.create_topics(broker)
    processor = KIT.start(broker, tmp_path, debug_trace=False)
    try:
        async with running_mobility_api(broker, tmp_path) as api, httpx.AsyncClient(base_url=api.url) as client:

            async def shown(want_trips: list[str], want_vehicles: list[str]) -> bool:
                trips = (await served_feed(client, api, "trip-updates")).entity
                vehicles = (await served_feed(client, api, "vehicle-positions")).entity
                return (sorted(e.trip_update.trip.trip_id for e in trips) == sorted(want_trips)
                        and sorted(e.vehicle.vehicle.id for e in vehicles) == sorted(want_vehicles))

            a_vehicles = {"A-BUS": dropped}
            # Two consecutive late updates from A raise its two runs' delay alerts.
            for at in (now - timedelta(seconds=30), now):
                assert await _push(client, api, "operator-feed", _feed(at, [late, dropped], a_vehicles)) == {
                    "trip_updates": 2, "vehicle_positions": 1, "withdrawn": 0}
            assert await _push(client, api, "other-operator", _feed(now, [other], {"B-BUS": other})) == {
                "trip_updates": 1, "vehicle_positions": 1, "withdrawn": 0}
            everything = [late.trip.trip_id, dropped.trip.trip_id, other.trip.trip_id]
            await until(lambda: shown(everything, ["A-BUS", "B-BUS"]), "both publishers' trips and buses")

            # A pushed FULL_DATASET of `late` alone is an update of `late`, not a withdrawal of the rest.
            later = now + timedelta(seconds=10)
            assert await _push(client, api, "operator-feed", _feed(later, [late], {})) == {
                "trip_updates": 1, "vehicle_positions": 0, "withdrawn": 0}

            async def late_updated() -> bool:
                feed = await served_feed(client, api, "trip-updates")
                return any(e.trip_update.trip.trip_id == late.trip.trip_id
                           and e.trip_update.timestamp == int(later.timestamp()) for e in feed.entity)

            await until(late_updated, "A's partial full dataset applied")
            assert await shown(everything, ["A-BUS", "B-BUS"])

            # A deletes `dropped` and its bus by entity id alone: they go; B's trip and bus stay.
            deleted = _feed(later + timedelta(seconds=10), [], {}, rt.FeedHeader.DIFFERENTIAL,
                            deleted=(f"tu-{dropped.trip.trip_id}", "vp-A-BUS"))
            assert await _push(client, api, "operator-feed", deleted) == {
                "trip_updates": 0, "vehicle_positions": 0, "withdrawn": 2}
            await until(lambda: shown([late.trip.trip_id, other.trip.trip_id], ["B-BUS"]),
                         "A's deleted trip and bus gone, B's kept")

            # B deletes its trip over gRPC PublishFeed, by entity id, in a message left at the
            # protobuf default FULL_DATASET; A's entity of the same id means nothing to B.
            server = build_grpc_server(api.runtime, port=0)
            await server.start()
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                    stub = pb_grpc.MobilityServiceStub(channel)
                    feed = _feed(later + timedelta(seconds=20), [], {},
                                 deleted=(f"tu-{other.trip.trip_id}", f"tu-{late.trip.trip_id}"))
                    published = await stub.PublishFeed(
                        iter([pb.PublishFeedRequest(gtfs_realtime_feed_message=feed.SerializeToString())]),
                        metadata=(("authorization", f"Bearer {api.tokens['other-operator']}"),))
                    assert (published.trip_updates_count, published.withdrawals_count) == (0, 1)
            finally:
                await server.stop(grace_s=1.0)
            await until(lambda: shown([late.trip.trip_id], ["B-BUS"]), "B's deleted trip gone, A's kept")

            # A deletes `late` too: no trip is left.
            deleted = _feed(later + timedelta(seconds=30), [], {}, rt.FeedHeader.DIFFERENTIAL,
                            deleted=(f"tu-{late.trip.trip_id}",))
            assert (await _push(client, api, "operator-feed", deleted))["withdrawn"] == 1
            await until(lambda: shown([], ["B-BUS"]), "A's last trip gone")

        # A's two runs were late twice (B's once): each withdrawal cleared its run's alert.
        delay_alerts = sorted((a.labels["trip_id"], a.state) for a in await alert_events(broker)
                              if a.rule_id == TRIP_DELAY_RULE)
        assert delay_alerts == sorted((run.trip.trip_id, state) for run in (late, dropped) for state in (
            alerts_pb2.ALERT_STATE_RAISED, alerts_pb2.ALERT_STATE_CLEARED)), delay_alerts
    finally:
        processor.stop()
