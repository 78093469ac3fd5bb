"""The environment gRPC API over TLS on a free port, producing to and reading from the session broker.

Partners stream observations in (all accepted, or INVALID_ARGUMENT at the first bad one with the
valid ones before it published), read stations, and watch status fed by the compacted
``environment.station-status.v1``; tokens and scopes guard every RPC except health and reflection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
import pytest_asyncio
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from madina.bus import EventProducer
from madina.bus.alert_events import timestamp
from madina_proto.environment.v1 import environment_service_pb2 as pb
from madina_proto.environment.v1 import environment_service_pb2_grpc as pb_grpc
from madina_proto.environment.v1 import observations_pb2, station_pb2
from services.environment.api.grpc import SERVICE_NAME
from services.environment.api.main import build_grpc_server
from services.environment.domain.stations import STATIONS_PATH
from services.environment.topics import AIR_QUALITY, NOISE, OBSERVATION_TOPICS, STATION_STATUS, WATER_QUALITY
from tests.integration.environment.api_fixtures import (
    BusTap,
    EnvironmentApi,
    moment_of,
    running_environment_api,
)

# One server for the module: a runtime takes about a second to be ready. Tests stay independent
# because each reads only records stamped with its own moment.
pytestmark = pytest.mark.asyncio(loop_scope="module")
AIR_AND_NOISE_STATION = "cas-air-casa-port"
AIR_STATION = "cas-air-anfa"
NOISE_STATION = "cas-noise-ain-chock"
WATER_STATION = "cas-water-ain-chock"
RPC_TIMEOUT_S = 10.0


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env_api(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[EnvironmentApi]:
    async with running_environment_api(kafka_bootstrap, tmp_path_factory.mktemp("environment-grpc")) as api:
        yield api


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def port(env_api: EnvironmentApi) -> AsyncIterator[int]:
    server = build_grpc_server(env_api.runtime, port=0)
    assert server.secure, "the API must serve TLS when given a certificate"
    await server.start()
    try:
        yield server.port
    finally:
        await server.stop(grace_s=1.0)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def channel(env_api: EnvironmentApi, port: int) -> AsyncIterator[grpc.aio.Channel]:
    credentials = grpc.ssl_channel_credentials(root_certificates=env_api.tls_cert)
    async with grpc.aio.secure_channel(f"localhost:{port}", credentials) as secure:
        yield secure


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> pb_grpc.EnvironmentServiceStub:
    return pb_grpc.EnvironmentServiceStub(channel)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bus(env_api: EnvironmentApi, kafka_bootstrap: str) -> AsyncIterator[BusTap]:
    async with BusTap.open(kafka_bootstrap, OBSERVATION_TOPICS) as tap:
        yield tap


@pytest.fixture
def moment(unique: str) -> datetime:
    return moment_of(unique)


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


def air(station_id: str, moment: datetime, **values: float) -> pb.PublishObservationsRequest:
    return pb.PublishObservationsRequest(air_quality=observations_pb2.AirQualityObserved(
        station_id=station_id, observe_time=timestamp(moment), **values))


def water(station_id: str, moment: datetime, **values: float) -> pb.PublishObservationsRequest:
    return pb.PublishObservationsRequest(water_quality=observations_pb2.WaterQualityObserved(
        station_id=station_id, observe_time=timestamp(moment), **values))


def noise(station_id: str, moment: datetime, **values: float) -> pb.PublishObservationsRequest:
    return pb.PublishObservationsRequest(noise=observations_pb2.NoiseObserved(
        station_id=station_id, observe_time=timestamp(moment), **values))


async def publish(
    stub: pb_grpc.EnvironmentServiceStub, token: str | None, requests: list[pb.PublishObservationsRequest]
) -> pb.PublishObservationsResponse:
    metadata = bearer(token) if token else ()
    return await stub.PublishObservations(iter(requests), metadata=metadata, timeout=RPC_TIMEOUT_S)


async def assert_nothing_published(bus: BusTap, mark: Any, moment: datetime, *station_ids: str) -> None:
    for spec in OBSERVATION_TOPICS:
        for station_id in station_ids:
            leaked = await bus.published_since(mark, spec, station_id, moment)
            assert leaked == [], f"published to {spec.name} anyway: {leaked[0].batch}"


# --- PublishObservations ----------------------------------------------------------------------------


async def test_streamed_observations_of_mixed_kinds_are_accepted_and_published_on_their_topics(
    stub: pb_grpc.EnvironmentServiceStub, env_api: EnvironmentApi, bus: BusTap, moment: datetime
) -> None:
    mark = await bus.mark()

    response = await publish(stub, env_api.publisher_token, [
        air(AIR_AND_NOISE_STATION, moment, pm25_ugm3=33.0, so2_ugm3=4.5),
        noise(AIR_AND_NOISE_STATION, moment, laeq_db=71.5),
        water(WATER_STATION, moment, ph=6.9, ecoli_cfu_100ml=0.0),
    ])

    assert response.accepted_count == 3
    [air_record] = await bus.published_since(mark, AIR_QUALITY, AIR_AND_NOISE_STATION, moment)
    assert air_record.batch == observations_pb2.AirQualityObservedBatch(
        station_id=AIR_AND_NOISE_STATION, observations=[observations_pb2.AirQualityObserved(
            station_id=AIR_AND_NOISE_STATION, observe_time=timestamp(moment), pm25_ugm3=33.0, so2_ugm3=4.5)],
    )
    [noise_record] = await bus.published_since(mark, NOISE, AIR_AND_NOISE_STATION, moment)
    assert noise_record.batch == observations_pb2.NoiseObservedBatch(
        station_id=AIR_AND_NOISE_STATION, observations=[observations_pb2.NoiseObserved(
            station_id=AIR_AND_NOISE_STATION, observe_time=timestamp(moment), laeq_db=71.5)],
    )
    [water_record] = await bus.published_since(mark, WATER_QUALITY, WATER_STATION, moment)
    [water_observation] = water_record.batch.observations
    assert water_observation.ph == 6.9
    # An explicit zero is a reading, not an absent measurand.
    assert water_observation.HasField("ecoli_cfu_100ml") and water_observation.ecoli_cfu_100ml == 0.0
    assert not water_observation.HasField("turbidity_ntu")
    assert {r.record.key for r in (air_record, noise_record)} == {AIR_AND_NOISE_STATION.encode()}


async def test_each_record_event_time_is_the_newest_observation_it_carries(
    stub: pb_grpc.EnvironmentServiceStub, env_api: EnvironmentApi, bus: BusTap, moment: datetime
) -> None:
    # One station, two kinds: the noise observation is newer, but it is not in the air batch.
    later = moment + timedelta(seconds=30)
    mark = await bus.mark()

    response = await publish(stub, env_api.publisher_token, [
        air(AIR_AND_NOISE_STATION, moment, pm10_ugm3=40.0),
        noise(AIR_AND_NOISE_STATION, later, laeq_db=60.0),
    ])

    assert response.accepted_count == 2
    [air_record] = await bus.published_since(mark, AIR_QUALITY, AIR_AND_NOISE_STATION, moment)
    [noise_record] = await bus.published_since(mark, NOISE, AIR_AND_NOISE_STATION, later)
    assert noise_record.record.timestamp == int(later.timestamp() * 1000)
    assert air_record.record.timestamp == int(moment.timestamp() * 1000), (
        "the air batch is stamped with the time of the station's noise observation"
    )


async def test_invalid_observation_mid_stream_is_invalid_argument_and_the_valid_ones_before_it_are_published(
    stub: pb_grpc.EnvironmentServiceStub, env_api: EnvironmentApi, bus: BusTap, moment: datetime
) -> None:
    mark = await bus.mark()

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await publish(stub, env_api.publisher_token, [
            air(AIR_STATION, moment, pm25_ugm3=12.0),
            noise(NOISE_STATION, moment, laeq_db=55.0),
            air("cas-air-ain-sebaa", moment, pm25_ugm3=-3.0),
            air("cas-air-maarif", moment, pm25_ugm3=14.0),
        ])

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = raised.value.details() or ""
    assert "observations[2].pm25_ugm3" in details
    assert "2 accepted before it" in details
    # Documented behaviour: what came before the bad observation is published, nothing from it on.
    assert len(await bus.published_since(mark, AIR_QUALITY, AIR_STATION, moment)) == 1
    assert len(await bus.published_since(mark, NOISE, NOISE_STATION, moment)) == 1
    await assert_nothing_published(bus, mark, moment, "cas-air-ain-sebaa", "cas-air-maarif")


def _without_time(request: pb.PublishObservationsRequest) -> pb.PublishObservationsRequest:
    request.air_quality.ClearField("observe_time")
    return request


REJECTED = [
    ("no-observation-set", lambda m: pb.PublishObservationsRequest(), "observations[0]"),
    ("missing-observe-time", lambda m: _without_time(air(AIR_STATION, m, pm25_ugm3=5.0)),
     "observations[0].observe_time"),
    ("observe-time-in-the-future",
     lambda m: air(AIR_STATION, datetime.now(UTC) + timedelta(hours=1), pm25_ugm3=5.0),
     "observations[0].observe_time"),
    ("unknown-station", lambda m: air("cas-air-nowhere", m, pm25_ugm3=5.0), "observations[0].station_id"),
    ("kind-the-station-does-not-measure", lambda m: noise(WATER_STATION, m, laeq_db=60.0),
     "observations[0].station_id"),
    ("no-measurand", lambda m: air(AIR_STATION, m), "observations[0].values"),
    ("not-finite", lambda m: air(AIR_STATION, m, pm25_ugm3=float("inf")), "observations[0].pm25_ugm3"),
    ("above-plausible-range", lambda m: water(WATER_STATION, m, ph=15.0), "observations[0].ph"),
]


@pytest.mark.parametrize(("make", "field"), [c[1:] for c in REJECTED], ids=[c[0] for c in REJECTED])
async def test_invalid_first_observation_is_invalid_argument_naming_index_and_field_and_publishes_nothing(
    stub: pb_grpc.EnvironmentServiceStub, env_api: EnvironmentApi, bus: BusTap, moment: datetime,
    make: Any, field: str,
) -> None:
    mark = await bus.mark()

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await publish(stub, env_api.publisher_token, [make(moment), air(AIR_STATION, moment, pm25_ugm3=5.0)])

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (raised.value.details() or "")
    assert "0 accepted before it" in (raised.value.details() or "")
    await assert_nothing_published(bus, mark, moment, AIR_STATION, WATER_STATION)


@pytest.mark.parametrize(
    ("credential", "code"),
    [(None, grpc.StatusCode.UNAUTHENTICATED), ("not-a-token-anyone-holds", grpc.StatusCode.UNAUTHENTICATED),
     ("dashboard", grpc.StatusCode.PERMISSION_DENIED)],
    ids=["no-token", "wrong-token", "read-only-token"],
)
async def test_publishing_needs_a_token_with_the_publish_scope_and_a_refused_stream_publishes_nothing(
    stub: pb_grpc.EnvironmentServiceStub, env_api: EnvironmentApi, bus: BusTap, moment: datetime,
    credential: str | None, code: grpc.StatusCode,
) -> None:
    token = env_api.tokens.get(credential or "", credential)
    mark = await bus.mark()

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await publish(stub, token, [air(AIR_STATION, moment, pm25_ugm3=5.0)])

    assert raised.value.code() == code
    await assert_nothing_published(bus, mark, moment, AIR_STATION)


async def test_reading_needs_the_read_scope(
    stub: pb_grpc.EnvironmentServiceStub, env_api: EnvironmentApi
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as anonymous:
        await stub.ListStations(pb.ListStationsRequest(), timeout=RPC_TIMEOUT_S)
    with pytest.raises(grpc.aio.AioRpcError) as publisher:
        await stub.GetStationStatus(pb.GetStationStatusRequest(station_id=AIR_STATION),
                                    metadata=bearer(env_api.publisher_token), timeout=RPC_TIMEOUT_S)

    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert publisher.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "environment:read" in (publisher.value.details() or "")


# --- transport: health, reflection, TLS -------------------------------------------------------------


@pytest.mark.parametrize("service", ["", SERVICE_NAME])
async def test_health_check_answers_serving_without_a_token(channel: grpc.aio.Channel, service: str) -> None:
    health = health_pb2_grpc.HealthStub(channel)

    response = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=RPC_TIMEOUT_S)

    assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_environment_service_without_a_token(channel: grpc.aio.Channel) -> None:
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=RPC_TIMEOUT_S
    )

    responses = [response async for response in call]

    names = {service.name for service in responses[0].list_services_response.service}
    assert SERVICE_NAME == "madina.environment.v1.EnvironmentService"
    assert {SERVICE_NAME, "grpc.health.v1.Health"} <= names


async def test_plaintext_client_cannot_talk_to_the_tls_server(port: int) -> None:
    async with grpc.aio.insecure_channel(f"localhost:{port}") as plaintext:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await health_pb2_grpc.HealthStub(plaintext).Check(health_pb2.HealthCheckRequest(), timeout=5)

    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_client_that_does_not_trust_the_certificate_cannot_connect(port: int, tmp_path) -> None:
    from madina.grpc.tls import ensure_self_signed

    stranger_cert, _ = ensure_self_signed(tmp_path)
    credentials = grpc.ssl_channel_credentials(root_certificates=stranger_cert.read_bytes())
    async with grpc.aio.secure_channel(f"localhost:{port}", credentials) as untrusting:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await health_pb2_grpc.HealthStub(untrusting).Check(health_pb2.HealthCheckRequest(), timeout=5)

    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


# --- stations and status ----------------------------------------------------------------------------

KIND_NAMES = {station_pb2.STATION_KIND_AIR: "air", station_pb2.STATION_KIND_WATER: "water",
              station_pb2.STATION_KIND_NOISE: "noise"}


def seed_station_ids(city: str, kind: station_pb2.StationKind.ValueType) -> set[str]:
    document = yaml.safe_load(STATIONS_PATH.read_text(encoding="utf-8"))
    return {s["id"] for s in document["stations"]
            if city in ("", s["city"]) and (kind == station_pb2.STATION_KIND_UNSPECIFIED
                                             or KIND_NAMES[kind] in s["kinds"])}


@pytest.mark.parametrize(
    ("city", "kind"),
    [("casablanca", station_pb2.STATION_KIND_NOISE), ("casablanca", station_pb2.STATION_KIND_WATER),
     ("berkane", station_pb2.STATION_KIND_AIR), ("berkane", station_pb2.STATION_KIND_UNSPECIFIED),
     ("", station_pb2.STATION_KIND_UNSPECIFIED), ("atlantis", station_pb2.STATION_KIND_UNSPECIFIED)],
    ids=["casablanca-noise", "casablanca-water", "berkane-air", "berkane-any", "all", "unknown-city"],
)
async def test_list_stations_filters_the_seed_by_city_and_kind(
    stub: pb_grpc.EnvironmentServiceStub, env_api: EnvironmentApi, city: str,
    kind: station_pb2.StationKind.ValueType,
) -> None:
    response = await stub.ListStations(pb.ListStationsRequest(city_id=city, kind=kind),
                                       metadata=bearer(env_api.reader_token), timeout=RPC_TIMEOUT_S)

    assert [s.station_id for s in response.stations].count(AIR_AND_NOISE_STATION) <= 1
    assert {s.station_id for s in response.stations} == seed_station_ids(city, kind)
    assert len(response.stations) == len(seed_station_ids(city, kind))
    if city == "casablanca" and kind == station_pb2.STATION_KIND_NOISE:
        # A station measuring air and noise is listed under noise too.
        assert {AIR_AND_NOISE_STATION, NOISE_STATION} <= {s.station_id for s in response.stations}


@pytest.mark.parametrize(
    ("station_id", "code"),
    [("cas-air-nowhere", grpc.StatusCode.NOT_FOUND), ("", grpc.StatusCode.INVALID_ARGUMENT)],
    ids=["unknown", "empty"],
)
async def test_status_of_an_unknown_or_empty_station_id_is_refused(
    stub: pb_grpc.EnvironmentServiceStub, env_api: EnvironmentApi, station_id: str, code: grpc.StatusCode
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetStationStatus(pb.GetStationStatusRequest(station_id=station_id),
                                    metadata=bearer(env_api.reader_token), timeout=RPC_TIMEOUT_S)
    with pytest.raises(grpc.aio.AioRpcError) as watched:
        call = stub.WatchStation(pb.WatchStationRequest(station_id=station_id),
                                 metadata=bearer(env_api.reader_token), timeout=RPC_TIMEOUT_S)
        await call.read()

    assert raised.value.code() == code
    assert "station_id" in (raised.value.details() or "")
    assert watched.value.code() == code


async def test_status_change_on_the_status_topic_is_streamed_to_a_watcher_and_then_served(
    stub: pb_grpc.EnvironmentServiceStub, env_api: EnvironmentApi, kafka_bootstrap: str, moment: datetime,
    unique: str,
) -> None:
    station_id = "cas-air-maarif"
    marker = 1000 + int(unique[:4], 16) / 100  # a PM2.5 value only this test publishes
    status = station_pb2.StationStatus(
        station=station_pb2.Station(station_id=station_id, display_name="Casablanca Maârif"),
        last_observe_time=timestamp(moment),
        latest_values={"pm25_ugm3": marker, "no2_ugm3": 40.0},
    )
    watch = stub.WatchStation(pb.WatchStationRequest(station_id=station_id),
                              metadata=bearer(env_api.reader_token), timeout=RPC_TIMEOUT_S * 2)
    try:
        current = await asyncio.wait_for(watch.read(), RPC_TIMEOUT_S)
        assert current.status.station.station_id == station_id

        async with EventProducer(kafka_bootstrap, source="environment-processor") as producer:
            changed = station_pb2.StationStatusChanged(status=status)
            await producer.send_and_wait(STATION_STATUS, station_id, changed)

        async with asyncio.timeout(RPC_TIMEOUT_S):
            update = await watch.read()
            while update.status.latest_values.get("pm25_ugm3") != marker:  # skip others' statuses
                update = await watch.read()
    finally:
        watch.cancel()

    assert update.status == status
    assert update.update_time.ToDatetime(tzinfo=UTC) > moment
    served = await stub.GetStationStatus(pb.GetStationStatusRequest(station_id=station_id),
                                         metadata=bearer(env_api.reader_token), timeout=RPC_TIMEOUT_S)
    assert served.status == status
