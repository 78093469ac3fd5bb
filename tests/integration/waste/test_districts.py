"""Per-district waste KPIs: the district processor (a real ``madina service`` process) folds the
containers' summaries into kpis.v1, and the API serves them over REST and gRPC."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from madina_proto.waste.v1 import waste_service_pb2 as pb
from services.waste.convert import summary_to_pb
from services.waste.domain.containers import load_containers
from services.waste.domain.districts import ContainerSummary
from services.waste.topics import ALL, CONTAINER_SUMMARIES
from tests.integration.waste.conftest import Api, client
from tests.support.processor_kit import ProcessorKit, produce

KIT = ProcessorKit("waste-district-processor", "MADINA_WASTE_DISTRICT_PROCESSOR_PORT", ALL)


@pytest.fixture
def kafka_bootstrap(broker: str) -> str:
    """This test's own broker, for the API fixture too: the district processor reads its topic from
    the start, and other tests' container summaries on the session broker would count in the
    district's figures (seen: a mean fill of 0.1 where this test's three containers give 0.5)."""
    return broker


def _district_with_three_containers() -> tuple[str, str, list[str]]:
    containers = [c for c in load_containers() if c.city == "berkane"]
    district = containers[0].district
    return "berkane", district, [c.id for c in containers if c.district == district][:3]


async def _served(api: Api, district: str, wanted: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for _ in range(300):  # bounded: a faust worker on a loaded machine
        async with client(api) as http:
            response = await http.get("/v1/districts", params={"city": "berkane"}, headers=api.headers("dashboard"))
        found = [d for d in response.json()["districts"] if d["district"]["district_id"] == district]
        body = found[0] if found else {}
        if all(body.get(k) == v for k, v in wanted.items()):
            return body
        await asyncio.sleep(0.1)
    return body


async def test_district_processor_publishes_fill_collection_need_and_fire_risk_served_over_rest_and_grpc(
    api: Api, kafka_bootstrap: str, tmp_path: Path
) -> None:
    city, district, (full, burning, low) = _district_with_three_containers()
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)

    def summary(container_id: str, fill: float, needs: bool, fire: bool, minutes: int = 0) -> Any:
        return summary_to_pb(ContainerSummary(container_id, city, district, fill, needs, fire,
                                              at + timedelta(minutes=minutes)))

    await KIT.create_topics(kafka_bootstrap)
    worker = KIT.start(kafka_bootstrap, tmp_path / "district", debug_trace=False)
    try:
        key = f"{city}/{district}"
        await produce(kafka_bootstrap, [(CONTAINER_SUMMARIES, key, summary(full, 0.9, True, False)),
                                        (CONTAINER_SUMMARIES, key, summary(burning, 0.5, False, True)),
                                        (CONTAINER_SUMMARIES, key, summary(low, 0.1, False, False))])
        # Each figure is its own KPI record: wait for all of them, not for the first to arrive.
        first = await _served(api, district, {"fire_risk_count": 1, "mean_fill_ratio": pytest.approx(0.5),
                                              "full_count": 1, "needing_collection_count": 1})
        # The fire clears and the low container is predicted full before the next round.
        await produce(kafka_bootstrap, [(CONTAINER_SUMMARIES, key, summary(burning, 0.5, False, False, 5)),
                                        (CONTAINER_SUMMARIES, key, summary(low, 0.2, True, False, 5))])
        second = await _served(api, district, {"fire_risk_count": 0, "needing_collection_count": 2,
                                               "mean_fill_ratio": pytest.approx(1.6 / 3), "full_count": 1})
        reply = await api.stub.ListDistrictSummaries(pb.ListDistrictSummariesRequest(city_id=city),
                                                     metadata=api.metadata("dashboard"))
    finally:
        worker.stop()

    assert first["mean_fill_ratio"] == pytest.approx(0.5)
    assert (first["full_count"], first["needing_collection_count"], first["fire_risk_count"]) == (1, 1, 1)
    assert second["mean_fill_ratio"] == pytest.approx(1.6 / 3)
    assert (second["full_count"], second["needing_collection_count"], second["fire_risk_count"]) == (1, 2, 0)
    [grpc_district] = [d for d in reply.districts if d.district.district_id == district]
    assert (grpc_district.needing_collection_count, grpc_district.fire_risk_count) == (2, 0)
    assert grpc_district.observe_time.ToDatetime(tzinfo=UTC) == at + timedelta(minutes=5)
