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

from madina.bus.topics import KPIS
from madina_proto.alerts.v1 import alerts_pb2
from madina_proto.kpis.v1 import kpis_pb2
from madina_proto.mobility.v1 import events_pb2
from madina_proto.mobility.v1 import mobility_service_pb2 as pb
from madina_proto.mobility.v1 import mobility_service_pb2_grpc as pb_grpc
from services.mobility.api.main import build_grpc_server
from services.mobility.convert import validation_to_wire
from services.mobility.domain.servicedays import runs_active
from services.mobility.domain.tickets import Validation, hour_bucket, ridership
from services.mobility.simulator import cancellations
from services.mobility.topics import RIDERSHIP, TICKET_VALIDATIONS
from services.operations.api.kpis import KpiBoard, follow_kpis
from services.operations.api.views import rfc3339
from tests.integration.mobility.api_support import running_mobility_api
from tests.integration.mobility.morning import KIT, schedule
from tests.support.processor_kit import produce, read_all, wait_for_alerts

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


def _latest(records: list[Any], message_type: Any) -> dict[str, Any]:
    """The latest value per key, as compaction keeps it."""
    return {r.key.decode(): message_type.FromString(r.value) for r in records if r.value is not None}


async def test_ridership_per_line_and_stop_is_exact_across_kill_9(broker: str, tmp_path: Path) -> None:
    # Each validation counted once at its stop and for its line, though the worker dies mid-stream:
    # its cards' steps re-send what they had forwarded, its routes re-apply what was not committed.
    plan = schedule()
    stops = {route: sorted({st.stop_id for t in plan.trips_by_route[route] for st in t.stop_times})[:5]
             for route in ("BK-1", "BK-2", "CA-T1")}
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=90)
    sent: list[Validation] = []
    for n in range(480):
        route = ("BK-1", "BK-2", "CA-T1")[n % 3]
        card = f"{n % 40:02x}" * 32  # each card on one vehicle: no fraud, many validations per card
        sent.append(Validation(f"kill-{n}", card, f"V-{n % 40}", route, 34.93, -2.33,
                               start + timedelta(seconds=10 * n), stops[route][n % 5]))
    retries = sent[100:130]  # a validator's retries, in the second half
    records = [(TICKET_VALIDATIONS, v.card_hash, validation_to_wire(v)) for v in [*sent, *retries]]
    tz = plan.timezone_of(next(iter(plan.trips.values())))
    expected_stops = {(v.route_id, v.stop_id, hour_bucket(v.time, tz)): 0 for v in sent}
    for v in sent:
        expected_stops[v.route_id, v.stop_id, hour_bucket(v.time, tz)] += 1
    expected_lines = {route: max((hour, count) for (r, hour), count in ridership(sent, tz).items() if r == route)
                      for route in stops}
    await KIT.create_topics(broker)

    async def counted() -> tuple[dict[str, tuple[datetime, int]], dict[tuple[str, str, datetime], int]]:
        """The lines' KPIs (hour, count) and every stop's hour total, as the compacted topics keep them."""
        kpis = _latest(await read_all(broker, KPIS.name, timeout_s=0.5), kpis_pb2.KpiObserved)
        history = _latest(await read_all(broker, RIDERSHIP.name, timeout_s=0.5), events_pb2.RidershipCounted)
        assert all(key.startswith("ridership/") for key in history)
        lines = {key.removeprefix("ridership/"): (kpi.observe_time.ToDatetime(UTC), int(kpi.value))
                 for key, kpi in kpis.items() if kpi.kpi_id == "ridership" and kpi.entity.kind == "route"}
        return lines, {(e.route_id, e.stop_id, e.hour_start_time.ToDatetime(UTC)): e.validations_count
                       for e in history.values()}

    async def some_counted() -> bool:
        return bool((await counted())[1])

    async def all_counted() -> bool:
        return await counted() == (expected_lines, expected_stops)

    processor = KIT.start(broker, tmp_path, name="first")
    try:
        await produce(broker, records[:240])
        await _until(some_counted, "the first ridership counts")
        await asyncio.sleep(0.3)
        processor.kill()  # offsets, changelog and outputs are cut wherever they are
        await produce(broker, records[240:])
        processor = KIT.start(broker, tmp_path, name="second")
        try:
            await _until(all_counted, "every validation counted", timeout_s=90)
        except AssertionError:
            lines, stops_counted = await counted()
            assert (lines, stops_counted) == (expected_lines, expected_stops)
            raise
    finally:
        processor.stop()
