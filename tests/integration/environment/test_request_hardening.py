"""No request to the environment API gives a 5xx or UNKNOWN, or an error echoing unbounded input:
deep JSON, times no datetime holds, non-finite numbers, undecodable bytes, oversized bodies
without Content-Length, over real HTTP (uvicorn) and gRPC (TLS) servers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import httpx
import pytest
import pytest_asyncio
from google.protobuf.timestamp_pb2 import Timestamp

from madina_proto.environment.v1 import environment_service_pb2 as pb
from madina_proto.environment.v1 import environment_service_pb2_grpc as pb_grpc
from madina_proto.environment.v1 import observations_pb2
from services.environment.api.grpc import SERVICE_NAME
from services.environment.api.http import create_http_app
from services.environment.api.main import build_grpc_server
from tests.integration.environment.api_fixtures import EnvironmentApi, running_environment_api, serving_http

pytestmark = pytest.mark.asyncio(loop_scope="module")
MAX_BODY_BYTES = 2048
AIR_STATION = "cas-air-anfa"
FAR_TIMES = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]
SHORT = 300
RPC_TIMEOUT_S = 10.0


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env_api(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EnvironmentApi]:
    async with running_environment_api(
        kafka_bootstrap, tmp_path_factory.mktemp("environment-hardening"), max_body_bytes=MAX_BODY_BYTES
    ) as api:
        yield api


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(env_api: EnvironmentApi) -> AsyncIterator[httpx.AsyncClient]:
    async with serving_http(create_http_app(env_api.runtime)) as base_url, httpx.AsyncClient(
        base_url=base_url, timeout=10, headers={"Authorization": f"Bearer {env_api.full_token}"}
    ) as http:
        yield http


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def channel(env_api: EnvironmentApi) -> AsyncIterator[grpc.aio.Channel]:
    server = build_grpc_server(env_api.runtime, port=0)
    await server.start()
    credentials = grpc.ssl_channel_credentials(root_certificates=env_api.tls_cert)
    try:
        async with grpc.aio.secure_channel(f"localhost:{server.port}", credentials) as secure:
            yield secure
    finally:
        await server.stop(grace_s=1.0)


def _recent() -> str:
    return (datetime.now(UTC) - timedelta(minutes=1)).isoformat()


# -- HTTP ---------------------------------------------------------------------------------------


async def test_json_nested_a_thousand_levels_is_a_400(client: httpx.AsyncClient) -> None:
    reply = await client.post("/v1/air-quality", content=b"[" * 1000 + b"]" * 1000)
    assert reply.status_code == 400, reply.text
    assert "nested" in reply.json()["detail"]


async def test_brackets_inside_strings_do_not_count_as_nesting(client: httpx.AsyncClient) -> None:
    body = '{"station_id": "' + "[" * 1000 + '", "observe_time": "' + _recent() + '", "pm25_ugm3": 1.0}'
    reply = await client.post("/v1/air-quality", content=body)
    assert reply.status_code == 422, reply.text  # the station id is too long, not a parse failure
    assert "station_id" in reply.json()["detail"]


@pytest.mark.parametrize("moment", FAR_TIMES)
async def test_far_past_or_future_observe_time_is_a_422_naming_it(client: httpx.AsyncClient, moment: str) -> None:
    for body in ({"station_id": AIR_STATION, "observe_time": moment, "pm25_ugm3": 10.0},
                 {"observations": [{"station_id": AIR_STATION, "observe_time": moment, "pm25_ugm3": 10.0}]}):
        reply = await client.post("/v1/air-quality", json=body)
        assert reply.status_code == 422, reply.text
        assert "observe_time" in reply.json()["detail"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
async def test_non_finite_values_are_a_422_naming_the_field(client: httpx.AsyncClient, literal: str) -> None:
    body = f'{{"station_id": "{AIR_STATION}", "observe_time": "{_recent()}", "pm25_ugm3": {literal}}}'
    reply = await client.post("/v1/air-quality", content=body)
    assert reply.status_code == 422, reply.text
    assert "pm25_ugm3" in reply.json()["detail"]


async def test_body_over_the_limit_without_content_length_is_a_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b" " * 1024

    reply = await client.post("/v1/air-quality", content=chunks())
    assert "content-length" not in reply.request.headers
    assert reply.status_code == 413, reply.text


async def test_unknown_station_does_not_echo_a_long_id(client: httpx.AsyncClient) -> None:
    reply = await client.get(f"/v1/stations/{'x' * 8000}/status")
    assert reply.status_code == 404 and len(reply.text) < SHORT


# -- gRPC ---------------------------------------------------------------------------------------


def _metadata(env_api: EnvironmentApi) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {env_api.full_token}")]


def _air(stamp: Timestamp, **values: float) -> pb.PublishObservationsRequest:
    return pb.PublishObservationsRequest(air_quality=observations_pb2.AirQualityObserved(
        station_id=AIR_STATION, observe_time=stamp, **values))


def _stamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


@pytest.mark.parametrize(("name", "stamp"), [
    ("seconds no datetime holds", Timestamp(seconds=10**13)),
    ("negative nanos", Timestamp(seconds=1_700_000_000, nanos=-1)),
    ("year one", Timestamp(seconds=-62_135_596_800)),
    ("year 9999", Timestamp(seconds=253_402_300_799)),
])
async def test_publish_with_an_invalid_timestamp_is_invalid_argument(
    env_api: EnvironmentApi, channel: grpc.aio.Channel, name: str, stamp: Timestamp
) -> None:
    stub = pb_grpc.EnvironmentServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.PublishObservations(iter([_air(stamp, pm25_ugm3=10.0)]), metadata=_metadata(env_api),
                                       timeout=RPC_TIMEOUT_S)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
    assert "observations[0]" in (raised.value.details() or "") and "observe_time" in (raised.value.details() or "")


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
async def test_publish_with_a_non_finite_value_is_invalid_argument(
    env_api: EnvironmentApi, channel: grpc.aio.Channel, value: float
) -> None:
    stub = pb_grpc.EnvironmentServiceStub(channel)
    recent = _stamp(datetime.now(UTC) - timedelta(minutes=1))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.PublishObservations(iter([_air(recent, pm25_ugm3=value)]), metadata=_metadata(env_api),
                                       timeout=RPC_TIMEOUT_S)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "pm25_ugm3" in (raised.value.details() or "")


async def test_undecodable_unary_request_is_invalid_argument(
    env_api: EnvironmentApi, channel: grpc.aio.Channel
) -> None:
    call = channel.unary_unary(f"/{SERVICE_NAME}/GetStationStatus", request_serializer=None,
                               response_deserializer=None)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call(b"\x0a\xff\xff\xff\xff\x0f", metadata=_metadata(env_api), timeout=RPC_TIMEOUT_S)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid madina.environment.v1.GetStationStatusRequest" in (raised.value.details() or "")


async def test_undecodable_streamed_request_is_invalid_argument(
    env_api: EnvironmentApi, channel: grpc.aio.Channel
) -> None:
    call = channel.stream_unary(f"/{SERVICE_NAME}/PublishObservations", request_serializer=None,
                                response_deserializer=None)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call(iter([b"\x0a\xff\xff\xff\xff\x0f"]), metadata=_metadata(env_api), timeout=RPC_TIMEOUT_S)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid" in (raised.value.details() or "")


async def test_unknown_station_does_not_echo_a_megabyte_id(
    env_api: EnvironmentApi, channel: grpc.aio.Channel
) -> None:
    stub = pb_grpc.EnvironmentServiceStub(channel)
    huge = "x" * 1_000_000
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetStationStatus(pb.GetStationStatusRequest(station_id=huge), metadata=_metadata(env_api),
                                    timeout=RPC_TIMEOUT_S)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert len(raised.value.details() or "") < SHORT
    recent = _stamp(datetime.now(UTC) - timedelta(minutes=1))
    request = pb.PublishObservationsRequest(air_quality=observations_pb2.AirQualityObserved(
        station_id=huge, observe_time=recent, pm25_ugm3=1.0))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.PublishObservations(iter([request]), metadata=_metadata(env_api), timeout=RPC_TIMEOUT_S)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(raised.value.details() or "") < SHORT
