"""Ticket validations and car-park counts in (HTTP and gRPC), through the processor, ridership, availability
and their alerts out: a cloned card raises ticket-fraud once, a car park that stays full raises car-park-full,
a validator's retry counts once, the dashboard's board shows ridership per line and per stop. The
simulator's cancellation (a GTFS-Realtime JSON FeedMessage) raises trip-canceled."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import httpx
from google.protobuf.timestamp_pb2 import Timestamp

from madina_proto.alerts.v1 import alerts_pb2
from madina_proto.mobility.v1 import events_pb2
from madina_proto.mobility.v1 import mobility_service_pb2 as pb
from madina_proto.mobility.v1 import mobility_service_pb2_grpc as pb_grpc
from services.mobility.api.main import build_grpc_server
from services.mobility.domain.servicedays import runs_active
from services.mobility.domain.tickets import hour_bucket
from services.mobility.simulator import cancellations
from services.operations.api.kpis import KpiBoard, follow_kpis
from services.operations.api.views import rfc3339
from tests.integration.mobility.api_support import running_mobility_api
from tests.integration.mobility.morning import KIT, schedule
from tests.support.processor_kit import wait_for_alerts

CARD, OTHER_CARD = "c0ffee" * 8, "beef01" * 8


def _validation(vid: str, card: str, vehicle: str, route: str, stop: str, lat: float, lon: float,
                at: datetime) -> dict[str, Any]:
    return {"validation_id": vid, "card_hash": card, "vehicle_id": vehicle, "route_id": route, "stop_id": stop,
            "lat": lat, "lon": lon, "timestamp": at.isoformat()}


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await check():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_validations_and_counts_become_ridership_availability_and_alerts(broker: str, tmp_path: Path) -> None:
    plan = schedule()
    tz = plan.timezone_of(next(t for t in plan.trips.values() if t.route_id == "BK-1"))
    now = datetime.now(UTC).replace(microsecond=0)
    t0 = now - timedelta(minutes=6)  # the clone's validation 5 min later is still in the past
    await KIT.create_topics(broker)
    processor = KIT.start(broker, tmp_path)
    try:
        async with running_mobility_api(broker, tmp_path) as api, httpx.AsyncClient(base_url=api.url) as client:
            publisher, reader = api.headers("operator-feed"), api.headers("dashboard")
            run = sorted(runs_active(plan, now, "BK-1"), key=lambda r: r.start)[0]
            response = await client.post("/v1/gtfs-rt", json=cancellations([run], now), headers=publisher)
            assert response.status_code == 202 and response.json()["trip_updates"] == 1, response.text
            validations = [
                _validation("v1", CARD, "BK-E01", "BK-1", "BK-HH1", 34.9335, -2.3360, t0),
                _validation("v1", CARD, "BK-E01", "BK-1", "BK-HH1", 34.9335, -2.3360, t0),  # the validator's retry
                _validation("v2", OTHER_CARD, "BK-E01", "BK-1", "BK-HH1", 34.9335, -2.3360, t0),
                _validation("v3", CARD, "CA-T07", "CA-T1", "CA-SM1", 33.5790, -7.5060, t0 + timedelta(minutes=5)),
            ]
            response = await client.post("/v1/ticket-validations", json={"ticket_validations": validations},
                                         headers=publisher)
            assert response.status_code == 202 and response.json() == {"published": 4}, response.text
            bad = [_validation("v9", CARD, "BK-E01", "NOPE", "", 34.9, -2.3, t0)]
            refused = await client.post("/v1/ticket-validations", json={"ticket_validations": bad}, headers=publisher)
            assert refused.status_code == 422 and "ticket_validations[0].route_id" in refused.text

            counts = [{"car_park_id": "BK-P1", "occupied_spaces": 180, "capacity_spaces": 180,
                       "timestamp": (now - timedelta(minutes=minutes)).isoformat()} for minutes in (40, 30, 20)]
            response = await client.post("/v1/parking-occupancy", json={"parking_occupancies": counts},
                                         headers=publisher)
            assert response.status_code == 202, response.text
            refused = await client.post("/v1/parking-occupancy", headers=publisher, json={"parking_occupancies": [
                {"car_park_id": "BK-P9", "occupied_spaces": 1, "capacity_spaces": 9, "timestamp": now.isoformat()}]})
            assert refused.status_code == 422 and "car_park_id: unknown car park" in refused.text

            server = build_grpc_server(api.runtime, port=0)
            await server.start()
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                    stub = pb_grpc.MobilityServiceStub(channel)
                    grpc_publisher = (("authorization", f"Bearer {api.tokens['operator-feed']}"),)
                    grpc_reader = (("authorization", f"Bearer {api.tokens['dashboard']}"),)
                    stamp = Timestamp()
                    stamp.FromDatetime(now - timedelta(minutes=10))
                    request = pb.PublishFeedRequest(parking_occupancy=events_pb2.ParkingOccupancyObserved(
                        car_park_id="BK-P2", observe_time=stamp, occupied_spaces_count=20,
                        capacity_spaces_count=120))
                    published = await stub.PublishFeed(iter([request]), metadata=grpc_publisher)
                    assert published.parking_occupancies_count == 1

                    async def ridership_counted() -> bool:
                        found = await stub.GetRidership(pb.GetRidershipRequest(), metadata=grpc_reader)
                        return [(c.route_id, c.validations_count) for c in found.counts] == [("BK-1", 2), ("CA-T1", 1)]

                    await _until(ridership_counted, "ridership BK-1: 2, CA-T1: 1")
                    # The operations dashboard's indicators, read from kpis.v1 as its API reads them:
                    # one ridership tile per route and one per route and stop, the newest hour's count.
                    board = KpiBoard()
                    follower = asyncio.create_task(follow_kpis(broker, board))
                    try:
                        def ridership_tiles() -> list[tuple[str, str, float, str, str]]:
                            return sorted((row["entity"]["kind"], row["entity"]["entity_id"], row["value"],
                                           row["observe_time"], row["display_name"])
                                          for row in board.indicators() if row["kpi_id"] == "ridership")

                        async def ridership_shown() -> bool:
                            return len(ridership_tiles()) == 4

                        await _until(ridership_shown, "the dashboard's ridership indicators")
                        bk_hour, ca_hour = hour_bucket(t0, tz), hour_bucket(t0 + timedelta(minutes=5), tz)
                        assert ridership_tiles() == [
                            ("route", "BK-1", 2.0, rfc3339(bk_hour), "Ridership (Line 1)"),
                            ("route", "CA-T1", 1.0, rfc3339(ca_hour), "Ridership (Line T1)"),
                            ("route-stop", "BK-1/BK-HH1", 2.0, rfc3339(bk_hour),
                             "Ridership (Line 1 at Hay Hassani Terminus)"),
                            ("route-stop", "CA-T1/CA-SM1", 1.0, rfc3339(ca_hour),
                             "Ridership (Line T1 at Sidi Moumen Terminus)")]
                        assert {key for _, key in board.latest if key.startswith("ridership/")} == {
                            "ridership/BK-1", "ridership/CA-T1", "ridership/BK-1/BK-HH1", "ridership/CA-T1/CA-SM1"}
                    finally:
                        follower.cancel()
                        await asyncio.gather(follower, return_exceptions=True)
                    by_stop = await stub.GetRidership(pb.GetRidershipRequest(route_id="BK-1", stop_id="BK-HH1"),
                                                      metadata=grpc_reader)
                    assert [(c.stop_id, c.hour_start_time.seconds, c.validations_count) for c in by_stop.counts] == [
                        ("BK-HH1", int(bk_hour.timestamp()), 2)]
                    by_route = await stub.GetRidership(pb.GetRidershipRequest(route_id="BK-1"), metadata=grpc_reader)
                    assert [(c.stop_id, c.hour_start_time.seconds, c.validations_count) for c in by_route.counts] == [
                        ("", int(bk_hour.timestamp()), 2)]

                    async def parking_seen() -> bool:
                        found = await stub.GetParkingAvailability(pb.GetParkingAvailabilityRequest(city_id="berkane"),
                                                                  metadata=grpc_reader)
                        free = {p.car_park_id: (p.free_spaces_count, p.full) for p in found.car_parks
                                if p.HasField("observe_time")}
                        return free == {"BK-P1": (0, True), "BK-P2": (100, False)}

                    await _until(parking_seen, "availability of BK-P1 and BK-P2")
            finally:
                await server.stop(grace_s=1.0)

            rest = await client.get("/v1/car-parks", params={"city_id": "berkane"}, headers=reader)
            assert [p["car_park_id"] for p in rest.json()["car_parks"]] == ["BK-P1", "BK-P2", "BK-P3"]
            rest = await client.get("/v1/ridership", params={"route_id": "CA-T1"}, headers=reader)
            assert [(c["route_id"], c["validations_count"]) for c in rest.json()["counts"]] == [("CA-T1", "1")]

        alerts = await wait_for_alerts(broker, 3)
        raised = sorted(a.rule_id for a in alerts if a.state == alerts_pb2.ALERT_STATE_RAISED)
        assert raised == ["car-park-full", "ticket-fraud", "trip-canceled"], raised
    finally:
        processor.stop()
