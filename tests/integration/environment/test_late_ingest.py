"""A reading the processor would drop as late is refused at ingest, over HTTP (422) and gRPC (INVALID_ARGUMENT).

"Late" is judged against the station's newest observation as the status feed reports it: the test
publishes a status on the real ``environment.station-status.v1`` topic and waits for the API's
feed to hold it, then sends one reading just inside the allowed lateness (accepted) and one just
outside (refused, naming ``observe_time``). Each transport uses a station no other test touches,
so the compacted status it leaves behind cannot make another test's readings late.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import grpc
import httpx
import pytest
import pytest_asyncio

from madina.bus import EventProducer
from madina.bus.alert_events import timestamp
from madina_proto.environment.v1 import environment_service_pb2 as pb
from madina_proto.environment.v1 import environment_service_pb2_grpc as pb_grpc
from madina_proto.environment.v1 import observations_pb2, station_pb2
from services.environment.api.http import create_http_app
from services.environment.api.main import build_grpc_server
from services.environment.domain.windows import DEFAULT_ALLOWED_LATENESS
from services.environment.topics import STATION_STATUS
from tests.integration.environment.api_fixtures import (
    SETTLE_TIMEOUT_S,
    EnvironmentApi,
    moment_of,
    rfc3339,
    running_environment_api,
    serving_http,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")
HTTP_STATION = "cas-air-sidi-moumen"
GRPC_STATION = "cas-air-ben-msick"
JUST = timedelta(seconds=5)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env_api(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EnvironmentApi]:
    async with running_environment_api(kafka_bootstrap, tmp_path_factory.mktemp("environment-late")) as api:
        yield api


async def station_newest_is(env_api: EnvironmentApi, bootstrap: str, station_id: str, newest: datetime) -> None:
    """Publish a status whose newest observation is ``newest`` and wait until the API's feed holds it."""
    status = station_pb2.StationStatus(
        station=station_pb2.Station(station_id=station_id), last_observe_time=timestamp(newest)
    )
    updates = env_api.runtime.watch(station_id)
    try:
        async with EventProducer(bootstrap, source="environment-processor") as producer:
            await producer.send_and_wait(STATION_STATUS, station_id, station_pb2.StationStatusChanged(status=status))
        async with asyncio.timeout(SETTLE_TIMEOUT_S):
            while (await updates.get()) != status:
                pass
    finally:
        env_api.runtime.unwatch(station_id, updates)
    assert env_api.runtime.last_observe_time(station_id) == newest


async def test_http_refuses_a_reading_later_than_the_allowed_lateness_behind_the_newest_with_422(
    env_api: EnvironmentApi, kafka_bootstrap: str, unique: str
) -> None:
    newest = moment_of(unique)
    await station_newest_is(env_api, kafka_bootstrap, HTTP_STATION, newest)
    headers = {"Authorization": f"Bearer {env_api.publisher_token}"}
    inside = {"station_id": HTTP_STATION, "observe_time": rfc3339(newest - DEFAULT_ALLOWED_LATENESS + JUST),
              "pm25_ugm3": 12.0}
    outside = {"station_id": HTTP_STATION, "observe_time": rfc3339(newest - DEFAULT_ALLOWED_LATENESS - JUST),
               "pm25_ugm3": 12.0}

    async with serving_http(create_http_app(env_api.runtime)) as base_url, httpx.AsyncClient(
        base_url=base_url, timeout=10
    ) as client:
        accepted = await client.post("/v1/air-quality", json=inside, headers=headers)
        refused = await client.post("/v1/air-quality", json={"observations": [inside, outside]}, headers=headers)

    assert accepted.status_code == 202, accepted.text
    assert refused.status_code == 422, refused.text
    detail = refused.json()["detail"]
    assert "observations[1].observe_time: late" in detail
    assert "newest observation" in detail


async def test_grpc_refuses_a_reading_later_than_the_allowed_lateness_behind_the_newest_with_invalid_argument(
    env_api: EnvironmentApi, kafka_bootstrap: str, unique: str
) -> None:
    newest = moment_of(unique)
    await station_newest_is(env_api, kafka_bootstrap, GRPC_STATION, newest)
    server = build_grpc_server(env_api.runtime, port=0)
    await server.start()
    try:
        credentials = grpc.ssl_channel_credentials(root_certificates=env_api.tls_cert)
        async with grpc.aio.secure_channel(f"localhost:{server.port}", credentials) as channel:
            stub = pb_grpc.EnvironmentServiceStub(channel)
            metadata = (("authorization", f"Bearer {env_api.publisher_token}"),)

            def reading(moment: datetime) -> pb.PublishObservationsRequest:
                return pb.PublishObservationsRequest(air_quality=observations_pb2.AirQualityObserved(
                    station_id=GRPC_STATION, observe_time=timestamp(moment), pm25_ugm3=12.0))

            accepted = await stub.PublishObservations(
                iter([reading(newest - DEFAULT_ALLOWED_LATENESS + JUST)]), metadata=metadata, timeout=10)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.PublishObservations(
                    iter([reading(newest - DEFAULT_ALLOWED_LATENESS - JUST)]), metadata=metadata, timeout=10)
    finally:
        await server.stop(grace_s=1.0)

    assert accepted.accepted_count == 1
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "observations[0].observe_time: late" in (refused.value.details() or "")
