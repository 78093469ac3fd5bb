"""HTTP ingest of the environment service, served by uvicorn, producing to the session broker over TCP.

What a device gets back (202, 401/403, 422 naming the field, 413, 400) and what lands on the bus:
the exact batch per station with the standard headers, and nothing at all from a rejected request.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import yaml

from madina.bus.alert_events import timestamp
from madina.bus.codec import HEADER_CONTENT_TYPE, HEADER_EVENT_ID, HEADER_EVENT_TIME, HEADER_SOURCE
from madina_proto.environment.v1 import observations_pb2
from services.environment.api.http import create_http_app
from services.environment.domain.stations import STATIONS_PATH
from services.environment.topics import AIR_QUALITY, NOISE, OBSERVATION_TOPICS, WATER_QUALITY
from tests.integration.environment.api_fixtures import (
    BusTap,
    EnvironmentApi,
    moment_of,
    rfc3339,
    running_environment_api,
    serving_http,
)

MAX_BODY_BYTES = 2048
MAX_BATCH = 5
AIR_STATION = "cas-air-ain-sebaa"
OTHER_AIR_STATION = "cas-air-anfa"
WATER_STATION = "cas-water-ain-chock"


# One service for the module: starting a runtime (producer, status feed catching up) costs about a
# second. Tests stay independent because each reads only records stamped with its own moment.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env_api(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[EnvironmentApi]:
    async with running_environment_api(
        kafka_bootstrap, tmp_path_factory.mktemp("environment-http"),
        max_body_bytes=MAX_BODY_BYTES, environment_max_batch_observations=MAX_BATCH,
    ) as api:
        yield api


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(env_api: EnvironmentApi) -> AsyncIterator[httpx.AsyncClient]:
    async with serving_http(create_http_app(env_api.runtime)) as base_url, httpx.AsyncClient(
        base_url=base_url, timeout=10
    ) as http:
        yield http


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bus(env_api: EnvironmentApi, kafka_bootstrap: str) -> AsyncIterator[BusTap]:
    async with BusTap.open(kafka_bootstrap, OBSERVATION_TOPICS) as tap:
        yield tap


@pytest.fixture
def moment(unique: str) -> datetime:
    return moment_of(unique)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


async def assert_nothing_published(bus: BusTap, mark: Any, moment: datetime, *station_ids: str) -> None:
    for spec in OBSERVATION_TOPICS:
        for station_id in station_ids:
            leaked = await bus.published_since(mark, spec, station_id, moment)
            assert leaked == [], f"rejected request still published to {spec.name}: {leaked[0].batch}"


# --- accepted ---------------------------------------------------------------------------------------


async def test_single_observation_is_accepted_and_published_as_one_batch_keyed_by_station(
    client: httpx.AsyncClient, env_api: EnvironmentApi, bus: BusTap, moment: datetime
) -> None:
    mark = await bus.mark()
    # An offset other than Z: the instant must survive, stored as UTC.
    sent_time = moment.astimezone(timezone(timedelta(hours=1))).isoformat()
    body = {"station_id": AIR_STATION, "observe_time": sent_time, "pm25_ugm3": 41.5, "no2_ugm3": 63.25}

    response = await client.post("/v1/air-quality", json=body, headers=bearer(env_api.publisher_token))

    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 1}
    [published] = await bus.published_since(mark, AIR_QUALITY, AIR_STATION, moment)
    assert published.batch == observations_pb2.AirQualityObservedBatch(
        station_id=AIR_STATION,
        observations=[observations_pb2.AirQualityObserved(
            station_id=AIR_STATION, observe_time=timestamp(moment), pm25_ugm3=41.5, no2_ugm3=63.25,
        )],
    )
    # Measurands not sent stay absent, not zero.
    assert not published.batch.observations[0].HasField("pm10_ugm3")


async def test_published_record_carries_the_standard_headers_and_event_time(
    client: httpx.AsyncClient, env_api: EnvironmentApi, bus: BusTap, moment: datetime
) -> None:
    mark = await bus.mark()
    body = {"station_id": AIR_STATION, "observe_time": rfc3339(moment), "pm10_ugm3": 80.0}

    response = await client.post("/v1/air-quality", json=body, headers=bearer(env_api.publisher_token))

    assert response.status_code == 202, response.text
    [published] = await bus.published_since(mark, AIR_QUALITY, AIR_STATION, moment)
    assert published.record.key == AIR_STATION.encode()
    assert published.header(HEADER_CONTENT_TYPE) == (
        b"application/x-protobuf; messageType=madina.environment.v1.AirQualityObservedBatch"
    )
    assert published.header(HEADER_SOURCE) == b"environment-api"
    assert re.fullmatch(rb"[0-9a-f]{32}", published.header(HEADER_EVENT_ID) or b"")
    assert published.header(HEADER_EVENT_TIME) == str(millis(moment)).encode()
    assert published.record.timestamp == millis(moment)


async def test_batch_is_published_as_one_record_per_station_with_observations_in_request_order(
    client: httpx.AsyncClient, env_api: EnvironmentApi, bus: BusTap, moment: datetime
) -> None:
    later = moment + timedelta(seconds=1)
    mark = await bus.mark()
    body = {"observations": [
        {"station_id": AIR_STATION, "observe_time": rfc3339(later), "pm25_ugm3": 11.0},
        {"station_id": OTHER_AIR_STATION, "observe_time": rfc3339(moment), "pm10_ugm3": 20.0},
        {"station_id": AIR_STATION, "observe_time": rfc3339(moment), "pm25_ugm3": 10.0, "co_mgm3": 0.4},
    ]}

    response = await client.post("/v1/air-quality", json=body, headers=bearer(env_api.publisher_token))

    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 3}
    [first] = await bus.published_since(mark, AIR_QUALITY, AIR_STATION, moment)
    observed = observations_pb2.AirQualityObserved
    assert first.batch == observations_pb2.AirQualityObservedBatch(station_id=AIR_STATION, observations=[
        observed(station_id=AIR_STATION, observe_time=timestamp(later), pm25_ugm3=11.0),
        observed(station_id=AIR_STATION, observe_time=timestamp(moment), pm25_ugm3=10.0, co_mgm3=0.4),
    ])
    # The record's event time is that of the newest observation it carries.
    assert first.record.timestamp == millis(later)
    [second] = await bus.published_since(mark, AIR_QUALITY, OTHER_AIR_STATION, moment)
    assert [(o.station_id, o.pm10_ugm3) for o in second.batch.observations] == [(OTHER_AIR_STATION, 20.0)]


@pytest.mark.parametrize(
    ("path", "station_id", "values", "spec"),
    [
        ("/v1/water-quality", WATER_STATION, {"ph": 7.2, "turbidity_ntu": 0.8}, WATER_QUALITY),
        ("/v1/noise", "cas-noise-ain-chock", {"laeq_db": 67.5}, NOISE),
    ],
    ids=["water", "noise"],
)
async def test_each_kind_is_published_on_its_own_topic(
    client: httpx.AsyncClient, env_api: EnvironmentApi, bus: BusTap, moment: datetime,
    path: str, station_id: str, values: dict[str, float], spec: Any,
) -> None:
    mark = await bus.mark()
    body = {"station_id": station_id, "observe_time": rfc3339(moment), **values}

    response = await client.post(path, json=body, headers=bearer(env_api.publisher_token))

    assert response.status_code == 202, response.text
    [published] = await bus.published_since(mark, spec, station_id, moment)
    [observation] = published.batch.observations
    assert {name: getattr(observation, name) for name in values} == values
    assert await bus.published_since(mark, AIR_QUALITY, station_id, moment) == []


# --- authentication and scopes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("credential", "status"),
    [(None, 401), ("not-a-token-anyone-holds", 401), ("dashboard", 403)],
    ids=["no-token", "wrong-token", "token-without-publish-scope"],
)
async def test_ingest_refuses_callers_without_the_publish_scope_and_publishes_nothing(
    client: httpx.AsyncClient, env_api: EnvironmentApi, bus: BusTap, moment: datetime,
    credential: str | None, status: int,
) -> None:
    token = env_api.tokens.get(credential or "", credential)
    headers = bearer(token) if token else {}
    mark = await bus.mark()
    body = {"station_id": AIR_STATION, "observe_time": rfc3339(moment), "pm25_ugm3": 12.0}

    response = await client.post("/v1/air-quality", json=body, headers=headers)

    assert response.status_code == status, response.text
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
    else:
        assert "environment:publish" in response.json()["detail"]
    await assert_nothing_published(bus, mark, moment, AIR_STATION)


# --- validation: 422 naming the field, all or nothing -----------------------------------------------

Body = Callable[[datetime], Any]


def _air(moment: datetime, **fields: Any) -> dict[str, Any]:
    return {"station_id": AIR_STATION, "observe_time": rfc3339(moment), **fields}


REJECTED: list[tuple[str, str, Body, str]] = [
    ("negative-value", "/v1/air-quality", lambda m: _air(m, pm25_ugm3=-3), "pm25_ugm3"),
    ("value-above-plausible-range", "/v1/air-quality", lambda m: _air(m, pm25_ugm3=2500), "pm25_ugm3"),
    ("unknown-field", "/v1/air-quality", lambda m: _air(m, pm25_ugm3=5, pm26_ugm3=1), "pm26_ugm3"),
    ("measurand-of-another-kind", "/v1/air-quality", lambda m: _air(m, laeq_db=60), "laeq_db"),
    ("no-measurand", "/v1/air-quality", lambda m: _air(m), "values"),
    ("missing-observe-time", "/v1/air-quality",
     lambda m: {"station_id": AIR_STATION, "pm25_ugm3": 5}, "observe_time"),
    ("observe-time-without-offset", "/v1/air-quality",
     lambda m: {**_air(m, pm25_ugm3=5), "observe_time": m.replace(tzinfo=None).isoformat()}, "observe_time"),
    ("observe-time-in-the-future", "/v1/air-quality",
     lambda m: _air(datetime.now(UTC) + timedelta(hours=1), pm25_ugm3=5), "observe_time"),
    ("unknown-station", "/v1/air-quality",
     lambda m: {**_air(m, pm25_ugm3=5), "station_id": "cas-air-nowhere"}, "station_id"),
    ("kind-the-station-does-not-measure", "/v1/noise",
     lambda m: {"station_id": WATER_STATION, "observe_time": rfc3339(m), "laeq_db": 60}, "station_id"),
    ("empty-observations", "/v1/air-quality", lambda m: {"observations": []}, "observations"),
    ("observations-not-a-list", "/v1/air-quality", lambda m: {"observations": _air(m, pm25_ugm3=5)},
     "observations"),
    ("field-beside-observations", "/v1/air-quality",
     lambda m: {"observations": [_air(m, pm25_ugm3=5)], "station_id": AIR_STATION}, "station_id"),
    ("batch-over-the-limit", "/v1/air-quality",
     lambda m: {"observations": [_air(m, pm25_ugm3=n) for n in range(MAX_BATCH + 1)]}, "observations"),
    ("bad-value-in-second-item", "/v1/air-quality",
     lambda m: {"observations": [_air(m, pm25_ugm3=5), _air(m, pm25_ugm3=-3)]}, "observations[1].pm25_ugm3"),
    ("unknown-station-in-second-item", "/v1/air-quality",
     lambda m: {"observations": [_air(m, pm25_ugm3=5), {**_air(m, pm25_ugm3=5), "station_id": "cas-air-x"}]},
     "observations[1].station_id"),
    ("future-time-in-third-item", "/v1/air-quality",
     lambda m: {"observations": [_air(m, pm25_ugm3=5), _air(m, pm25_ugm3=6),
                                 _air(datetime.now(UTC) + timedelta(hours=1), pm25_ugm3=7)]},
     "observations[2].observe_time"),
    ("boolean-value", "/v1/air-quality", lambda m: _air(m, pm25_ugm3=True), "pm25_ugm3"),
    ("string-value", "/v1/air-quality", lambda m: _air(m, pm25_ugm3="12"), "pm25_ugm3"),
]


@pytest.mark.parametrize(("path", "body", "field"), [c[1:] for c in REJECTED], ids=[c[0] for c in REJECTED])
async def test_invalid_observation_is_422_naming_the_field_and_nothing_of_the_request_is_published(
    client: httpx.AsyncClient, env_api: EnvironmentApi, bus: BusTap, moment: datetime,
    path: str, body: Body, field: str,
) -> None:
    mark = await bus.mark()

    response = await client.post(path, json=body(moment), headers=bearer(env_api.publisher_token))

    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and field in detail, detail
    await assert_nothing_published(bus, mark, moment, AIR_STATION, WATER_STATION)


async def test_non_finite_value_is_422_naming_the_field(
    client: httpx.AsyncClient, env_api: EnvironmentApi, bus: BusTap, moment: datetime
) -> None:
    # Python's JSON parser accepts the NaN literal, so the model must refuse it.
    text = json.dumps(_air(moment, pm25_ugm3=float("nan")))
    assert "NaN" in text
    mark = await bus.mark()

    response = await client.post(
        "/v1/air-quality", content=text,
        headers={**bearer(env_api.publisher_token), "Content-Type": "application/json"},
    )

    assert response.status_code == 422, response.text
    assert "pm25_ugm3" in response.json()["detail"]
    await assert_nothing_published(bus, mark, moment, AIR_STATION)


async def test_body_that_is_not_json_is_400(client: httpx.AsyncClient, env_api: EnvironmentApi) -> None:
    response = await client.post(
        "/v1/air-quality", content=b'{"station_id": "cas-air-ain-sebaa", ',
        headers={**bearer(env_api.publisher_token), "Content-Type": "application/json"},
    )

    assert response.status_code == 400, response.text
    assert "JSON" in response.json()["detail"]


# --- body size --------------------------------------------------------------------------------------


def padded_body(moment: datetime, size: int) -> bytes:
    """A valid observation, padded with JSON whitespace to exactly ``size`` bytes."""
    text = json.dumps(_air(moment, pm25_ugm3=9.0)).encode()
    assert len(text) <= size
    return text[:-1] + b" " * (size - len(text)) + b"}"


async def test_body_of_exactly_the_limit_is_accepted(
    client: httpx.AsyncClient, env_api: EnvironmentApi, bus: BusTap, moment: datetime
) -> None:
    body = padded_body(moment, MAX_BODY_BYTES)
    mark = await bus.mark()

    response = await client.post(
        "/v1/air-quality", content=body,
        headers={**bearer(env_api.publisher_token), "Content-Type": "application/json"},
    )

    assert response.status_code == 202, response.text
    assert len(await bus.published_since(mark, AIR_QUALITY, AIR_STATION, moment)) == 1


async def _in_chunks(body: bytes, size: int = 512) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start:start + size]


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_body_over_the_limit_is_413_and_publishes_nothing(
    client: httpx.AsyncClient, env_api: EnvironmentApi, bus: BusTap, moment: datetime, framing: str
) -> None:
    body = padded_body(moment, MAX_BODY_BYTES * 2)
    headers = {**bearer(env_api.publisher_token), "Content-Type": "application/json"}
    mark = await bus.mark()

    if framing == "chunked":
        request = client.build_request("POST", "/v1/air-quality", content=_in_chunks(body), headers=headers)
        assert request.headers["transfer-encoding"] == "chunked" and "content-length" not in request.headers
    else:
        request = client.build_request("POST", "/v1/air-quality", content=body, headers=headers)
        assert request.headers["content-length"] == str(len(body))
    response = await client.send(request)

    assert response.status_code == 413, response.text
    assert str(MAX_BODY_BYTES) in response.json()["detail"]
    await assert_nothing_published(bus, mark, moment, AIR_STATION)


# --- reads, operations, contract --------------------------------------------------------------------


def seed_station_ids(city: str | None = None) -> set[str]:
    document = yaml.safe_load(STATIONS_PATH.read_text(encoding="utf-8"))
    return {s["id"] for s in document["stations"] if city in (None, s["city"])}


@pytest.mark.parametrize("city", ["berkane", "casablanca", None])
async def test_station_list_is_the_seed_filtered_by_city(
    client: httpx.AsyncClient, env_api: EnvironmentApi, city: str | None
) -> None:
    params = {"city": city} if city else {}

    response = await client.get("/v1/stations", params=params, headers=bearer(env_api.reader_token))

    assert response.status_code == 200, response.text
    stations = response.json()["stations"]
    assert {s["station_id"] for s in stations} == seed_station_ids(city)
    assert len(stations) == len(seed_station_ids(city))
    if city:
        assert {s["district"]["city_id"] for s in stations} == {city}


async def test_station_list_of_an_unknown_city_is_empty(
    client: httpx.AsyncClient, env_api: EnvironmentApi
) -> None:
    response = await client.get(
        "/v1/stations", params={"city": "atlantis"}, headers=bearer(env_api.reader_token)
    )

    assert response.status_code == 200
    assert response.json() == {"stations": []}


async def test_reading_stations_needs_the_read_scope(
    client: httpx.AsyncClient, env_api: EnvironmentApi
) -> None:
    anonymous = await client.get("/v1/stations")
    publisher = await client.get("/v1/stations", headers=bearer(env_api.publisher_token))

    assert anonymous.status_code == 401
    assert publisher.status_code == 403
    assert "environment:read" in publisher.json()["detail"]


async def test_status_of_a_known_station_names_it_and_of_an_unknown_station_is_404(
    client: httpx.AsyncClient, env_api: EnvironmentApi
) -> None:
    known = await client.get(f"/v1/stations/{AIR_STATION}/status", headers=bearer(env_api.reader_token))
    unknown = await client.get("/v1/stations/cas-air-nowhere/status", headers=bearer(env_api.reader_token))

    assert known.status_code == 200, known.text
    assert known.json()["station"]["station_id"] == AIR_STATION
    assert unknown.status_code == 404
    assert "cas-air-nowhere" in unknown.json()["detail"]


async def test_healthz_is_ok_once_producer_and_status_feed_are_ready_and_503_before(
    client: httpx.AsyncClient, env_api: EnvironmentApi
) -> None:
    ready = await client.get("/healthz")
    # A feed still reading its backlog: a fresh, unset event (clearing the live one would race
    # with the feed loop, which sets it again on its next poll).
    live_event = env_api.runtime.status_feed_ready
    env_api.runtime.status_feed_ready = asyncio.Event()
    try:
        catching_up = await client.get("/healthz")
    finally:
        env_api.runtime.status_feed_ready = live_event

    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "producer": "ok", "status_feed": "ok"}
    assert catching_up.status_code == 503
    assert catching_up.json()["status_feed"] == "starting"


def produced_total(metrics_text: str, topic: str) -> float:
    match = re.search(rf'^madina_bus_records_produced_total{{topic="{re.escape(topic)}"}} (\S+)$',
                      metrics_text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_metrics_count_one_produced_record_per_station_batch(
    client: httpx.AsyncClient, env_api: EnvironmentApi, moment: datetime
) -> None:
    before = produced_total((await client.get("/metrics")).text, AIR_QUALITY.name)
    body = {"observations": [_air(moment, pm25_ugm3=1.0), _air(moment, pm25_ugm3=2.0),
                             {**_air(moment, pm25_ugm3=3.0), "station_id": OTHER_AIR_STATION}]}
    accepted = await client.post("/v1/air-quality", json=body, headers=bearer(env_api.publisher_token))
    metrics = await client.get("/metrics")

    assert accepted.status_code == 202, accepted.text
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert produced_total(metrics.text, AIR_QUALITY.name) - before == 2


def references(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if "$ref" in node else []
        return own + [r for value in node.values() for r in references(value)]
    if isinstance(node, list):
        return [r for value in node for r in references(value)]
    return []


async def test_openapi_documents_the_three_ingest_paths_and_every_schema_reference_resolves(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/openapi.json")

    assert response.status_code == 200
    document = response.json()
    for path, schema in [("/v1/air-quality", "AirQualityObservation"),
                         ("/v1/water-quality", "WaterQualityObservation"), ("/v1/noise", "NoiseObservation")]:
        operation = document["paths"][path]["post"]
        assert "202" in operation["responses"]
        body_schema = operation["requestBody"]["content"]["application/json"]["schema"]
        assert {"$ref": f"#/components/schemas/{schema}"} in body_schema["oneOf"]
    schemas = document.get("components", {}).get("schemas", {})
    dangling = sorted(
        {ref for ref in references(document) if ref.removeprefix("#/components/schemas/") not in schemas}
    )
    assert dangling == [], f"$refs with no schema in components: {dangling}"
    assert "pm25_ugm3" in schemas["AirQualityObservation"]["properties"]


async def test_a_deployment_serving_one_city_refuses_the_other_citys_stations(
    kafka_bootstrap: str, tmp_path: Path, moment: datetime
) -> None:
    async with running_environment_api(kafka_bootstrap, tmp_path, cities=["berkane"]) as api, serving_http(
        create_http_app(api.runtime)
    ) as base_url, httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        elsewhere = await http.post("/v1/air-quality", headers=bearer(api.publisher_token), json={
            "station_id": AIR_STATION, "observe_time": rfc3339(moment), "pm25_ugm3": 12.0})
        served = await http.post("/v1/air-quality", headers=bearer(api.publisher_token), json={
            "station_id": "brk-air-centre", "observe_time": rfc3339(moment), "pm25_ugm3": 12.0})
        listed = await http.get("/v1/stations", headers=bearer(api.reader_token))

    assert elsewhere.status_code == 422
    assert f"unknown station {AIR_STATION!r}" in elsewhere.text
    assert served.status_code == 202, served.text
    assert listed.status_code == 200
    ids = [s["station_id"] for s in listed.json()["stations"]]
    assert ids and all(station_id.startswith("brk-") for station_id in ids), ids
