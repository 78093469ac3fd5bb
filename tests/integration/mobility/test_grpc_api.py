"""MobilityService over gRPC: PublishFeed in, trip status, route delays and vehicles out (with the processor)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from google.transit import gtfs_realtime_pb2 as rt

from madina_proto.mobility.v1 import mobility_service_pb2 as pb
from madina_proto.mobility.v1 import mobility_service_pb2_grpc as pb_grpc
from services.mobility.api.main import build_grpc_server
from services.mobility.domain.servicedays import runs_active
from tests.integration.mobility.api_support import running_mobility_api
from tests.integration.mobility.morning import KIT, schedule


def _feed(trip_id: str, start_date: str, delay_s: int, vehicle: str, lat: float, lon: float) -> bytes:
    now = int(datetime.now(UTC).timestamp())
    feed = rt.FeedMessage()
    feed.header.gtfs_realtime_version, feed.header.timestamp = "2.0", now
    update = feed.entity.add(id="tu").trip_update
    update.trip.trip_id, update.trip.start_date = trip_id, start_date
    update.vehicle.id, update.timestamp = vehicle, now
    stu = update.stop_time_update.add(stop_sequence=1)
    stu.arrival.delay = stu.departure.delay = delay_s
    position = feed.entity.add(id="vp").vehicle
    position.vehicle.id, position.timestamp = vehicle, now
    position.trip.trip_id, position.trip.start_date = trip_id, start_date
    position.position.latitude, position.position.longitude = lat, lon
    return feed.SerializeToString()


async def test_published_feed_is_served_as_trip_status_route_delays_and_watched_vehicles(
    broker: str, tmp_path: Path
) -> None:
    plan = schedule()
    run = sorted(runs_active(plan, datetime.now(UTC), "BK-1"), key=lambda r: r.start)[-1]
    trip_id, start_date = run.trip.trip_id, run.key.start_date
    stop = plan.stops[run.trip.stop_times[0].stop_id]
    await KIT.create_topics(broker)
    processor = KIT.start(broker, tmp_path)
    try:
        async with running_mobility_api(broker, tmp_path) as api:
            server = build_grpc_server(api.runtime, port=0)
            await server.start()
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                    stub = pb_grpc.MobilityServiceStub(channel)
                    publisher = (("authorization", f"Bearer {api.tokens['operator-feed']}"),)
                    reader = (("authorization", f"Bearer {api.tokens['dashboard']}"),)
                    watch = stub.WatchVehicles(pb.WatchVehiclesRequest(route_ids=["BK-1"]), metadata=reader)
                    requests = [pb.PublishFeedRequest(gtfs_realtime_feed_message=_feed(
                        trip_id, start_date, 420, "BK-E42", stop.lat, stop.lon))]
                    response = await stub.PublishFeed(iter(requests), metadata=publisher)
                    assert (response.trip_updates_count, response.vehicle_positions_count) == (1, 1)

                    seen = await asyncio.wait_for(_first_vehicle(watch), 30)
                    assert (seen.vehicle_id, seen.route_id, seen.trip_id) == ("BK-E42", "BK-1", trip_id)
                    watch.cancel()

                    # The position and the trip update are two records (two topics): the watch can see
                    # the vehicle before the processor applied the update.
                    loop = asyncio.get_running_loop()
                    deadline = loop.time() + 30
                    while True:
                        found = await stub.GetTripStatus(pb.GetTripStatusRequest(trip_id=trip_id), metadata=reader)
                        status = found.status
                        if status.state != pb.TRIP_STATE_UNKNOWN or loop.time() > deadline:
                            break
                        await asyncio.sleep(0.1)
                    assert status.state == pb.TRIP_STATE_PREDICTED and status.route_id == "BK-1"
                    assert status.vehicle_id == "BK-E42" and len(status.stops) == len(run.trip.stop_times)
                    delays = await stub.ListRouteDelays(pb.ListRouteDelaysRequest(route_ids=["BK-1"]), metadata=reader)
                    assert [r.route_id for r in delays.routes] == ["BK-1"]
                    assert [t.vehicle_id for t in delays.routes[0].trips] == ["BK-E42"]

                    with pytest.raises(grpc.aio.AioRpcError) as refused:
                        await stub.PublishFeed(iter(requests), metadata=reader)
                    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
                    with pytest.raises(grpc.aio.AioRpcError) as invalid:
                        bad = [pb.PublishFeedRequest(gtfs_realtime_feed_message=b"\x0a\x05garbage")]
                        await stub.PublishFeed(iter(bad), metadata=publisher)
                    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                    assert "items[0]" in (invalid.value.details() or "")
            finally:
                await server.stop(grace_s=1.0)
    finally:
        processor.stop()


async def _first_vehicle(watch: grpc.aio.UnaryStreamCall) -> pb.VehicleStatus:
    async for response in watch:
        return response.vehicle
    raise AssertionError("the watch ended")
