"""No request to the operations center gives a 5xx, an UNKNOWN, or an error echoing unbounded input,
and no silence an operator writes can stall it: over real HTTP and gRPC (TLS) servers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import grpc
import httpx
import pytest

from madina.bus import ALERTS, EventProducer
from madina_proto.alerts.v1 import alerts_pb2 as pb
from madina_proto.alerts.v1 import alerts_pb2_grpc as pb_grpc
from tests.support.operations import RunningService, alert_event, eventually, new_id, running_service
from tests.support.processes import BrokerProcess

MAX_BODY_BYTES = 4096
FAR_TIMES = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]
SHORT = 300  # no error message of ours is longer; the inputs below are far longer


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    directory = tmp_path_factory.mktemp("operations-hardening")
    broker = BrokerProcess.start(memory=True, default_partitions=2)
    try:
        with running_service(
            directory, broker.bootstrap, f"sqlite:///{directory / 'operations.db'}", max_body_bytes=MAX_BODY_BYTES
        ) as running:
            yield running
    finally:
        broker.stop()


@pytest.fixture
async def client(service: RunningService) -> AsyncIterator[httpx.AsyncClient]:
    async with service.http() as http:
        yield http


@pytest.fixture
async def channel(service: RunningService) -> AsyncIterator[grpc.aio.Channel]:
    credentials = grpc.ssl_channel_credentials(root_certificates=service.tls_cert)
    async with grpc.aio.secure_channel(service.grpc_target, credentials) as secure:
        yield secure


def _silence(**overrides: object) -> dict[str, object]:
    ends = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    return {"matchers": [{"name": "domain", "op": "=", "value": "nowhere"}], "ends_at": ends,
            "comment": "test", **overrides}


# -- HTTP ---------------------------------------------------------------------------------------


async def test_json_nested_a_thousand_levels_is_a_400(client: httpx.AsyncClient) -> None:
    reply = await client.post("/api/v1/silences", content=b"[" * 1000 + b"]" * 1000,
                              headers={"Content-Type": "application/json"})
    assert reply.status_code == 400, reply.text
    assert "nested" in reply.json()["detail"]


@pytest.mark.parametrize("moment", FAR_TIMES)
async def test_far_past_or_future_since_is_a_422_naming_it(client: httpx.AsyncClient, moment: str) -> None:
    reply = await client.get("/api/v1/alerts", params={"since": moment})
    assert reply.status_code == 422, reply.text
    assert "since" in reply.json()["detail"]


@pytest.mark.parametrize("field", ["starts_at", "ends_at"])
@pytest.mark.parametrize("moment", FAR_TIMES)
async def test_far_past_or_future_silence_window_is_a_422_naming_the_field(
    client: httpx.AsyncClient, field: str, moment: str
) -> None:
    reply = await client.post("/api/v1/silences", json=_silence(**{field: moment}))
    assert reply.status_code == 422, reply.text
    assert field in reply.json()["detail"]


@pytest.mark.parametrize("cursor", ["²", "١٢", "9" * 5000])
async def test_a_cursor_that_is_not_ascii_digits_is_a_422(client: httpx.AsyncClient, cursor: str) -> None:
    reply = await client.get("/api/v1/stream", params={"last_event_id": cursor})
    assert reply.status_code == 422, reply.text
    assert "Last-Event-ID" in reply.json()["detail"] and len(reply.text) < SHORT


async def test_body_over_the_limit_without_content_length_is_a_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b" " * 1024

    reply = await client.post("/api/v1/silences", content=chunks(), headers={"Content-Type": "application/json"})
    assert "content-length" not in reply.request.headers
    assert reply.status_code == 413, reply.text


async def test_not_found_does_not_echo_a_long_id(client: httpx.AsyncClient) -> None:
    long_id = "x" * 8000
    for reply in (await client.get(f"/api/v1/alerts/{long_id}"),
                  await client.post(f"/api/v1/alerts/{long_id}/ack"),
                  await client.delete(f"/api/v1/silences/{long_id}")):
        assert reply.status_code == 404, reply.text
        assert len(reply.text) < SHORT


async def test_page_token_error_does_not_echo_it(client: httpx.AsyncClient) -> None:
    reply = await client.get("/api/v1/alerts", params={"page_token": "!" * 3000})
    assert reply.status_code == 422 and "page_token" in reply.text and len(reply.text) < SHORT


@pytest.mark.parametrize("pattern", [r"(a)\1", "a(?=b)", "x" * 300])
async def test_silence_pattern_re2_cannot_run_is_a_422_naming_the_matcher(
    client: httpx.AsyncClient, pattern: str
) -> None:
    matchers = [{"name": "domain", "op": "=", "value": "x"}, {"name": "district", "op": "=~", "value": pattern}]
    reply = await client.post("/api/v1/silences", json=_silence(matchers=matchers))
    assert reply.status_code == 422, reply.text
    assert "matchers[1].value" in reply.json()["detail"]


async def test_a_pathological_silence_does_not_slow_listing(
    service: RunningService, client: httpx.AsyncClient
) -> None:
    domain = f"d{new_id('x')[-8:]}"
    ids = [new_id() for _ in range(5)]
    async with EventProducer(service.settings.bootstrap_servers, source="test") as producer:
        for alert_id in ids:
            await producer.send_and_wait(ALERTS, alert_id, alert_event(alert_id, domain=domain,
                                                                        labels={"circuit": "y" * 40}))

    async def all_in() -> bool:
        page = (await client.get("/api/v1/alerts", params={"domain": domain})).json()
        return len(page["alerts"]) == len(ids)

    await eventually(all_in)
    # Seven greedy groups: ~1 s per alert with Python's re, so ~5 s for this listing before RE2.
    matchers = [{"name": "circuit", "op": "=~", "value": "(.*)" * 7 + "x"}]
    assert (await client.post("/api/v1/silences", json=_silence(matchers=matchers))).status_code == 201
    started = time.perf_counter()
    reply = await client.get("/api/v1/alerts", params={"domain": domain})
    assert reply.status_code == 200
    assert time.perf_counter() - started < 1.0 + 0.05 * len(ids)


# -- gRPC ---------------------------------------------------------------------------------------


def _as(service: RunningService, principal: str = "operator") -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {service.tokens[principal]}")]


@pytest.mark.parametrize("cursor", ["²", "9" * 5000])
async def test_watch_with_a_bad_resume_cursor_is_invalid_argument(
    service: RunningService, channel: grpc.aio.Channel, cursor: str
) -> None:
    call = pb_grpc.AlertServiceStub(channel).WatchAlerts(
        pb.WatchAlertsRequest(resume_cursor=cursor), metadata=_as(service)
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for _ in call:
            pass
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "resume_cursor" in (raised.value.details() or "") and len(raised.value.details() or "") < SHORT


@pytest.mark.parametrize("method", ["GetAlert", "ListAlerts", "AcknowledgeAlert"])
async def test_undecodable_request_bytes_are_invalid_argument(
    service: RunningService, channel: grpc.aio.Channel, method: str
) -> None:
    call = channel.unary_unary(f"/madina.alerts.v1.AlertService/{method}",
                               request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call(b"\x0a\xff\xff\xff\xff\x0f", metadata=_as(service))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, raised.value.details()
    assert "not a valid" in (raised.value.details() or "")


async def test_undecodable_bytes_without_a_token_are_still_unauthenticated(channel: grpc.aio.Channel) -> None:
    call = channel.unary_unary("/madina.alerts.v1.AlertService/GetAlert",
                               request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call(b"\x0a\xff\xff\xff\xff\x0f")
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_not_found_does_not_echo_a_megabyte_alert_id(
    service: RunningService, channel: grpc.aio.Channel
) -> None:
    stub = pb_grpc.AlertServiceStub(channel)
    huge = "x" * 1_000_000
    for call in (stub.GetAlert(pb.GetAlertRequest(alert_id=huge), metadata=_as(service)),
                 stub.AcknowledgeAlert(pb.AcknowledgeAlertRequest(alert_id=huge), metadata=_as(service))):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        assert len(raised.value.details() or "") < SHORT


async def test_bad_page_token_is_invalid_argument_without_echo(
    service: RunningService, channel: grpc.aio.Channel
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await pb_grpc.AlertServiceStub(channel).ListAlerts(
            pb.ListAlertsRequest(page_token="!" * 100_000), metadata=_as(service)
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(raised.value.details() or "") < SHORT
