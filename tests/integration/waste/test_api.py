"""The waste API (HTTP and gRPC, as ``services.waste.api.main`` serves them) against the session's
embedded broker: strict ingest, container status from the compacted status topic, and collection
planning that publishes the plan. Statuses are put on the status topic the way the processor does."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from madina_proto.waste.v1 import container_pb2, plan_pb2
from madina_proto.waste.v1 import waste_service_pb2 as pb
from services.waste.convert import reading_to_pb
from services.waste.domain.containers import Container, Stream, load_containers
from services.waste.domain.readings import Reading
from services.waste.topics import COLLECTION_PLANS, CONTAINER_LEVELS, CONTAINER_STATUS
from tests.integration.waste.conftest import Api, client, served, status_record
from tests.support.processor_kit import produce, read_all


def _containers(city: str = "casablanca", stream: Stream = Stream.HOUSEHOLD) -> list[Container]:
    return [c for c in load_containers() if c.city == city and c.stream is stream]


def _reading_json(container_id: str, at: datetime, fill: float) -> dict[str, object]:
    return {"container_id": container_id, "observe_time": at.isoformat(), "fill_ratio": fill, "temperature_c": 21.0}


async def _levels_of(
    bootstrap: str, container_id: str, at: datetime
) -> list[container_pb2.ContainerLevelObservedBatch]:
    batches = [container_pb2.ContainerLevelObservedBatch.FromString(r.value)
               for r in await read_all(bootstrap, CONTAINER_LEVELS.name) if r.key == container_id.encode()]
    return [b for b in batches if any(m.observe_time.ToDatetime(tzinfo=UTC) == at for m in b.readings)]


async def test_http_ingest_publishes_one_batch_per_container_and_a_bad_field_is_a_422_naming_it(
    api: Api, kafka_bootstrap: str
) -> None:
    first, second = _containers()[:2]
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=17)
    async with client(api) as http:
        bad = await http.post("/v1/readings", headers=api.headers("sensor"), json={"readings": [
            _reading_json(first.id, at, 0.4), _reading_json(second.id, at, 1.5)]})
        unknown = await http.post("/v1/readings", headers=api.headers("sensor"),
                                  json=_reading_json("cas-atlantis-h001", at, 0.5))
        future = await http.post("/v1/readings", headers=api.headers("sensor"),
                                 json=_reading_json(first.id, at + timedelta(days=1), 0.5))
        forbidden = await http.post("/v1/readings", headers=api.headers("dashboard"),
                                    json=_reading_json(first.id, at, 0.5))
        ok = await http.post("/v1/readings", headers=api.headers("sensor"), json={"readings": [
            _reading_json(first.id, at, 0.4), _reading_json(second.id, at, 0.6),
            _reading_json(first.id, at + timedelta(seconds=1), 0.41)]})

    assert bad.status_code == 422 and "readings[1].fill_ratio" in bad.json()["detail"], bad.text
    assert unknown.status_code == 422 and "container_id: unknown container" in unknown.json()["detail"]
    assert future.status_code == 422 and "observe_time" in future.json()["detail"]
    assert forbidden.status_code == 403
    assert ok.status_code == 202 and ok.json() == {"accepted": 3}
    first_batches = await _levels_of(kafka_bootstrap, first.id, at)
    assert [len(b.readings) for b in first_batches] == [2]  # one record per container; nothing of the 422s
    assert [len(b.readings) for b in await _levels_of(kafka_bootstrap, second.id, at)] == [1]


async def test_grpc_publish_readings_refuses_a_bad_reading_with_invalid_argument_and_publishes_none(
    api: Api, kafka_bootstrap: str
) -> None:
    container = _containers()[2]
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=23)
    good = reading_to_pb(Reading(container.id, at, 0.3))
    bad = reading_to_pb(Reading(container.id, at + timedelta(seconds=1), 0.3, tilt_deg=400.0))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await api.stub.PublishReadings(pb.PublishReadingsRequest(readings=[good, bad]), metadata=api.metadata("sensor"))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "readings[1].tilt_deg" in (refused.value.details() or "")
    assert await _levels_of(kafka_bootstrap, container.id, at) == []

    accepted = await api.stub.PublishReadings(
        pb.PublishReadingsRequest(readings=[good]), metadata=api.metadata("sensor"))
    assert accepted.accepted_count == 1
    assert len(await _levels_of(kafka_bootstrap, container.id, at)) == 1


async def test_status_from_the_status_topic_is_served_over_rest_and_grpc_with_fill_rate_and_prediction(
    api: Api, kafka_bootstrap: str
) -> None:
    container = _containers()[3]
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    await produce(kafka_bootstrap, [(CONTAINER_STATUS, container.id, status_record(container, 0.5, 0.05, at))])
    await served(api, [container.id], 0.5)
    async with client(api) as http:
        one = await http.get(f"/v1/containers/{container.id}", headers=api.headers("dashboard"))
        listed = await http.get("/v1/containers", params={"city": "casablanca", "stream": "household"},
                                headers=api.headers("dashboard"))
        missing = await http.get("/v1/containers/nope", headers=api.headers("dashboard"))
    assert one.status_code == 200
    body = one.json()
    assert body["fill_ratio"] == 0.5 and body["fill_ratio_per_hour"] == 0.05
    assert datetime.fromisoformat(body["predicted_full_time"]) == at + timedelta(hours=6)
    assert container.id in {c["container"]["container_id"] for c in listed.json()["containers"]}
    assert missing.status_code == 404
    reader = api.metadata("dashboard")
    got = await api.stub.GetContainer(pb.GetContainerRequest(container_id=container.id), metadata=reader)
    assert got.status.fill_ratio_per_hour == 0.05
    assert got.status.predicted_full_time.ToDatetime(tzinfo=UTC) == at + timedelta(hours=6)
    listed_grpc = await api.stub.ListContainers(pb.ListContainersRequest(city_id="casablanca"), metadata=reader)
    assert container.id in {c.container_id for c in listed_grpc.containers}


async def test_plan_collection_routes_the_containers_due_before_the_next_round_and_publishes_the_plan(
    api: Api, kafka_bootstrap: str
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    household = [c for c in _containers() if c.district in ("ain-sebaa", "hay-mohammadi", "roches-noires")][:8]
    assert len(household) >= 4
    due, not_due = household[:-2], household[-2:]
    glass = _containers(stream=Stream.GLASS)[:3]  # not due (and not what the capacity test left)
    await produce(kafka_bootstrap, [
        *((CONTAINER_STATUS, c.id, status_record(c, 0.7, 0.05, now)) for c in due),  # 0.7 + 0.05 x 12 h > 0.8
        *((CONTAINER_STATUS, c.id, status_record(c, 0.1, 0.01, now)) for c in not_due),
        *((CONTAINER_STATUS, c.id, status_record(c, 0.05, 0.0, now)) for c in glass),
    ])
    await served(api, [c.id for c in due], 0.7)
    horizon = Duration()
    horizon.FromTimedelta(timedelta(hours=12))
    request = pb.PlanCollectionRequest(depot_id="cas-depot-ain-sebaa", horizon=horizon, truck_ids=["cas-ain-sebaa-h1"])
    planned = (await api.stub.PlanCollection(request, metadata=api.metadata("operator"))).plan

    routed = {cid for route in planned.routes for cid in route.container_ids}
    assert {c.id for c in due} <= routed and not routed & {c.id for c in not_due}
    assert planned.depot_id == "cas-depot-ain-sebaa" and planned.total_distance_m > 0
    plans = await read_all(kafka_bootstrap, COLLECTION_PLANS.name)
    published = [plan_pb2.CollectionPlanned.FromString(r.value) for r in plans]
    assert planned.plan_id in {p.plan_id for p in published}

    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await api.stub.PlanCollection(request, metadata=api.metadata("dashboard"))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED

    async with client(api) as http:
        rest = await http.post("/v1/collection-plans", headers=api.headers("operator"),
                               json={"depot_id": "cas-depot-ain-sebaa", "horizon_h": 12})
        unknown = await http.post("/v1/collection-plans", headers=api.headers("operator"),
                                  json={"depot_id": "nowhere", "horizon_h": 12})
    assert rest.status_code == 200, rest.text
    assert {c.id for c in due} <= {cid for route in rest.json()["routes"] for cid in route["container_ids"]}
    assert unknown.status_code == 404 and "depot_id" in unknown.json()["detail"]


async def test_a_load_the_trucks_cannot_carry_is_failed_precondition_and_a_422_naming_the_shortfall(
    api: Api, kafka_bootstrap: str
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    glass = [c for c in _containers(stream=Stream.GLASS)][:3]
    await produce(kafka_bootstrap, [(CONTAINER_STATUS, c.id, status_record(c, 0.9, 0.02, now)) for c in glass])
    await served(api, [c.id for c in glass], 0.9)
    horizon = Duration()
    horizon.FromTimedelta(timedelta(hours=12))
    household_only = pb.PlanCollectionRequest(depot_id="cas-depot-ain-sebaa", horizon=horizon,
                                              truck_ids=["cas-ain-sebaa-h1"])
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await api.stub.PlanCollection(household_only, metadata=api.metadata("operator"))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "no truck serves glass" in (refused.value.details() or "")
    async with client(api) as http:
        rest = await http.post("/v1/collection-plans", headers=api.headers("operator"), json={
            "depot_id": "cas-depot-ain-sebaa", "horizon_h": 12, "truck_ids": ["cas-ain-sebaa-h1"]})
    assert rest.status_code == 422 and "no truck serves glass" in rest.json()["detail"]

    # More household waste due than the one truck asked for carries: the error says by how much.
    household = _containers(city="berkane")[:52]  # 52 x 1,045 L > the truck's 48,000 L
    await produce(kafka_bootstrap, [(CONTAINER_STATUS, c.id, status_record(c, 0.95, 0.02, now)) for c in household])
    await served(api, [c.id for c in household], 0.95)
    one_truck = pb.PlanCollectionRequest(depot_id="brk-depot-zi", horizon=horizon, truck_ids=["brk-zi-h1"])
    with pytest.raises(grpc.aio.AioRpcError) as overloaded:
        await api.stub.PlanCollection(one_truck, metadata=api.metadata("operator"))
    assert overloaded.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = overloaded.value.details() or ""
    assert re.search(r"household needs \d+ L but its trucks carry 48000 L \(\d+ L over\)", details), details
    async with client(api) as http:
        rest = await http.post("/v1/collection-plans", headers=api.headers("operator"), json={
            "depot_id": "brk-depot-zi", "horizon_h": 12, "truck_ids": ["brk-zi-h1"]})
    assert rest.status_code == 422 and "trucks carry 48000 L" in rest.json()["detail"]
