"""The partner AlertService over TLS (self-signed certificate): List, Get, Watch with resume,
AcknowledgeAlert through the bus, and per-agency scopes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest

from madina.bus import ALERTS, EventProducer
from madina_proto.alerts.v1 import alerts_pb2 as pb
from madina_proto.alerts.v1 import alerts_pb2_grpc as pb_grpc
from tests.support.operations import RunningService, alert_event, eventually, new_id, running_service
from tests.support.processes import BrokerProcess


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    directory = tmp_path_factory.mktemp("operations-grpc")
    broker = BrokerProcess.start(memory=True, default_partitions=2)
    try:
        with running_service(
            directory, broker.bootstrap, f"sqlite:///{directory / 'operations.db'}"
        ) as running:
            yield running
    finally:
        broker.stop()


@pytest.fixture
async def stub(service: RunningService) -> AsyncIterator[pb_grpc.AlertServiceStub]:
    credentials = grpc.ssl_channel_credentials(root_certificates=service.tls_cert)
    async with grpc.aio.secure_channel(service.grpc_target, credentials) as channel:
        yield pb_grpc.AlertServiceStub(channel)


@pytest.fixture
async def producer(service: RunningService) -> AsyncIterator[EventProducer]:
    async with EventProducer(service.settings.bootstrap_servers, source="test") as events:
        yield events


def _as(service: RunningService, principal: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {service.tokens[principal]}")]


async def _produce_and_wait(service: RunningService, producer: EventProducer, *events: pb.AlertEvent) -> None:
    for event in events:
        await producer.send_and_wait(ALERTS, event.alert_id, event)
    async with service.http() as client:

        async def all_in() -> bool:
            replies = [await client.get(f"/api/v1/alerts/{event.alert_id}") for event in events]
            return all(reply.status_code == 200 for reply in replies)

        await eventually(all_in)


async def test_list_filters_and_pages(
    service: RunningService, stub: pb_grpc.AlertServiceStub, producer: EventProducer
) -> None:
    domain = f"g{new_id('x')[-8:]}"
    ids = [new_id() for _ in range(5)]
    critical = new_id()
    await _produce_and_wait(
        service,
        producer,
        *(alert_event(i, domain=domain) for i in ids),
        alert_event(critical, domain=domain, severity=pb.SEVERITY_CRITICAL),
    )
    metadata = _as(service, "viewer")
    seen: list[str] = []
    token = ""
    while True:
        page = await stub.ListAlerts(
            pb.ListAlertsRequest(filter=pb.AlertFilter(domains=[domain]), page_size=4, page_token=token),
            metadata=metadata,
        )
        seen += [alert.latest.alert_id for alert in page.alerts]
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted([*ids, critical])
    worst = await stub.ListAlerts(
        pb.ListAlertsRequest(filter=pb.AlertFilter(domains=[domain], min_severity=pb.SEVERITY_CRITICAL)),
        metadata=metadata,
    )
    assert [alert.latest.alert_id for alert in worst.alerts] == [critical]
    assert worst.alerts[0].status == pb.ALERT_STATUS_ACTIVE_UNACKNOWLEDGED


@pytest.mark.parametrize(
    "request_",
    [
        pb.ListAlertsRequest(page_size=501),
        pb.ListAlertsRequest(page_size=-1),
        pb.ListAlertsRequest(page_token="junk"),
    ],
)
async def test_bad_list_request_is_invalid_argument(
    service: RunningService, stub: pb_grpc.AlertServiceStub, request_: pb.ListAlertsRequest
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.ListAlerts(request_, metadata=_as(service, "viewer"))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_get_returns_alert_with_history_or_not_found(
    service: RunningService, stub: pb_grpc.AlertServiceStub, producer: EventProducer
) -> None:
    alert_id = new_id()
    await _produce_and_wait(service, producer, alert_event(alert_id))
    reply = await stub.GetAlert(pb.GetAlertRequest(alert_id=alert_id), metadata=_as(service, "viewer"))
    assert reply.alert.latest.alert_id == alert_id
    assert [change.cause for change in reply.history] == ["event"]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetAlert(pb.GetAlertRequest(alert_id="missing"), metadata=_as(service, "viewer"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def _next_change(call: grpc.aio.UnaryStreamCall, timeout_s: float = 10.0) -> pb.AlertChange:
    async with asyncio.timeout(timeout_s):
        response = await call.read()
    assert response is not grpc.aio.EOF
    return response.change  # type: ignore[no-any-return]


async def test_watch_resumes_from_cursor_with_exactly_the_missed_changes(
    service: RunningService, stub: pb_grpc.AlertServiceStub, producer: EventProducer
) -> None:
    domain = f"w{new_id('x')[-8:]}"
    request = pb.WatchAlertsRequest(filter=pb.AlertFilter(domains=[domain]))
    watch = stub.WatchAlerts(request, metadata=_as(service, "partner"))
    await watch.initial_metadata()  # subscribed: nothing produced from now on can be missed
    first = new_id()
    await producer.send_and_wait(ALERTS, first, alert_event(first, domain=domain))
    seen = await _next_change(watch)
    assert seen.alert.latest.alert_id == first and seen.cause == "event"
    watch.cancel()

    missed = [new_id() for _ in range(3)]
    await _produce_and_wait(service, producer, *(alert_event(i, domain=domain) for i in missed))

    resumed = stub.WatchAlerts(
        pb.WatchAlertsRequest(filter=request.filter, resume_cursor=seen.cursor),
        metadata=_as(service, "partner"),
    )
    replayed = [await _next_change(resumed) for _ in missed]
    assert [change.alert.latest.alert_id for change in replayed] == missed
    assert [int(change.cursor) for change in replayed] == sorted(int(change.cursor) for change in replayed)
    # Exactly those three: nothing else arrives (a cancelled read would end the call, so wait aside).
    pending = asyncio.ensure_future(resumed.read())
    done, _ = await asyncio.wait({pending}, timeout=0.5)
    assert not done
    live = new_id()
    await producer.send_and_wait(ALERTS, live, alert_event(live, domain=domain))
    response = await asyncio.wait_for(pending, 10)
    assert response.change.alert.latest.alert_id == live
    resumed.cancel()


@pytest.mark.parametrize("cursor", ["abc", "-1", "999999999"])
async def test_watch_with_an_invalid_cursor_is_invalid_argument(
    service: RunningService, stub: pb_grpc.AlertServiceStub, cursor: str
) -> None:
    call = stub.WatchAlerts(pb.WatchAlertsRequest(resume_cursor=cursor), metadata=_as(service, "viewer"))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call.read()
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_acknowledge_publishes_an_action_as_the_agency(
    service: RunningService, stub: pb_grpc.AlertServiceStub, producer: EventProducer
) -> None:
    alert_id = new_id()
    await _produce_and_wait(service, producer, alert_event(alert_id))
    reply = await stub.AcknowledgeAlert(
        pb.AcknowledgeAlertRequest(alert_id=alert_id, note="on our way"), metadata=_as(service, "partner")
    )
    assert reply.action.actor == "partner" and reply.action.action_type == pb.ALERT_ACTION_TYPE_ACKNOWLEDGE
    assert reply.action.action_id and reply.action.text == "on our way"
    alert = (
        await stub.GetAlert(pb.GetAlertRequest(alert_id=alert_id), metadata=_as(service, "viewer"))
    ).alert
    assert alert.status == pb.ALERT_STATUS_ACTIVE_ACKNOWLEDGED and alert.acknowledged_by == "partner"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.AcknowledgeAlert(
            pb.AcknowledgeAlertRequest(alert_id="missing"), metadata=_as(service, "partner")
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_scopes_and_tokens_are_enforced(
    service: RunningService, stub: pb_grpc.AlertServiceStub
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.AcknowledgeAlert(pb.AcknowledgeAlertRequest(alert_id="x"), metadata=_as(service, "viewer"))
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.ListAlerts(pb.ListAlertsRequest())
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.ListAlerts(pb.ListAlertsRequest(), metadata=[("authorization", "Bearer wrong")])
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    watch = stub.WatchAlerts(pb.WatchAlertsRequest(), metadata=_as(service, "nobody"))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await watch.read()
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_plaintext_clients_are_refused(service: RunningService) -> None:
    async with grpc.aio.insecure_channel(service.grpc_target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await pb_grpc.AlertServiceStub(channel).ListAlerts(
                pb.ListAlertsRequest(), metadata=_as(service, "viewer"), timeout=3
            )
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
