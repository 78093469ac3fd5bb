"""What regulators count reaches the API's readers: a status the processor's step built from three
polluted days (NowCast and 24 h AQI, exceedances against the allowance, annual means) is served
whole over REST and gRPC once it is on the real ``environment.station-status.v1`` topic."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import httpx
import pytest
import pytest_asyncio

from madina.bus import EventProducer
from madina_proto.environment.v1 import environment_service_pb2 as pb
from madina_proto.environment.v1 import environment_service_pb2_grpc as pb_grpc
from madina_proto.environment.v1 import station_pb2
from services.environment.api.http import create_http_app
from services.environment.api.main import build_grpc_server
from services.environment.convert import batches_by_station
from services.environment.domain.evaluator import EvaluatorConfig
from services.environment.domain.measurands import Observation, StationKind
from services.environment.domain.profiles import load_profiles, select_annual_limits, select_rules
from services.environment.processor.station_stream import StoredState, apply_batch
from services.environment.topics import STATION_STATUS
from tests.integration.environment.api_fixtures import (
    SETTLE_TIMEOUT_S,
    EnvironmentApi,
    running_environment_api,
    serving_http,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")
STATION = "brk-air-zone-industrielle"  # no other test publishes this station's status
PROFILE = "eu-2024-2881"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env_api(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EnvironmentApi]:
    async with running_environment_api(kafka_bootstrap, tmp_path_factory.mktemp("environment-status")) as api:
        yield api


def three_polluted_days(env_api: EnvironmentApi) -> station_pb2.StationStatusChanged:
    """The status the processor's step publishes after three days of PM10 at 60 µg/m³ (limit 45)."""
    station = env_api.runtime.stations[STATION]
    profiles = load_profiles()
    rules, limits = select_rules(profiles, [PROFILE]), select_annual_limits(profiles, [PROFILE])
    stored = StoredState.new(STATION)
    start = datetime(2025, 3, 1, tzinfo=UTC)
    statuses = []
    for quarter in range(3 * 96 + 1):
        values = {"pm10_ugm3": 60.0 if quarter < 3 * 96 else 10.0, "pm25_ugm3": 20.0}
        observation = Observation(STATION, start + timedelta(minutes=15 * quarter), StationKind.AIR, values)
        [(_, _, batch)] = batches_by_station([observation])
        outputs = apply_batch(stored, batch, station, rules, EvaluatorConfig(), None, limits)
        statuses.extend(message for spec, _, message in outputs.records if spec is STATION_STATUS)
    return statuses[-1]


async def test_nowcast_daily_aqi_exceedances_and_annual_means_are_served_over_rest_and_grpc(
    env_api: EnvironmentApi, kafka_bootstrap: str
) -> None:
    changed = three_polluted_days(env_api)
    assert changed.status.exceedances and changed.status.HasField("nowcast_aqi")
    updates = env_api.runtime.watch(STATION)
    try:
        async with EventProducer(kafka_bootstrap, source="environment-processor") as producer:
            await producer.send_and_wait(STATION_STATUS, STATION, changed)
        async with asyncio.timeout(SETTLE_TIMEOUT_S):
            while (await updates.get()) != changed.status:
                pass
    finally:
        env_api.runtime.unwatch(STATION, updates)

    async with serving_http(create_http_app(env_api.runtime)) as base_url, httpx.AsyncClient(
        base_url=base_url, timeout=10
    ) as client:
        response = await client.get(f"/v1/stations/{STATION}/status",
                                    headers={"Authorization": f"Bearer {env_api.reader_token}"})
    server = build_grpc_server(env_api.runtime, port=0)
    await server.start()
    try:
        credentials = grpc.ssl_channel_credentials(root_certificates=env_api.tls_cert)
        async with grpc.aio.secure_channel(f"localhost:{server.port}", credentials) as channel:
            served = await pb_grpc.EnvironmentServiceStub(channel).GetStationStatus(
                pb.GetStationStatusRequest(station_id=STATION),
                metadata=(("authorization", f"Bearer {env_api.reader_token}"),), timeout=10)
    finally:
        await server.stop(grace_s=1.0)

    assert served.status == changed.status
    assert response.status_code == 200, response.text
    body = response.json()
    pm10 = next(e for e in body["exceedances"] if e["rule_id"] == f"{PROFILE}/pm10-24h")
    # The closed local days (Africa/Casablanca) above 45 µg/m³: at least the first two of the three.
    counted = next(e for e in changed.status.exceedances if e.rule_id == f"{PROFILE}/pm10-24h").exceedance_count
    assert counted >= 2
    assert (pm10["exceedance_count"], pm10["allowed_count"], pm10["remaining_count"], pm10["year"]) == (
        counted, 18, 18 - counted, 2025)
    assert pm10["averaging_period"] == "86400s" and "breached" not in pm10  # proto3 JSON leaves false out
    assert body["nowcast_aqi"]["sub_indices"]["pm10_ugm3"] > 0
    assert body["daily_aqi"]["compute_time"].startswith("2025-03-")
    annual = next(m for m in body["annual_means"] if m["measurand"] == "pm10_ugm3")
    # 72 hours of data, but the last one closes only once a reading is 10 min (the lateness) past it.
    assert annual["limit_id"] == f"{PROFILE}/pm10-year" and annual["valid_hour_count"] == 71
    assert annual["mean_value"] == pytest.approx(60.0) and "valid" not in annual  # 71 h is no annual mean
