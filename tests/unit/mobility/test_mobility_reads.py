"""The API's read RPCs honour their filters (city, route, stop, period, start date), served from a runtime
filled by hand (no broker); and a broken GTFS feed stops the API before it serves."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from madina.auth import write_credentials
from madina.geo import load_cities
from madina_proto.mobility.v1 import mobility_service_pb2 as pb
from madina_proto.mobility.v1 import status_pb2
from services.mobility.api.grpc import MobilityServicer
from services.mobility.api.main import build_runtime
from services.mobility.api.state import MobilityRuntime, RidershipHours
from services.mobility.convert import ridership_counted, trip_update_to_wire
from services.mobility.domain.cities import route_cities
from services.mobility.domain.gtfs import GtfsError, Schedule, load_feed
from services.mobility.domain.realtime import TripRelationship, TripUpdate
from services.mobility.domain.servicedays import runs_active
from services.mobility.settings import MobilitySettings
from services.mobility.topics import RIDERSHIP_KEPT_DAYS
from tests.unit.mobility.conftest import GTFS_DIR


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[MobilityRuntime]:
    write_credentials(tmp_path / "credentials.yaml", {"dashboard": ["mobility:read"]})
    built = build_runtime(MobilitySettings(
        kafka_bootstrap="127.0.0.1:1", credentials_file=tmp_path / "credentials.yaml", grpc_insecure=True))
    yield built
    await built.producer.stop()  # never started: no broker needed


def _late_bus(runtime: MobilityRuntime, route_id: str, vehicle_id: str, delay_s: int) -> None:
    trip = runtime.schedule.trips_by_route[route_id][0]
    status = status_pb2.RouteStatusChanged(route_id=route_id)
    status.vehicles.add(vehicle_id=vehicle_id, route_id=route_id, trip_id=trip.trip_id, start_date="20261130",
                        delay_s=delay_s)
    runtime.latest.put(route_id, status)


def test_every_sample_route_belongs_to_its_feeds_city(schedule: Schedule) -> None:
    assert route_cities(load_cities(), schedule) == {
        "BK-1": "berkane", "BK-2": "berkane", "BK-3": "berkane", "CA-T1": "casablanca"}


def test_a_feed_not_named_after_a_city_belongs_to_the_city_of_its_stops() -> None:
    feed = load_feed(GTFS_DIR / "berkane", feed_id="oriental-electric-2026")
    assert set(route_cities(load_cities(), Schedule.of([feed])).values()) == {"berkane"}


async def test_list_route_delays_keeps_only_the_routes_of_the_city_asked(runtime: MobilityRuntime) -> None:
    _late_bus(runtime, "BK-1", "BK-E1", 420)
    _late_bus(runtime, "CA-T1", "CA-R1", 600)
    servicer = MobilityServicer(runtime)

    async def routes(request: pb.ListRouteDelaysRequest) -> list[tuple[str, list[str]]]:
        response = await servicer.ListRouteDelays(request, None)  # type: ignore[arg-type]
        return [(r.route_id, [t.vehicle_id for t in r.trips]) for r in response.routes]

    assert await routes(pb.ListRouteDelaysRequest(city_id="berkane")) == [("BK-1", ["BK-E1"])]
    assert await routes(pb.ListRouteDelaysRequest(city_id="casablanca")) == [("CA-T1", ["CA-R1"])]
    assert await routes(pb.ListRouteDelaysRequest()) == [("BK-1", ["BK-E1"]), ("CA-T1", ["CA-R1"])]
    assert await routes(pb.ListRouteDelaysRequest(city_id="berkane", route_ids=["CA-T1"])) == []
    assert await routes(pb.ListRouteDelaysRequest(city_id="rabat")) == []


def _count(hour: datetime, route: str = "BK-1", stop: str = "BK-HH1", count: int = 1) -> tuple[str, Any]:
    return f"{route}/{stop}/{hour.isoformat()}", ridership_counted(route, stop, hour, count)


def test_ridership_hours_leave_once_the_topic_no_longer_keeps_them() -> None:
    # A process following mobility.ridership.v1 for months held every hour it ever read.
    hours = RidershipHours()
    start = datetime(2026, 9, 1, tzinfo=UTC)
    for n in range(24 * 90):
        hour = start + timedelta(hours=n)
        hours.put(*_count(hour, count=n), now=hour + timedelta(minutes=30))
    now = start + timedelta(hours=24 * 90 - 1, minutes=30)
    assert len(hours.hours) <= RIDERSHIP_KEPT_DAYS * 24 + 1
    kept = [event.hour_start_time.seconds for event in hours.events(now)]
    assert kept[-1] == int((start + timedelta(hours=24 * 90 - 1)).timestamp())
    assert min(kept) + 3600 > (now - timedelta(days=RIDERSHIP_KEPT_DAYS)).timestamp()
    assert min(kept) <= (now - timedelta(days=RIDERSHIP_KEPT_DAYS)).timestamp()


def test_an_hour_past_the_retention_read_at_start_is_not_served() -> None:
    # A compacted segment merged with newer records outlives the retention: the reader skips it.
    now = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)
    hours = RidershipHours()
    hours.put(*_count(now - timedelta(days=RIDERSHIP_KEPT_DAYS, hours=2)), now=now)
    hours.put(*_count(now.replace(minute=0) - timedelta(days=30)), now=now)
    assert [e.hour_start_time.seconds for e in hours.events(now)] == [
        int((now.replace(minute=0) - timedelta(days=30)).timestamp())]


async def test_get_ridership_serves_today_and_last_month_per_route_and_stop(runtime: MobilityRuntime) -> None:
    now = datetime.now(UTC)
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    month_ago = this_hour - timedelta(days=31)
    for hour, stop, count in ((this_hour, "BK-HH1", 3), (this_hour, "BK-HH2", 4), (month_ago, "BK-HH1", 5),
                              (this_hour - timedelta(days=RIDERSHIP_KEPT_DAYS, hours=2), "BK-HH1", 9)):
        runtime.ridership.put(*_count(hour, stop=stop, count=count), now=now)
    servicer = MobilityServicer(runtime)
    per_route = await servicer.GetRidership(pb.GetRidershipRequest(route_id="BK-1"), None)  # type: ignore[arg-type]
    assert [(c.hour_start_time.seconds, c.stop_id, c.validations_count) for c in per_route.counts] == [
        (int(month_ago.timestamp()), "", 5), (int(this_hour.timestamp()), "", 7)]
    today = pb.GetRidershipRequest(route_id="BK-1", stop_id="BK-HH2")
    today.start_time.seconds = int(this_hour.timestamp())
    answer = await servicer.GetRidership(today, None)  # type: ignore[arg-type]
    assert [(c.stop_id, c.validations_count) for c in answer.counts] == [("BK-HH2", 4)]


async def test_trip_status_without_a_start_date_is_the_run_active_now(runtime: MobilityRuntime) -> None:
    # The route's status can still hold yesterday's run of the trip beside today's.
    now = datetime.now(UTC)
    run = next(r for r in runs_active(runtime.schedule, now, "BK-1") if r.trip.exact_times is not False)
    today = run.key.start_date
    yesterday = (datetime.strptime(today, "%Y%m%d") - timedelta(days=1)).strftime("%Y%m%d")
    servicer = MobilityServicer(runtime)

    async def start_date_of(asked: str) -> str:
        found = await servicer.GetTripStatus(pb.GetTripStatusRequest(trip_id=run.trip.trip_id, start_date=asked),
                                             None)  # type: ignore[arg-type]
        return found.status.start_date

    for order in ((today, yesterday), (yesterday, today)):
        status = status_pb2.RouteStatusChanged(route_id="BK-1")
        for start_date in order:
            update = TripUpdate(run.trip.trip_id, start_date, TripRelationship.SCHEDULED, now, route_id="BK-1",
                                delay_s=60)
            status.trip_updates.append(trip_update_to_wire(update))
        runtime.latest.put("BK-1", status)
        assert await start_date_of("") == today
        assert await start_date_of(yesterday) == yesterday


def test_a_broken_feed_stops_the_api_before_it_serves_naming_file_line_and_field(tmp_path: Path) -> None:
    feed = tmp_path / "berkane"
    shutil.copytree(GTFS_DIR / "berkane", feed)
    trips = feed / "trips.txt"
    trips.write_text(trips.read_text(encoding="utf-8").replace("BK-1,WEEKDAY,1-0400,", "BK-9,WEEKDAY,1-0400,", 1),
                     encoding="utf-8")
    write_credentials(tmp_path / "credentials.yaml", {"dashboard": ["mobility:read"]})
    settings = MobilitySettings(kafka_bootstrap="127.0.0.1:1", credentials_file=tmp_path / "credentials.yaml",
                                grpc_insecure=True, mobility_gtfs_feeds=[feed, GTFS_DIR / "casablanca"])
    with pytest.raises(GtfsError, match=r"berkane/trips.txt:2: route_id: 'BK-9' is not in routes.txt"):
        build_runtime(settings)


async def test_watch_vehicles_streams_only_the_routes_asked(runtime: MobilityRuntime) -> None:
    _late_bus(runtime, "BK-1", "BK-E1", 420)
    _late_bus(runtime, "CA-T1", "CA-R1", 600)
    watch = MobilityServicer(runtime).WatchVehicles(pb.WatchVehiclesRequest(route_ids=["CA-T1"]),
                                                    None)  # type: ignore[arg-type]
    first = await anext(watch)  # the current status first
    _late_bus(runtime, "BK-1", "BK-E2", 60)  # then changes: not this route's
    _late_bus(runtime, "CA-T1", "CA-R2", 30)
    second = await asyncio.wait_for(anext(watch), 5)
    await watch.aclose()
    assert [(first.vehicle.vehicle_id, first.vehicle.route_id), (second.vehicle.vehicle_id, second.vehicle.route_id)] \
        == [("CA-R1", "CA-T1"), ("CA-R2", "CA-T1")]
