"""A headway-based run (frequencies.txt exact_times=0) through the real processor and the real gRPC and HTTP API:
no delay anywhere, as the processor judges it, and said to be headway-based.

A producer names the run as GTFS-Realtime names frequency trips (template trip_id, start_time) and
sends it 7 min "late" twice: GetTripStatus gives predicted times, no current delay and no stop delays,
with the headway; ListRouteDelays counts it apart and lists no delay for it; the trip-updates feed out
(protobuf and JSON) carries times, no delay; and no trip-delay alert is raised.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import httpx
import pytest
from google.transit import gtfs_realtime_pb2 as rt

from madina_proto.mobility.v1 import mobility_service_pb2 as pb
from madina_proto.mobility.v1 import mobility_service_pb2_grpc as pb_grpc
from services.mobility.api.main import build_grpc_server
from services.mobility.domain.gtfs import format_gtfs_time, load_feeds, run_trip_id
from services.mobility.domain.servicedays import ScheduledRun, runs_active, service_day_origin
from services.mobility.settings import MobilityProcessorSettings
from tests.integration.mobility.api_support import running_mobility_api
from tests.integration.mobility.morning import KIT
from tests.support.processor_kit import alert_events

HEADWAY_S = 600
LATE_S = 420


def _headway_feeds(tmp_path: Path, now: datetime) -> tuple[list[Path], ScheduledRun, int]:
    """The sample feeds, one of them with a trip running now made a headway template (exact_times=0)
    whose first run started at most 6 min before ``now``: the feeds, that trip's run, that start (s)."""
    feeds = MobilityProcessorSettings().mobility_gtfs_feeds
    plan = load_feeds(feeds)
    run = max(runs_active(plan, now), key=lambda r: r.end - r.start)  # the sample feeds run at every hour
    offset_s = int((now - service_day_origin(run.service_date, run.tz)).total_seconds())
    start_s = max(0, offset_s // 60 * 60 - 300)
    source = next(path for path in feeds if path.name == run.trip.feed_id)
    folder = tmp_path / source.name
    shutil.copytree(source, folder)
    (folder / "frequencies.txt").write_text(
        "trip_id,start_time,end_time,headway_secs,exact_times\n"
        f"{run.trip.trip_id},{format_gtfs_time(start_s)},{format_gtfs_time(start_s + 2 * HEADWAY_S)},{HEADWAY_S},0\n",
        encoding="utf-8")
    return [folder if path == source else path for path in feeds], run, start_s


def _late(run: ScheduledRun, start_s: int, at: datetime) -> bytes:
    feed = rt.FeedMessage()
    feed.header.gtfs_realtime_version, feed.header.timestamp = "2.0", int(at.timestamp())
    update = feed.entity.add(id="headway-run").trip_update
    update.trip.trip_id, update.trip.start_time = run.trip.trip_id, format_gtfs_time(start_s)
    update.trip.start_date = run.key.start_date
    update.vehicle.id, update.timestamp = "HW-BUS", int(at.timestamp())
    stu = update.stop_time_update.add(stop_sequence=run.trip.stop_times[0].stop_sequence)
    stu.arrival.delay = stu.departure.delay = LATE_S
    update.delay = LATE_S
    return feed.SerializeToString()


async def test_a_headway_based_run_has_no_delay_in_trip_status_route_delays_and_the_feed_out(
    broker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    feeds, template_run, start_s = _headway_feeds(tmp_path, now)
    run_id = run_trip_id(template_run.trip.trip_id, start_s)
    route_id = template_run.trip.route_id
    listed = json.dumps([str(path) for path in feeds])
    monkeypatch.setenv("MADINA_MOBILITY_GTFS_FEEDS", listed)  # the API's settings
    await KIT.create_topics(broker)
    processor = KIT.start(broker, tmp_path, extra_env={"MADINA_MOBILITY_GTFS_FEEDS": listed})
    try:
        async with running_mobility_api(broker, tmp_path) as api, httpx.AsyncClient(base_url=api.url) as client:
            assert api.runtime.schedule.trips[run_id].exact_times is False
            server = build_grpc_server(api.runtime, port=0)
            await server.start()
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                    stub = pb_grpc.MobilityServiceStub(channel)
                    publisher = (("authorization", f"Bearer {api.tokens['operator-feed']}"),)
                    reader = (("authorization", f"Bearer {api.tokens['dashboard']}"),)
                    requests = [pb.PublishFeedRequest(gtfs_realtime_feed_message=_late(template_run, start_s, at))
                                for at in (now - timedelta(seconds=20), now)]
                    published = await stub.PublishFeed(iter(requests), metadata=publisher)
                    assert published.trip_updates_count == 2

                    loop = asyncio.get_running_loop()
                    deadline = loop.time() + 45
                    while True:
                        found = await stub.GetTripStatus(pb.GetTripStatusRequest(
                            trip_id=run_id, start_date=template_run.key.start_date), metadata=reader)
                        if found.status.update_time.seconds == int(now.timestamp()):
                            break
                        assert loop.time() < deadline, f"no status of {run_id}: {found}"
                        await asyncio.sleep(0.2)
                    status = found.status
                    assert status.headway_based and status.scheduled_headway_s == HEADWAY_S
                    assert status.state == pb.TRIP_STATE_PREDICTED and not status.HasField("current_delay_s")
                    predicted = [e for stop in status.stops for e in (stop.arrival, stop.departure)
                                 if e.HasField("time")]
                    assert predicted and not any(e.HasField("delay_s") for e in predicted)
                    first = status.stops[0]
                    assert first.departure.time.seconds == first.scheduled_departure_time.seconds + LATE_S

                    delays = await stub.ListRouteDelays(pb.ListRouteDelaysRequest(route_ids=[route_id]),
                                                        metadata=reader)
                    [route] = delays.routes
                    assert route.headway_based_trips_count == 1
                    assert run_id not in {trip.trip_id for trip in route.trips}
            finally:
                await server.stop(grace_s=1.0)

            def names_the_run(trip: dict[str, str]) -> bool:  # as GTFS-Realtime names frequency trips
                return (trip["trip_id"] == template_run.trip.trip_id
                        and trip.get("start_time") == format_gtfs_time(start_s))

            response = await client.get("/gtfs-rt/trip-updates.pb", headers=api.headers("dashboard"))
            [entity] = [e for e in rt.FeedMessage.FromString(response.content).entity
                        if names_the_run({"trip_id": e.trip_update.trip.trip_id,
                                          "start_time": e.trip_update.trip.start_time})]
            update = entity.trip_update
            assert not update.HasField("delay") and update.stop_time_update
            for stu in update.stop_time_update:
                assert not stu.arrival.HasField("delay") and not stu.departure.HasField("delay")
            assert update.stop_time_update[0].departure.time == first.departure.time.seconds
            as_json = await client.get("/gtfs-rt/trip-updates.pb?format=json", headers=api.headers("dashboard"))
            as_json_entities = [e for e in as_json.json()["entity"] if names_the_run(e["trip_update"]["trip"])]
            assert len(as_json_entities) == 1 and '"delay"' not in json.dumps(as_json_entities)
        assert not [a for a in await alert_events(broker) if a.rule_id == "trip-delay"]
    finally:
        processor.stop()
