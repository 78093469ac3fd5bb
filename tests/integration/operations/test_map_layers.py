"""The operations map serves what a domain's map layer makes of its topic, over the real bus.

A test layer (a compacted topic of KpiObserved, one container per key) stands in for a domain's:
operations takes its layers as a parameter, so the test needs no installed plug-in. Records are
produced on the broker over TCP, before start-up (the backlog) and after (live), among them a
record that does not decode and one the layer's function fails on; ``/api/v1/map/features``
shows the newest good features per key and nothing else.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from madina.bus import EventProducer
from madina.bus.topics import TopicSpec
from madina.maplayers import Level, MapFeature, MapLayer
from madina_proto.common.v1 import common_pb2
from madina_proto.kpis.v1 import kpis_pb2
from services.operations.api.main import OperationsService
from services.operations.api.maplayers import DomainLayer
from tests.support.operations import eventually, make_settings
from tests.support.processes import BrokerProcess

TOPIC = TopicSpec(
    name=f"test.map-containers-{uuid.uuid4().hex[:8]}.v1",
    message_type=kpis_pb2.KpiObserved,
    key="<entity_id>",
    description="Test containers for the operations map",
    cleanup_policy="compact",
    retention_ms=-1,
)
LAYER = DomainLayer("waste", MapLayer(name="Test containers", topic=TOPIC,
                                      features="tests.integration.operations.test_map_layers:container_features"))


def container_features(kpi: kpis_pb2.KpiObserved) -> tuple[MapFeature, ...]:
    """The layer's pure function: a container at its fill level; a negative fill means removed."""
    if kpi.entity.entity_id == "broken":
        raise ValueError("a domain bug")
    if kpi.value < 0:
        return ()
    return (MapFeature(
        feature_id=f"waste/container/{kpi.entity.entity_id}", domain="waste", kind="container",
        label=f"Container {kpi.entity.entity_id}", city_id=kpi.district.city_id, points=((31.95, 35.91),),
        level=Level.WARNING if kpi.value >= 80 else Level.OK, status=f"{kpi.value:.0f} % full",
    ),)


def fill(container: str, percent: float, city: str = "amman") -> kpis_pb2.KpiObserved:
    return kpis_pb2.KpiObserved(
        domain="waste", kpi_id="fill", value=percent, unit="%",
        entity=common_pb2.EntityRef(domain="waste", kind="container", entity_id=container),
        district=common_pb2.District(city_id=city, district_id="d1"),
    )


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    process = BrokerProcess.start(memory=True, default_partitions=2)
    try:
        yield process.bootstrap
    finally:
        process.stop()


@pytest.fixture
async def producer(broker: str) -> AsyncIterator[EventProducer]:
    async with EventProducer(broker, source="test") as events:
        yield events


async def features(service: OperationsService, tokens: dict[str, str], city: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.http_port}",
                                 headers={"Authorization": f"Bearer {tokens['viewer']}"}) as client:
        response = await client.get("/api/v1/map/features", params={"city": city})
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]


def levels(body: dict[str, Any]) -> dict[str, str]:
    """Feature id -> level; each id at most once (a newer record replaces, never adds)."""
    ids = [feature["feature_id"] for feature in body["features"]]
    assert len(ids) == len(set(ids)), ids
    return {feature["feature_id"]: feature["level"] for feature in body["features"]}


async def test_the_map_shows_the_newest_good_features_per_key_and_skips_poison(
    broker: str, producer: EventProducer, tmp_path: Path,
) -> None:
    raw = AIOKafkaProducer(bootstrap_servers=broker, acks="all")
    await raw.start()
    settings, tokens, _ = make_settings(tmp_path, broker, f"sqlite:///{tmp_path / 'operations.db'}")
    service = OperationsService(settings, map_layers=[LAYER])
    try:
        await service.start()
        # The backlog: a good record, a record that does not decode and one the layer fails on.
        await producer.send_and_wait(TOPIC, "c1", fill("c1", 40))
        await raw.send_and_wait(TOPIC.name, key=b"c2", value=b"\xff\xff not a protobuf")
        await producer.send_and_wait(TOPIC, "broken", fill("broken", 50))
        await producer.send_and_wait(TOPIC, "z1", fill("z1", 90, city="zarqa"))
        await service.wait_ready()
        assert service.runtime is not None

        body = await eventually(lambda: _when(features(service, tokens, "amman"), "waste/container/c1"))
        assert body["layers"] == [{"name": "Test containers", "domain": "waste", "kinds": ["container"]}]
        assert levels(body) == {"waste/container/c1": "ok"}
        assert body["features"][0]["status"] == "40 % full"

        # Live: c1 fills up, c3 appears, then a poisoned c1 record leaves c1's last good features.
        await producer.send_and_wait(TOPIC, "c1", fill("c1", 85))
        await producer.send_and_wait(TOPIC, "c3", fill("c3", 10))
        await raw.send_and_wait(TOPIC.name, key=b"c1", value=b"\x00garbage")
        body = await eventually(lambda: _when(features(service, tokens, "amman"), "waste/container/c3"))
        assert levels(body) == {"waste/container/c1": "warning", "waste/container/c3": "ok"}
        assert service.runtime.map.skipped == 1  # the layer's failure; undecodable records never reach it

        # A record that stands for nothing removes what its key showed; other cities stay apart.
        await producer.send_and_wait(TOPIC, "c3", fill("c3", -1))
        body = await eventually(lambda: _unless(features(service, tokens, "amman"), "waste/container/c3"))
        assert levels(body) == {"waste/container/c1": "warning"}
        assert levels(await features(service, tokens, "zarqa")) == {"waste/container/z1": "warning"}
    finally:
        await raw.stop()
        await service.stop()


async def _when(reply: Any, feature_id: str) -> dict[str, Any] | None:
    body: dict[str, Any] = await reply
    return body if feature_id in levels(body) else None


async def _unless(reply: Any, feature_id: str) -> dict[str, Any] | None:
    body: dict[str, Any] = await reply
    return body if feature_id not in levels(body) else None
