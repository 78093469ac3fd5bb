"""Server-Sent Events over real HTTP: live delivery, resume by Last-Event-ID, filters, auth,
heartbeats, and a slow watcher never holding the others back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest

from madina.bus import ALERTS, EventProducer
from services.operations.api.hub import ChangeHub, WatcherTooSlow
from services.operations.domain import AlertFilter, Change, open_alert
from services.operations.store import AlertStore, event_from_message, migrate
from tests.support.operations import RunningService, alert_event, eventually, new_id, running_service
from tests.support.processes import BrokerProcess


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    directory = tmp_path_factory.mktemp("operations-sse")
    broker = BrokerProcess.start(memory=True, default_partitions=2)
    try:
        with running_service(
            directory,
            broker.bootstrap,
            f"sqlite:///{directory / 'operations.db'}",
            operations_sse_heartbeat_s=0.5,
        ) as running:
            yield running
    finally:
        broker.stop()


@pytest.fixture
async def producer(service: RunningService) -> AsyncIterator[EventProducer]:
    async with EventProducer(service.settings.bootstrap_servers, source="test") as events:
        yield events


@dataclass
class ServerSentEvent:
    event: str
    id: str | None
    data: str

    @property
    def json(self) -> dict:
        return json.loads(self.data)  # type: ignore[no-any-return]


class SseClient:
    """A minimal EventSource: reads ``event:``/``id:``/``data:`` blocks from a streaming response."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, kinds: tuple[str, ...] = ("alert",), timeout_s: float = 10.0) -> ServerSentEvent:
        async with asyncio.timeout(timeout_s):
            while True:
                fields: dict[str, str] = {}
                async for line in self._lines:
                    if not line:
                        if fields:
                            break
                        continue
                    if line.startswith(":"):
                        continue
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
                else:
                    raise EOFError("stream ended")
                event = ServerSentEvent(
                    fields.get("event", "message"), fields.get("id"), fields.get("data", "")
                )
                if event.event in kinds:
                    return event


async def _open(
    client: httpx.AsyncClient, opened: list, headers: dict[str, str] | None = None, **params: str
) -> SseClient:
    request = client.build_request("GET", "/api/v1/stream", params=params, headers=headers)
    response = await client.send(request, stream=True)
    opened.append(response)
    assert response.status_code == 200, await response.aread()
    assert response.headers["content-type"].startswith("text/event-stream")
    return SseClient(response)


@pytest.fixture
async def streams(service: RunningService) -> AsyncIterator[tuple[httpx.AsyncClient, list]]:
    opened: list[httpx.Response] = []
    async with service.http(None, timeout=httpx.Timeout(10, read=30)) as client:
        yield client, opened
        for response in opened:
            await response.aclose()


async def test_alert_on_the_bus_reaches_a_connected_client(
    service: RunningService, streams: tuple[httpx.AsyncClient, list], producer: EventProducer
) -> None:
    client, opened = streams
    domain = f"sse{new_id('x')[-8:]}"
    sse = await _open(client, opened, access_token=service.tokens["viewer"], domain=domain)
    alert_id = new_id()
    await producer.send_and_wait(ALERTS, alert_id, alert_event(alert_id, domain=domain))
    event = await sse.next()
    assert event.event == "alert"
    assert event.id == event.json["cursor"]
    assert event.json["cause"] == "event"
    assert event.json["alert"]["alert_id"] == alert_id
    assert event.json["alert"]["status"] == "active_unacknowledged"


async def test_bearer_header_works_too_and_filters_apply(
    service: RunningService, streams: tuple[httpx.AsyncClient, list], producer: EventProducer
) -> None:
    client, opened = streams
    domain = f"sse{new_id('x')[-8:]}"
    sse = await _open(client, opened, service.auth("viewer"), domain=domain, min_severity="critical")
    minor, critical = new_id(), new_id()
    await producer.send_and_wait(ALERTS, minor, alert_event(minor, domain=domain, severity=3))
    await producer.send_and_wait(ALERTS, critical, alert_event(critical, domain=domain, severity=5))
    assert (await sse.next()).json["alert"]["alert_id"] == critical


async def test_reconnect_with_last_event_id_misses_nothing(
    service: RunningService, streams: tuple[httpx.AsyncClient, list], producer: EventProducer
) -> None:
    client, opened = streams
    domain = f"sse{new_id('x')[-8:]}"
    token = service.tokens["viewer"]
    first = await _open(client, opened, access_token=token, domain=domain)
    before = new_id()
    await producer.send_and_wait(ALERTS, before, alert_event(before, domain=domain))
    seen = await first.next()
    await opened.pop().aclose()

    missed = [new_id() for _ in range(3)]
    for alert_id in missed:
        await producer.send_and_wait(ALERTS, alert_id, alert_event(alert_id, domain=domain))
    async with service.http("viewer") as rest:

        async def all_applied() -> bool:
            body = (await rest.get("/api/v1/alerts", params={"domain": domain})).json()
            return len(body["alerts"]) == 4

        await eventually(all_applied)

    resumed = await _open(client, opened, {"Last-Event-ID": seen.id or ""}, access_token=token, domain=domain)
    replayed = [(await resumed.next()).json["alert"]["alert_id"] for _ in missed]
    assert replayed == missed
    after = new_id()
    await producer.send_and_wait(ALERTS, after, alert_event(after, domain=domain))
    assert (await resumed.next()).json["alert"]["alert_id"] == after  # then live, with nothing doubled


async def test_heartbeats_keep_an_idle_stream_alive(
    service: RunningService, streams: tuple[httpx.AsyncClient, list]
) -> None:
    client, opened = streams
    sse = await _open(client, opened, access_token=service.tokens["viewer"], domain="nothing-happens-here")
    heartbeat = await sse.next(kinds=("heartbeat",), timeout_s=5)
    assert "cursor" in heartbeat.json


async def test_stream_needs_a_reader_token(service: RunningService) -> None:
    async with service.http(None) as client:
        assert (await client.get("/api/v1/stream")).status_code == 401
        assert (await client.get("/api/v1/stream", params={"access_token": "wrong"})).status_code == 401
        denied = await client.get("/api/v1/stream", params={"access_token": service.tokens["nobody"]})
        assert denied.status_code == 403
        bad = await client.get(
            "/api/v1/stream",
            params={"access_token": service.tokens["viewer"]},
            headers={"Last-Event-ID": "not-a-cursor"},
        )
        assert bad.status_code == 422


async def test_a_slow_watcher_is_cut_off_without_holding_back_the_others(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    migrate(url)
    store = AlertStore(url)
    hub = ChangeHub(store, queue_size=3)
    await hub.start()
    slow = hub.subscribe(AlertFilter())
    fast = hub.subscribe(AlertFilter(), maxsize=100)
    view = open_alert(event_from_message(alert_event("a-1")))
    changes = [
        Change(seq=n, cause="event", alert=view, occurred_time=datetime.now(UTC)) for n in range(1, 11)
    ]
    await hub.publish(changes)
    assert [(await fast.get(0)).seq for _ in range(10)] == list(range(1, 11))  # type: ignore[union-attr]
    assert slow.overflowed and hub.watchers == 1
    # It learns at once that it must reconnect; it re-reads from its last cursor, so dropping
    # what it had not taken loses nothing.
    with pytest.raises(WatcherTooSlow):
        await slow.get(0)
    with pytest.raises(WatcherTooSlow):
        await slow.get(0)
    store.close()
