"""REST of the operations center over real HTTP: filters and paging, commands through the bus,
auth, silences, groups, KPIs, geography, OpenAPI and the dashboard files."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import make_url

from madina.bus import ALERTS, KPIS, EventProducer
from madina_proto.alerts.v1 import alerts_pb2
from madina_proto.common.v1 import common_pb2
from madina_proto.kpis.v1 import kpis_pb2
from services.operations.settings import OperationsSettings
from tests.support.operations import (
    RunningService,
    alert_event,
    eventually,
    new_id,
    running_service,
    timestamp,
    write_test_secrets,
)
from tests.support.processes import BrokerProcess


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    directory = tmp_path_factory.mktemp("operations-api")
    broker = BrokerProcess.start(memory=True, default_partitions=2)
    try:
        with running_service(
            directory, broker.bootstrap, f"sqlite:///{directory / 'operations.db'}", max_body_bytes=4096
        ) as running:
            yield running
    finally:
        broker.stop()


@pytest.fixture
async def client(service: RunningService) -> AsyncIterator[httpx.AsyncClient]:
    async with service.http() as http:
        yield http


@pytest.fixture
async def producer(service: RunningService) -> AsyncIterator[EventProducer]:
    async with EventProducer(service.settings.bootstrap_servers, source="test") as events:
        yield events


async def _produce_and_wait(
    producer: EventProducer, client: httpx.AsyncClient, *events: alerts_pb2.AlertEvent
) -> None:
    for event in events:
        await producer.send_and_wait(ALERTS, event.alert_id, event)

    async def all_in() -> bool:
        for event in events:
            reply = await client.get(f"/api/v1/alerts/{event.alert_id}")
            if reply.status_code != 200 or reply.json()["alert"]["revision"] < event.revision:
                return False
        return True

    await eventually(all_in)


async def test_alert_json_follows_the_contract(client: httpx.AsyncClient, producer: EventProducer) -> None:
    alert_id = new_id()
    await _produce_and_wait(producer, client, alert_event(alert_id, labels={"circuit": "C12"}))
    alert = (await client.get(f"/api/v1/alerts/{alert_id}")).json()["alert"]
    assert set(alert) == {
        "alert_id",
        "revision",
        "domain",
        "category",
        "rule_id",
        "source",
        "severity",
        "state",
        "status",
        "active",
        "observed_value",
        "threshold_value",
        "unit",
        "raise_time",
        "clear_time",
        "event_time",
        "message",
        "district",
        "location",
        "standard_reference",
        "labels",
        "acknowledged_by",
        "acknowledge_time",
        "assignee",
        "silenced",
        "group_key",
        "time_to_acknowledge_s",
        "time_to_clear_s",
        "comments",
    }
    assert alert["severity"] == "major" and alert["state"] == "raised"
    assert alert["status"] == "active_unacknowledged" and alert["active"] is True
    assert alert["district"] == {
        "city_id": "casablanca",
        "district_id": "ain-sebaa",
        "display_name": "Ain-Sebaa",
    }
    assert alert["location"] == {"lat": 33.6, "lon": -7.5}
    assert alert["source"] == {"domain": "environment", "kind": "station", "entity_id": "station-1"}
    assert alert["raise_time"].endswith("Z") and alert["clear_time"] is None
    assert alert["acknowledged_by"] is None and alert["assignee"] is None and alert["comments"] == []
    assert alert["labels"] == {"circuit": "C12"}


async def test_list_filters_by_state_domain_severity_district_and_since(
    client: httpx.AsyncClient, producer: EventProducer
) -> None:
    domain = f"d{new_id('x')[-8:]}"
    ids = {name: new_id(name) for name in ("minor", "critical", "cleared", "elsewhere")}
    await _produce_and_wait(
        producer,
        client,
        alert_event(ids["minor"], domain=domain, severity=alerts_pb2.SEVERITY_MINOR),
        alert_event(ids["critical"], domain=domain, severity=alerts_pb2.SEVERITY_CRITICAL),
        alert_event(ids["cleared"], domain=domain, state=alerts_pb2.ALERT_STATE_CLEARED),
        alert_event(ids["elsewhere"], domain=domain, district_id="anfa"),
    )

    async def listed(**params: str) -> set[str]:
        reply = await client.get("/api/v1/alerts", params={"domain": domain, **params})
        assert reply.status_code == 200, reply.text
        return {alert["alert_id"] for alert in reply.json()["alerts"]}

    assert await listed() == set(ids.values())
    assert await listed(state="active") == {ids["minor"], ids["critical"], ids["elsewhere"]}
    assert await listed(state="cleared") == {ids["cleared"]}
    assert await listed(min_severity="critical") == {ids["critical"]}
    assert await listed(district="anfa") == {ids["elsewhere"]}
    assert await listed(district="casablanca/anfa") == {ids["elsewhere"]}
    assert await listed(since=(datetime.now(UTC) + timedelta(hours=1)).isoformat()) == set()
    assert await listed(status="cleared_unacknowledged") == {ids["cleared"]}
    other = (await client.get("/api/v1/alerts", params={"domain": "no-such-domain"})).json()
    assert other == {"alerts": [], "next_page_token": None}


async def test_paging_visits_every_alert_once(client: httpx.AsyncClient, producer: EventProducer) -> None:
    domain = f"p{new_id('x')[-8:]}"
    ids = [new_id() for _ in range(7)]
    await _produce_and_wait(producer, client, *(alert_event(i, domain=domain) for i in ids))
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        params = {"domain": domain, "limit": "3", **({"page_token": token} if token else {})}
        body = (await client.get("/api/v1/alerts", params=params)).json()
        seen += [alert["alert_id"] for alert in body["alerts"]]
        pages += 1
        token = body["next_page_token"]
        if token is None:
            break
    assert pages == 3
    assert sorted(seen) == sorted(ids)


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"state": "open"}, "state"),
        ({"min_severity": "severe"}, "min_severity"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2025-01-01T00:00:00"}, "since"),
        ({"page_token": "garbage"}, "page_token"),
    ],
)
async def test_bad_query_is_422_naming_the_parameter(
    client: httpx.AsyncClient, params: dict[str, str], named: str
) -> None:
    reply = await client.get("/api/v1/alerts", params=params)
    assert reply.status_code == 422
    assert named in reply.json()["detail"]


async def test_commands_go_through_the_bus_and_answer_with_the_applied_alert(
    client: httpx.AsyncClient, producer: EventProducer
) -> None:
    alert_id = new_id()
    await _produce_and_wait(producer, client, alert_event(alert_id))

    ack = await client.post(f"/api/v1/alerts/{alert_id}/ack", json={})
    assert ack.status_code == 200, ack.text
    assert ack.json()["alert"]["status"] == "active_acknowledged"
    assert ack.json()["alert"]["time_to_acknowledge_s"] >= 0

    assign = await client.post(f"/api/v1/alerts/{alert_id}/assign", json={"assignee": "casa-env-oncall"})
    assert assign.json()["alert"]["assignee"] == "casa-env-oncall"

    comment = await client.post(f"/api/v1/alerts/{alert_id}/comment", json={"text": "crew on site"})
    assert [(c["actor"], c["text"]) for c in comment.json()["alert"]["comments"]] == [
        ("operator", "crew on site")
    ]

    resolve = await client.post(f"/api/v1/alerts/{alert_id}/resolve", json={"note": "filter replaced"})
    resolved = resolve.json()["alert"]
    assert resolved["status"] == "cleared_acknowledged" and resolved["active"] is False
    assert resolved["clear_time"] is not None

    detail = (await client.get(f"/api/v1/alerts/{alert_id}")).json()
    kinds = [(entry["kind"], entry["detail"].get("action_type")) for entry in detail["history"]]
    assert kinds == [
        ("event", None),
        ("action", "acknowledge"),
        ("action", "assign"),
        ("action", "comment"),
        ("action", "resolve"),
    ]
    assert {entry["detail"].get("action_id") for entry in detail["history"][1:]} == {
        ack.json()["action_id"],
        assign.json()["action_id"],
        comment.json()["action_id"],
        resolve.json()["action_id"],
    }
    assert detail["history"][1]["summary"] == "acknowledged by operator"


async def test_concurrent_commands_all_apply(client: httpx.AsyncClient, producer: EventProducer) -> None:
    alert_id = new_id()
    await _produce_and_wait(producer, client, alert_event(alert_id))
    replies = await asyncio.gather(
        *(client.post(f"/api/v1/alerts/{alert_id}/comment", json={"text": f"note {n}"}) for n in range(10))
    )
    assert [reply.status_code for reply in replies] == [200] * 10
    comments = (await client.get(f"/api/v1/alerts/{alert_id}")).json()["alert"]["comments"]
    assert sorted(c["text"] for c in comments) == sorted(f"note {n}" for n in range(10))


async def test_unknown_alert_is_404_for_reads_and_commands(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/alerts/nope")).status_code == 404
    assert (await client.post("/api/v1/alerts/nope/ack", json={})).status_code == 404


@pytest.mark.parametrize(
    ("path", "body", "named"),
    [
        ("assign", {}, "assignee"),
        ("assign", {"assignee": "   "}, "assignee"),
        ("assign", {"assignee": "x" * 201}, "assignee"),
        ("comment", {}, "text"),
        ("comment", {"text": ""}, "text"),
        ("comment", {"text": "x" * 501}, "text"),
        ("ack", {"note": 5}, "note"),
        ("resolve", {"bogus": 1}, "bogus"),
    ],
)
async def test_bad_command_body_is_422(client: httpx.AsyncClient, path: str, body: dict, named: str) -> None:
    reply = await client.post(f"/api/v1/alerts/any-alert/{path}", json=body)
    assert reply.status_code == 422
    assert named in reply.json()["detail"]


async def test_auth_denials(service: RunningService) -> None:
    async with service.http(None) as anonymous:
        assert (await anonymous.get("/api/v1/alerts")).status_code == 401
        assert (
            await anonymous.get("/api/v1/alerts", headers={"Authorization": "Bearer wrong"})
        ).status_code == 401
        assert (await anonymous.post("/api/v1/alerts/x/ack", json={})).status_code == 401
        viewer = service.auth("viewer")
        assert (await anonymous.get("/api/v1/alerts", headers=viewer)).status_code == 200
        denied = await anonymous.post("/api/v1/alerts/x/ack", json={}, headers=viewer)
        assert denied.status_code == 403 and "alerts:write" in denied.json()["detail"]
        assert (await anonymous.post("/api/v1/silences", json={}, headers=viewer)).status_code == 403
        nobody = service.auth("nobody")
        assert (await anonymous.get("/api/v1/kpis", headers=nobody)).status_code == 403
        too_large = await anonymous.post(
            "/api/v1/alerts/x/comment", headers=service.auth(), json={"text": "x" * 5000}
        )
        assert too_large.status_code == 413


async def test_silence_flags_matching_alerts_until_deleted(
    client: httpx.AsyncClient, producer: EventProducer
) -> None:
    domain = f"s{new_id('x')[-8:]}"
    muted, loud = new_id(), new_id()
    await _produce_and_wait(
        producer,
        client,
        alert_event(muted, domain=domain, district_id="maarif"),
        alert_event(loud, domain=domain, district_id="anfa"),
    )
    ends = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    created = await client.post(
        "/api/v1/silences",
        json={
            "matchers": [
                {"name": "domain", "op": "=", "value": domain},
                {"name": "district", "op": "=~", "value": "maa.*"},
            ],
            "ends_at": ends,
            "comment": "road works",
        },
    )
    assert created.status_code == 201, created.text
    silence = created.json()
    assert silence["created_by"] == "operator" and silence["active"] is True
    assert silence["matchers"][1] == {"name": "district", "op": "=~", "value": "maa.*"}
    listed = {
        alert["alert_id"]: alert["silenced"]
        for alert in (await client.get("/api/v1/alerts", params={"domain": domain})).json()["alerts"]
    }
    assert listed == {muted: True, loud: False}
    assert silence["silence_id"] in {
        s["silence_id"] for s in (await client.get("/api/v1/silences")).json()["silences"]
    }

    assert (await client.delete(f"/api/v1/silences/{silence['silence_id']}")).status_code == 204
    assert (await client.delete("/api/v1/silences/unknown")).status_code == 404
    after = (await client.get(f"/api/v1/alerts/{muted}")).json()["alert"]
    assert after["silenced"] is False


@pytest.mark.parametrize(
    "body",
    [
        {"matchers": [], "ends_at": "2099-01-01T00:00:00Z", "comment": "x"},
        {
            "matchers": [{"name": "domain", "op": "=~", "value": "("}],
            "ends_at": "2099-01-01T00:00:00Z",
            "comment": "x",
        },
        {
            "matchers": [{"name": "domain", "op": "=", "value": "a"}],
            "ends_at": "2001-01-01T00:00:00Z",
            "comment": "x",
        },
        {
            "matchers": [{"name": "domain", "op": "=", "value": "a"}],
            "ends_at": "2099-01-01T00:00:00Z",
            "comment": "",
        },
    ],
)
async def test_bad_silence_is_422(client: httpx.AsyncClient, body: dict) -> None:
    assert (await client.post("/api/v1/silences", json=body)).status_code == 422


async def test_groups_correlate_one_rule_in_one_district(
    client: httpx.AsyncClient, producer: EventProducer
) -> None:
    rule = f"rule-{new_id('x')[-8:]}"
    ids = [new_id() for _ in range(3)]
    await _produce_and_wait(
        producer,
        client,
        *(
            alert_event(alert_id, rule_id=rule, source_id=f"s{n}", severity=alerts_pb2.SEVERITY_MINOR + n % 2)
            for n, alert_id in enumerate(ids)
        ),
    )
    groups = [g for g in (await client.get("/api/v1/groups")).json()["groups"] if g["rule_id"] == rule]
    assert len(groups) == 1
    group = groups[0]
    assert sorted(group["alert_ids"]) == sorted(ids)
    assert group["active_count"] == 3 and group["max_severity"] == "major"
    assert group["district_id"] == "ain-sebaa" and group["domain"] == "environment"
    assert group["group_key"] == f"environment:{rule}:district=casablanca/ain-sebaa"


async def test_kpis_count_alerts_and_aggregate_indicators_per_district(
    client: httpx.AsyncClient, producer: EventProducer
) -> None:
    domain = f"k{new_id('x')[-8:]}"
    acked = new_id()
    await _produce_and_wait(
        producer,
        client,
        alert_event(acked, domain=domain),
        alert_event(new_id(), domain=domain, severity=alerts_pb2.SEVERITY_CRITICAL),
    )
    assert (await client.post(f"/api/v1/alerts/{acked}/ack", json={})).status_code == 200
    now = datetime.now(UTC)
    district = common_pb2.District(city_id="casablanca", district_id="anfa", display_name="Anfa")
    for station, value, band, level in (("st-a", 80.0, "Moderate", 2), ("st-b", 160.0, "Unhealthy", 4)):
        kpi = kpis_pb2.KpiObserved(
            domain=domain,
            kpi_id="aqi",
            display_name="Air Quality Index",
            district=district,
            entity=common_pb2.EntityRef(domain=domain, kind="station", entity_id=station),
            value=value,
            band=band,
            band_level=level,
            observe_time=timestamp(now),
        )
        await producer.send_and_wait(KPIS, f"aqi/{station}", kpi)

    async def indicators() -> list[dict] | None:
        body = (await client.get("/api/v1/kpis")).json()
        mine = [i for i in body["indicators"] if i["domain"] == domain]
        return mine if len(mine) == 3 else None

    rows = await eventually(indicators)
    aggregate = [row for row in rows if row["entity"] is None]
    assert len(aggregate) == 1
    assert (
        aggregate[0]["value"] == 160.0
        and aggregate[0]["band"] == "Unhealthy"
        and aggregate[0]["band_level"] == 4
    )
    assert aggregate[0]["district"]["district_id"] == "anfa"
    assert {row["entity"]["entity_id"] for row in rows if row["entity"]} == {"st-a", "st-b"}

    body = (await client.get("/api/v1/kpis")).json()
    counts = body["alerts"]["by_domain"][domain]
    assert counts == {"active": 2, "unacknowledged": 1, "by_severity": {"major": 1, "critical": 1}}
    assert body["alerts"]["median_time_to_acknowledge_s"] >= 0


async def test_geo_lists_cities_with_district_outlines(client: httpx.AsyncClient) -> None:
    cities = (await client.get("/api/v1/geo")).json()["cities"]
    assert cities
    district = cities[0]["districts"][0]
    assert set(cities[0]) == {"id", "name", "center", "districts"}
    assert set(district) == {"id", "name", "center", "polygon"}
    assert len(district["center"]) == 2 and len(district["polygon"][0]) == 2


async def test_openapi_docs_health_and_dashboard_are_served(service: RunningService) -> None:
    async with service.http(None) as anonymous:
        spec = (await anonymous.get("/openapi.json")).json()
        assert {"/api/v1/alerts", "/api/v1/alerts/{alert_id}/ack", "/api/v1/stream", "/api/v1/kpis"} <= set(
            spec["paths"]
        )
        assert (await anonymous.get("/docs")).status_code == 200
        health = await anonymous.get("/healthz")
        assert health.status_code == 200 and health.json()["consumer"] == "ok"
        index = await anonymous.get("/")
        assert index.status_code == 200 and "text/html" in index.headers["content-type"]
        from services.operations.web import STATIC_DIR

        asset = next(path for path in STATIC_DIR.rglob("*.js"))
        served = await anonymous.get(f"/static/{asset.relative_to(STATIC_DIR).as_posix()}")
        assert served.status_code == 200


def test_database_password_file_is_injected_into_the_url(tmp_path) -> None:
    credentials_file, _, cert, key = write_test_secrets(tmp_path)
    password_file = tmp_path / "db-password"
    password_file.write_text("s3cret/with:chars\n")
    settings = OperationsSettings(
        _env_file=None,  # type: ignore[call-arg]
        credentials_file=credentials_file,
        grpc_tls_cert_file=cert,
        grpc_tls_key_file=key,
        database_url="postgresql+psycopg://madina@db:5432/madina",
        database_password_file=password_file,
    )
    assert make_url(settings.database_url).password == "s3cret/with:chars"
    assert make_url(settings.database_url).username == "madina"
