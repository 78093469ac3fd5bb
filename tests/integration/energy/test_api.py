"""The energy API's boundaries on the session broker: a bad field is a 422 (HTTP) or
INVALID_ARGUMENT (gRPC) naming it, and nothing of a rejected request is published."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from madina.bus.alert_events import timestamp
from madina_proto.energy.v1 import control_pb2, telemetry_pb2
from madina_proto.energy.v1 import energy_service_pb2 as pb
from madina_proto.energy.v1 import energy_service_pb2_grpc as pb_grpc
from services.energy.api.main import build_grpc_server
from services.energy.topics import GENERATION, LIGHTING_COMMANDS, STREETLIGHT_TELEMETRY
from tests.integration.energy.harness import OBEYS, EnergyApi, running_energy_api
from tests.support.processor_kit import read_all

pytestmark = pytest.mark.asyncio(loop_scope="module")
NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
LAMP = "cas-sl-0001"
SITE = "cas-pv-maarif-school"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EnergyApi]:
    async with running_energy_api(kafka_bootstrap, Path(tmp_path_factory.mktemp("energy-api")), follow=False) as api:
        yield api


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stub(api: EnergyApi) -> AsyncIterator[pb_grpc.EnergyServiceStub]:
    server = build_grpc_server(api.runtime, port=0)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield pb_grpc.EnergyServiceStub(channel)
    finally:
        await server.stop(grace_s=1.0)


def lamp(**changes: object) -> dict[str, object]:
    return {"lamp_id": LAMP, "observe_time": NOW.isoformat(), "on": True, "dimming_pct": 100, "power_w": 60.0,
            **changes}


async def _count(bootstrap: str, topic: str) -> int:
    return len(await read_all(bootstrap, topic))


@pytest.mark.parametrize(("report", "field"), [
    (lamp(power_w=-3), "reports[1].power_w"),
    (lamp(lamp_id="cas-sl-nope"), "reports[1].lamp_id"),
    (lamp(dimming_pct=140), "reports[1].dimming_pct"),
    (lamp(on="yes"), "reports[1].on"),
    (lamp(observe_time="2026-11-29T10:00:00"), "reports[1].observe_time"),
    (lamp(colour="red"), "reports[1].colour"),
])
async def test_http_telemetry_with_a_bad_field_is_422_naming_it_and_nothing_is_published(
    api: EnergyApi, kafka_bootstrap: str, report: dict[str, object], field: str
) -> None:
    before = await _count(kafka_bootstrap, STREETLIGHT_TELEMETRY.name)
    response = await api.client.post("/v1/streetlight-telemetry", json={"reports": [lamp(), report]},
                                     headers=api.headers("gateway"))
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"]
    assert await _count(kafka_bootstrap, STREETLIGHT_TELEMETRY.name) == before


async def test_http_telemetry_and_generation_accepted_are_one_record_per_circuit_and_site(
    api: EnergyApi, kafka_bootstrap: str
) -> None:
    before = await _count(kafka_bootstrap, STREETLIGHT_TELEMETRY.name), await _count(kafka_bootstrap, GENERATION.name)
    two = {"reports": [lamp(), lamp(lamp_id="cas-sl-0002")]}  # one circuit
    response = await api.client.post("/v1/streetlight-telemetry", json=two, headers=api.headers("gateway"))
    assert response.json() == {"accepted": 2}
    response = await api.client.post("/v1/generation", json={"site_id": SITE, "observe_time": NOW.isoformat(),
                                                              "power_kw": 12.5}, headers=api.headers("gateway"))
    assert response.json() == {"accepted": 1}
    after = await _count(kafka_bootstrap, STREETLIGHT_TELEMETRY.name), await _count(kafka_bootstrap, GENERATION.name)
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)
    bad = await api.client.post("/v1/generation", json={"site_id": SITE, "observe_time": NOW.isoformat(),
                                                         "power_kw": 1e6}, headers=api.headers("gateway"))
    assert bad.status_code == 422 and "power_kw" in bad.json()["detail"]


async def test_http_schedule_with_a_bad_trigger_is_422_naming_it(api: EnergyApi) -> None:
    body = {"schedule_id": "s", "city_id": "casablanca", "circuit_ids": [OBEYS], "reason": "test",
            "steps": [{"trigger": "teatime", "dimming_pct": 50}],
            "start_time": NOW.isoformat(), "end_time": (NOW + timedelta(days=1)).isoformat()}
    response = await api.client.post("/v1/dimming-schedules", json=body, headers=api.headers("night-operator"))
    assert response.status_code == 422 and "steps[0].trigger" in response.json()["detail"]


async def test_grpc_telemetry_with_a_bad_field_is_invalid_argument_naming_it_and_nothing_is_published(
    stub: pb_grpc.EnergyServiceStub, kafka_bootstrap: str, api: EnergyApi
) -> None:
    good = telemetry_pb2.StreetlightTelemetry(lamp_id=LAMP, observe_time=timestamp(NOW), on=True, dimming_pct=100,
                                              power_w=60)
    bad = telemetry_pb2.StreetlightTelemetry(lamp_id=LAMP, observe_time=timestamp(NOW), on=True, dimming_pct=100,
                                             power_w=float("nan"))
    before = await _count(kafka_bootstrap, STREETLIGHT_TELEMETRY.name)
    metadata = (("authorization", f"Bearer {api.tokens['gateway']}"),)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.PublishTelemetry(iter([pb.PublishTelemetryRequest(streetlight=good),
                                          pb.PublishTelemetryRequest(streetlight=bad)]), metadata=metadata)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "reports[1].power_w" in (error.value.details() or "")
    assert await _count(kafka_bootstrap, STREETLIGHT_TELEMETRY.name) == before
    accepted = await stub.PublishTelemetry(iter([pb.PublishTelemetryRequest(streetlight=good)]), metadata=metadata)
    assert accepted.accepted_count == 1


async def test_grpc_set_dimming_schedule_needs_control_and_records_the_caller_as_issuer(
    stub: pb_grpc.EnergyServiceStub, kafka_bootstrap: str, api: EnergyApi
) -> None:
    request = pb.SetDimmingScheduleRequest(
        schedule=control_pb2.DimmingSchedule(schedule_id="grpc-night", city_id="casablanca", circuit_ids=[OBEYS],
                                             steps=[control_pb2.ScheduleStep(trigger="23:30", dimming_pct=30)],
                                             reason="grid peak"),
        start_time=timestamp(NOW), end_time=timestamp(NOW + timedelta(days=1)))
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.SetDimmingSchedule(request, metadata=(("authorization", f"Bearer {api.tokens['gateway']}"),))
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    response = await stub.SetDimmingSchedule(
        request, metadata=(("authorization", f"Bearer {api.tokens['night-operator']}"),))
    assert [(c.circuit_id, c.issuer, c.reason, c.dimming_pct) for c in response.commands] == [
        (OBEYS, "night-operator", "grid peak", 30.0)]
    published = [control_pb2.LightingCommand.FromString(r.value)
                 for r in await read_all(kafka_bootstrap, LIGHTING_COMMANDS.name)]
    assert response.commands[0] in published
