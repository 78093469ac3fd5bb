"""Collection plans on a broker of their own: every plan goes to the 90-day history
(waste.collection-plans.v1) and to the compacted waste.latest-collection-plans.v1, and the
operations map, following the waste domain's own declared layers, shows each depot's newest round
from the compacted topic, never the history, and the containers by their fill."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka.admin import AdminClient, ConfigResource
from google.protobuf.duration_pb2 import Duration

from madina_proto.waste.v1 import plan_pb2
from madina_proto.waste.v1 import waste_service_pb2 as pb
from services.operations.api.main import OperationsService
from services.operations.api.maplayers import discovered_layers
from services.waste.domain.containers import Stream, load_containers
from services.waste.plugin import DOMAIN
from services.waste.topics import COLLECTION_PLANS, CONTAINER_STATUS, LATEST_COLLECTION_PLANS
from tests.integration.waste.conftest import Api, served, status_record
from tests.support.operations import eventually, make_settings
from tests.support.processor_kit import produce, read_all

DEPOT, TRUCK = "cas-depot-ain-sebaa", "cas-ain-sebaa-h1"


@pytest.fixture
def kafka_bootstrap(broker: str) -> str:
    """This test's own broker: it reads the plan topics from the start, and the planner routes every
    container whose status the API serves, so other tests' statuses would change the plans."""
    return broker


async def _plan(api: Api) -> plan_pb2.CollectionPlanned:
    horizon = Duration()
    horizon.FromTimedelta(timedelta(hours=12))
    request = pb.PlanCollectionRequest(depot_id=DEPOT, horizon=horizon, truck_ids=[TRUCK])
    return (await api.stub.PlanCollection(request, metadata=api.metadata("operator"))).plan


def _routed(plan: plan_pb2.CollectionPlanned) -> set[str]:
    return {container_id for route in plan.routes for container_id in route.container_ids}


async def test_each_plan_goes_to_the_history_and_the_latest_plan_topic_and_the_map_shows_only_the_newest(
    api: Api, kafka_bootstrap: str, tmp_path: Path
) -> None:
    household = [c for c in load_containers() if c.city == "casablanca" and c.stream is Stream.HOUSEHOLD
                 and c.district in ("ain-sebaa", "hay-mohammadi", "roches-noires")][:6]
    early, later = household[:3], household[3:]
    now = datetime.now(UTC).replace(microsecond=0)
    # First round: `early` fill up (0.7 + 0.05 x 12 h > 0.8), `later` barely.
    await produce(kafka_bootstrap, [*((CONTAINER_STATUS, c.id, status_record(c, 0.7, 0.05, now)) for c in early),
                                    *((CONTAINER_STATUS, c.id, status_record(c, 0.1, 0.01, now)) for c in later)])
    await served(api, [c.id for c in early], 0.7)
    await served(api, [c.id for c in later], 0.1)
    first = await _plan(api)
    # Next round: `early` were emptied, `later` fill up.
    await produce(kafka_bootstrap, [*((CONTAINER_STATUS, c.id, status_record(c, 0.05, 0.001, now)) for c in early),
                                    *((CONTAINER_STATUS, c.id, status_record(c, 0.75, 0.05, now)) for c in later)])
    await served(api, [c.id for c in early], 0.05)  # each key its own partition: wait for both sets
    await served(api, [c.id for c in later], 0.75)
    second = await _plan(api)
    assert _routed(first) == {c.id for c in early} and _routed(second) == {c.id for c in later}

    history = [plan_pb2.CollectionPlanned.FromString(r.value) for r in await read_all(kafka_bootstrap,
                                                                                        COLLECTION_PLANS.name)]
    assert [p.plan_id for p in history] == [first.plan_id, second.plan_id]
    latest = [plan_pb2.CollectionPlanned.FromString(r.value) for r in await read_all(kafka_bootstrap,
                                                                                       LATEST_COLLECTION_PLANS.name)]
    assert latest[-1] == second and {r.depot_id for r in latest} == {DEPOT}
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    configs = {}
    for topic in (COLLECTION_PLANS, LATEST_COLLECTION_PLANS):
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic.name)
        configs[topic.name] = admin.describe_configs([resource])[resource].result(10)["cleanup.policy"].value
    assert configs == {COLLECTION_PLANS.name: "delete", LATEST_COLLECTION_PLANS.name: "compact"}

    layers = discovered_layers([DOMAIN])
    assert COLLECTION_PLANS.name not in {layer.layer.topic.name for layer in layers}
    settings, tokens, _ = make_settings(tmp_path, kafka_bootstrap, f"sqlite:///{tmp_path / 'operations.db'}")
    service = OperationsService(settings, map_layers=layers)
    try:
        await service.start()
        await service.wait_ready()

        async def features(kind: str, wanted: int) -> list[dict[str, Any]]:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.http_port}",
                                         headers={"Authorization": f"Bearer {tokens['viewer']}"}) as http:
                response = await http.get("/api/v1/map/features", params={"city": "casablanca"})
                response.raise_for_status()
            shown = [f for f in response.json()["features"] if f["kind"] == kind]
            return shown if len(shown) >= wanted else []

        shown = await eventually(lambda: features("collection-route", 1))
        assert [(f["feature_id"], f["details"]["plan"]) for f in shown] == [
            (f"waste/collection-route/{TRUCK}", second.plan_id)]
        assert len(shown[0]["points"]) == len(later) + 2  # depot, the stops, depot
        # The Containers layer beside it, each container at its newest fill: emptied ones OK, the
        # 75 % ones on watch (from 70 %).
        expected = {**{f"waste/container/{c.id}": "ok" for c in early},
                    **{f"waste/container/{c.id}": "watch" for c in later}}
        seen: list[dict[str, str]] = []

        async def container_levels() -> bool:
            seen.append({f["feature_id"]: f["level"] for f in await features("container", 0)})
            return seen[-1] == expected

        try:
            await eventually(container_levels)
        except AssertionError:
            raise AssertionError(f"container levels shown: {seen[-1]}, wanted {expected}") from None
    finally:
        await service.stop()
