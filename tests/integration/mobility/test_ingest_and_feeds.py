"""GTFS-Realtime in over HTTP, through the processor, GTFS-Realtime and alerts out.

A scripted morning (tests/integration/mobility/morning.py) is POSTed feed by feed; the alerts on
``alerts.v1`` must be exactly the pure domain's for the same input, the unknown trip's entity
must sit on the dead-letter topic with its reason, and the published feeds must parse with
gtfs-realtime-bindings.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
from google.transit import gtfs_realtime_pb2 as rt

from madina.bus.producer import HEADER_DLQ_REASON
from madina.bus.topics import ALERTS
from madina_proto.mobility.v1 import events_pb2
from services.mobility.domain.evaluator import MobilityConfig
from services.mobility.topics import TRIP_UPDATES, VEHICLE_POSITIONS
from tests.integration.mobility.api_support import running_mobility_api
from tests.integration.mobility.morning import (
    KIT,
    UNKNOWN_TRIP,
    expected_alerts,
    morning,
    records_of,
    schedule,
    service_day,
)
from tests.support.processor_kit import ProcessorProcess, alert_events, produce, read_all, settled_alerts

PROTOBUF = {"Content-Type": "application/x-protobuf"}


async def _applied(processor: ProcessorProcess, count: int) -> None:
    """Until the processor applied ``count`` records: the next step may be on another topic, and
    across topics a consumer's order is its own."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while processor.applied() < count:
        assert loop.time() < deadline, f"processor applied {processor.applied()} of {count}"
        await asyncio.sleep(0.05)


def _feed(body: bytes) -> rt.FeedMessage:
    feed = rt.FeedMessage.FromString(body)
    assert feed.header.gtfs_realtime_version == "2.0"
    assert feed.header.incrementality == rt.FeedHeader.FULL_DATASET
    assert abs(feed.header.timestamp - datetime.now(UTC).timestamp()) < 60
    return feed


async def test_simulated_morning_raises_exactly_the_domains_alerts_and_publishes_valid_feeds(
    broker: str, tmp_path: Path
) -> None:
    plan = schedule()
    steps = morning(plan, service_day())
    expected = expected_alerts(plan, records_of(plan, steps), MobilityConfig())
    await KIT.create_topics(broker)
    processor = KIT.start(broker, tmp_path)
    applied = 0
    try:
        async with running_mobility_api(broker, tmp_path) as api, httpx.AsyncClient(base_url=api.url) as client:
            for index, step in enumerate(steps):
                if isinstance(step, tuple):
                    # The processor's own clock would send this; the script sends it at its time.
                    records = records_of(plan, [step])
                    await produce(broker, records)
                else:
                    response = await client.post("/v1/gtfs-rt", content=step.SerializeToString(),
                                                 headers=api.headers("operator-feed", **PROTOBUF))
                    assert response.status_code == 202, response.text
                    records = records_of(plan, [step])
                    if any(e.trip_update.trip.trip_id == UNKNOWN_TRIP for e in step.entity):
                        assert response.json()["dead_lettered"] == [f"trip_id: unknown trip {UNKNOWN_TRIP!r}"]
                applied += len(records)
                await _applied(processor, applied)
                if index == len(steps) - 3:  # the route is late and bunched: every feed has entities
                    await asyncio.sleep(1.0)  # the API follows the status topic
                    feeds = {}
                    for name in ("trip-updates", "vehicle-positions", "alerts"):
                        response = await client.get(f"/gtfs-rt/{name}.pb", headers=api.headers("dashboard"))
                        assert response.status_code == 200, response.text
                        assert response.headers["content-type"] == "application/x-protobuf"
                        feeds[name] = _feed(response.content)
                    trips = {e.trip_update.trip.trip_id for e in feeds["trip-updates"].entity}
                    assert {"1-0800", "1-0820", "1-0840"} <= trips
                    assert "BK-E03" in {e.vehicle.vehicle.id for e in feeds["vehicle-positions"].entity}
                    route_alerts = [e.alert for e in feeds["alerts"].entity
                                    if e.alert.effect == rt.Alert.SIGNIFICANT_DELAYS
                                    and e.alert.informed_entity[0].route_id == "BK-1"]
                    assert route_alerts and all(a.active_period[0].start > 0 for a in route_alerts)
                    cancelled = [e.alert for e in feeds["alerts"].entity if e.alert.effect == rt.Alert.NO_SERVICE]
                    assert [a.informed_entity[0].trip.trip_id for a in cancelled] == ["2-0815"]
                    as_json = await client.get("/gtfs-rt/alerts.pb?format=json", headers=api.headers("dashboard"))
                    assert as_json.json()["header"]["gtfs_realtime_version"] == "2.0"
        events = await settled_alerts(broker, sum(expected.values()), timeout_s=30, settle_s=1)
    finally:
        processor.stop()
    published = Counter((e.alert_id, e.revision, int(e.state)) for e in events)
    assert published == expected
    rules = {e.rule_id for e in events}
    assert rules == {"trip-delay", "trip-canceled", "route-delays", "bunching", "data-gap"}
    assert all(e.domain == "mobility" for e in events)
    dead = await read_all(broker, TRIP_UPDATES.dead_letter.name)
    assert len(dead) == 1
    assert dict(dead[0].headers)[HEADER_DLQ_REASON].decode() == f"trip_id: unknown trip {UNKNOWN_TRIP!r}"
    assert events_pb2.TripUpdateReceivedBatch.FromString(dead[0].value).trip_updates[0].trip_id == UNKNOWN_TRIP
    assert len(await alert_events(broker)) == sum(expected.values())
    assert ALERTS.name == "alerts.v1"


async def test_bad_feeds_are_refused_naming_the_problem_and_avl_is_checked_field_by_field(
    broker: str, tmp_path: Path
) -> None:
    plan = schedule()
    feed = morning(plan, service_day())[0]
    assert isinstance(feed, rt.FeedMessage)
    body = feed.SerializeToString()
    async with running_mobility_api(broker, tmp_path) as api, httpx.AsyncClient(base_url=api.url) as client:
        publish = api.headers("operator-feed", **PROTOBUF)
        truncated = await client.post("/v1/gtfs-rt", content=body[:-7], headers=publish)
        assert truncated.status_code == 400
        assert "not a valid GTFS-Realtime FeedMessage" in truncated.json()["detail"]
        no_time = rt.FeedMessage.FromString(body)
        no_time.header.ClearField("timestamp")
        missing = await client.post("/v1/gtfs-rt", content=no_time.SerializeToString(), headers=publish)
        assert missing.status_code == 400 and "header.timestamp" in missing.json()["detail"]
        reader = await client.post("/v1/gtfs-rt", content=body, headers=api.headers("dashboard", **PROTOBUF))
        assert reader.status_code == 403
        fix = {"vehicle_id": "BK-E09", "trip_id": "1-0700", "lat": 34.9, "lon": -2.3,
               "timestamp": "2026-11-26T07:05:00+01:00"}
        bad = await client.post("/v1/vehicle-positions", json={**fix, "lat": 123.0},
                                headers=api.headers("operator-feed"))
        assert bad.status_code == 422 and "lat" in bad.text
        unknown = await client.post("/v1/vehicle-positions", json={**fix, "trip_id": "nope"},
                                    headers=api.headers("operator-feed"))
        assert unknown.status_code == 422 and "trip_id" in unknown.text
        good = await client.post("/v1/vehicle-positions", json=fix, headers=api.headers("operator-feed"))
        assert good.status_code == 202, good.text
    records = await read_all(broker, VEHICLE_POSITIONS.name)
    assert [(r.key, events_pb2.VehiclePositionReportedBatch.FromString(r.value).vehicle_positions[0].vehicle_id)
            for r in records] == [(b"BK-1", "BK-E09")]
