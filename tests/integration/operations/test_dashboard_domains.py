"""The operations dashboard shows every domain in a real browser: buses coloured by delay,
containers by fill level, the latest planned collection route, street lamps by their circuit's
open alerts, and each domain's open alerts and KPIs (issues 12, 13 and 14, "In the living city").

Every record is built by the domain's own code, as its processor and API build it: the step each
domain's processor runs (``mobility_processor``'s, ``container_step``, ``circuit_stepper``) is fed
input records made the way its ingest or simulator makes them, and what each step publishes
(alerts, statuses, KPIs) goes on the real topics of a broker of the test's own; the waste plan is
made as the waste API's ``plan`` makes it. The operations service follows them with the map layers every installed
domain declares (``OperationsService`` without ``map_layers``: what ``madina service operations``
runs), and headless Chromium shows the dashboard of Berkane, where all three domains run.

What an operator sees is read from the page's DOM: the map is SVG, each domain feature an element
with ``data-feature-id`` and a colour class ``lv-<severity>`` (``mapfeatures.js``), the alert board
rows carry ``data-alert-id``, the indicator groups ``data-indicator-domain`` and ``data-kpi-id``.

Needs /usr/bin/chromium (``make system-deps``); skips and says so without it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message

from madina.bus import EventProducer, ensure_topics
from madina.bus.topics import ALERTS, KPIS, TopicSpec
from madina.maplayers import Level, MapFeature
from madina.streams.entities import EntityRecord, Step
from madina_proto.alerts.v1 import alerts_pb2
from madina_proto.waste.v1 import container_pb2
from services.energy.convert import batch_to_pb
from services.energy.domain.circuit import CircuitState
from services.energy.domain.sun import SunCalendar
from services.energy.maplayers import streetlight_features
from services.energy.processor.app import circuit_stepper
from services.energy.settings import EnergyProcessorSettings
from services.energy.simulator import LightingWorld
from services.energy.topics import CIRCUIT_STATUS, STREETLIGHT_TELEMETRY
from services.mobility.api.publisher import route_batches
from services.mobility.domain.gtfs import load_feeds
from services.mobility.domain.realtime import VehiclePosition
from services.mobility.domain.servicedays import TripKey, run_of
from services.mobility.maplayers import bus_features
from services.mobility.processor.app import mobility_processor
from services.mobility.settings import MobilityProcessorSettings
from services.mobility.topics import ROUTE_STATUS, VEHICLE_POSITIONS
from services.operations.api.maplayers import discovered_layers
from services.waste.convert import batches_by_container, forecast_from_status, plan_to_pb
from services.waste.domain.containers import Stream, load_containers, load_fleet
from services.waste.domain.detector import DetectionConfig
from services.waste.domain.planning import catchment, plan_collection
from services.waste.domain.readings import Reading
from services.waste.maplayers import collection_route_features, container_features
from services.waste.processor.container_stream import StoredState, container_step
from services.waste.settings import WasteProcessorSettings
from services.waste.topics import CONTAINER_LEVELS, CONTAINER_STATUS, LATEST_COLLECTION_PLANS
from tests.integration.mobility.morning import service_day
from tests.support.operations import RunningService, eventually, running_service

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
CITY = "berkane"
SETTLE_S = 20.0
# mapfeatures.js LEVEL_SEVERITY: the colour class a level is drawn with (unknown: "none").
COLOUR_CLASS = {Level.CRITICAL: "lv-critical", Level.WARNING: "lv-major", Level.WATCH: "lv-warning",
                Level.OK: "lv-info", Level.UNKNOWN: "lv-none"}

# Whose KPIs the indicators pane is checked for: every domain's (energy's keyed
# "<kpi_id>-<period>/<entity id>" since its kpis.v1 keys were fixed to the topic's contract).
KPI_DOMAINS = ("mobility", "waste", "energy")

pytestmark = pytest.mark.browser

Record = tuple[TopicSpec, str, Message]


@pytest.fixture
def kafka_bootstrap(broker: str) -> str:
    """This test's own broker: the service reads alerts.v1, kpis.v1 and the layers' topics from the
    start, and other tests' buses, containers and alerts on the session broker would show too."""
    return broker


@dataclass
class DomainOutputs:
    """What one domain's processor (and planner) published, and what the test expects to see of it."""

    records: list[Record] = field(default_factory=list)
    features: dict[str, MapFeature] = field(default_factory=dict)  # the map layer's verdict, by feature id
    open_alert_ids: set[str] = field(default_factory=set)
    kpi_ids: set[str] = field(default_factory=set)

    def add_alerts(self, events: Iterable[alerts_pb2.AlertEvent]) -> None:
        for event in events:
            self.records.append((ALERTS, event.alert_id, event))  # keyed as the runner sends them
            if event.state == alerts_pb2.ALERT_STATE_CLEARED:
                self.open_alert_ids.discard(event.alert_id)
            else:
                self.open_alert_ids.add(event.alert_id)

    def add_records(self, records: Iterable[Record]) -> None:
        for spec, key, message in records:
            self.records.append((spec, key, message))
            if spec is KPIS:  # not a KpiObserved of a domain's own topic (energy's history)
                self.kpi_ids.add(message.kpi_id)

    def latest(self, spec: TopicSpec) -> dict[str, Any]:
        """The newest record per key of one topic, as a compacted topic keeps it."""
        return {key: message for out_spec, key, message in self.records if out_spec is spec}


def run_step(step: Callable[[Any, EntityRecord], Step[Any]], new_state: Callable[[str], Any],
             inputs: Sequence[Record], now: datetime) -> DomainOutputs:
    """A processor's step fed ``inputs`` in order, one entity at a time, as the entity runner feeds
    it; each step's alerts, then its records, in the order the runner publishes them."""
    outputs = DomainOutputs()
    states: dict[str, Any] = {}
    for spec, key, message in inputs:
        result = step(states[key] if key in states else new_state(key), EntityRecord(key, spec, message, now))
        assert not result.rejected, result.rejected
        states[key] = result.state
        outputs.add_alerts(result.alerts)
        outputs.add_records(result.records)
    return outputs


# ---- mobility: a late bus and an on-time bus on Berkane's line 1 ------------------------------

LATE_BUS, ON_TIME_BUS = "BK-E01", "BK-E02"


def mobility_outputs() -> DomainOutputs:
    """Two buses' AVL fixes at stops, as the ingest keys them by route: on trip 1-0700 about 7 min
    behind its timetable (a trip-delay alert after two fixes), on trip 1-0720 on time."""
    settings = MobilityProcessorSettings()
    plan = load_feeds(settings.mobility_gtfs_feeds)
    day = service_day().strftime("%Y%m%d")
    late, on_time = (run_of(plan, TripKey(trip_id, day)) for trip_id in ("1-0700", "1-0720"))
    assert late is not None and on_time is not None
    inputs: list[Record] = []
    # (report time, the late bus's stop index, the on-time bus's stop index)
    for at, late_stop, on_time_stop in ((on_time.start, 5, 0), (on_time.start + timedelta(minutes=4), 6, 1),
                                        (on_time.start + timedelta(minutes=6, seconds=30), 7, 2)):
        positions = []
        for vehicle_id, run, index in ((LATE_BUS, late, late_stop), (ON_TIME_BUS, on_time, on_time_stop)):
            stop = plan.stops[run.trip.stop_times[index].stop_id]
            positions.append(VehiclePosition(vehicle_id, stop.lat, stop.lon, at, trip_id=run.trip.trip_id,
                                             start_date=day))
        inputs += [(VEHICLE_POSITIONS, route_id, batch)
                   for route_id, batch in route_batches(plan, positions=positions).positions.items()]
    processor = mobility_processor(settings)
    outputs = run_step(processor.step, processor.new_state, inputs, on_time.start + timedelta(minutes=8))
    for status in outputs.latest(ROUTE_STATUS).values():
        outputs.features.update((f.feature_id, f) for f in bus_features(status))
    return outputs


# ---- waste: two full containers and an empty one, and the depot's planned round -----------------

WASTE_FILLS = (0.92, 0.90, 0.08)


def waste_outputs() -> DomainOutputs:
    """Three household containers of one Berkane district reporting every 10 min for 30 min, and the
    round of their depot planned from their statuses as the waste API plans it."""
    settings = WasteProcessorSettings()
    # As waste_processor builds its step (the registry parsed once here: it takes seconds).
    containers = {c.id: c for c in load_containers(settings.waste_containers_file, serving=[CITY])}
    household = [c for c in containers.values() if c.stream is Stream.HOUSEHOLD]
    chosen = [c for c in household if c.district == household[0].district][:len(WASTE_FILLS)]
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    readings = [Reading(container.id, start + timedelta(minutes=minute), fill)
                for minute in range(0, 31, 10) for container, fill in zip(chosen, WASTE_FILLS, strict=True)]
    inputs: list[Record] = [(CONTAINER_LEVELS, batch.container_id, batch)
                            for reading in readings for batch in batches_by_container([reading])]
    step = container_step(containers, DetectionConfig(event_time_bounds=settings.event_time_bounds()))
    outputs = run_step(step, StoredState.new, inputs, start + timedelta(minutes=31))
    statuses: dict[str, container_pb2.ContainerStatusChanged] = outputs.latest(CONTAINER_STATUS)
    for status in statuses.values():
        outputs.features.update((f.feature_id, f) for f in container_features(status))

    fleet = load_fleet()
    (depot,) = [d for d in fleet.depots if d.city == CITY]
    plan_time = start + timedelta(minutes=31)
    served = {c.id: c for c in catchment(depot, fleet.depots, fleet.trucks, chosen)}
    forecasts = [forecast for container_id, status in statuses.items() if container_id in served
                 if (forecast := forecast_from_status(status.status, served[container_id], plan_time)) is not None]
    plan = plan_to_pb(plan_collection(depot, fleet.trucks_at(depot.id), timedelta(hours=24), forecasts,
                                      plan_time=plan_time, time_limit=timedelta(seconds=2)))  # two stops
    outputs.add_records([(LATEST_COLLECTION_PLANS, depot.id, plan)])
    outputs.features.update((f.feature_id, f) for f in collection_route_features(plan))
    return outputs


# ---- energy: a Berkane circuit at night with one failed lamp ----------------------------------

CIRCUIT = "brk-cab-01-c1"
NIGHT = datetime(2026, 11, 20, 21, 30, tzinfo=UTC)  # 22:30 in Berkane


def energy_outputs() -> DomainOutputs:
    """The simulator's lamps of one circuit reporting every 5 min for 1 h 50 min (the 22:00 UTC hour
    closes: its kWh KPIs), one lamp failed from the start (a lamp-out alert)."""
    settings = EnergyProcessorSettings(cities=[CITY], energy_tick_interval_s=3600)
    network = settings.network()
    circuit = network.circuits[CIRCUIT]
    world = LightingWorld(network, [circuit], random.Random(13), failures=False)
    world.fail_lamp(circuit.lamp_ids[2])
    moments = [NIGHT + timedelta(minutes=5 * n) for n in range(23)]
    inputs: list[Record] = [(STREETLIGHT_TELEMETRY, CIRCUIT, batch_to_pb(CIRCUIT, world.circuit_reports(circuit, at)))
                            for at in moments]
    # As circuit_processor builds its step (the network parsed once here: it takes seconds).
    step = circuit_stepper(network, settings.config(), SunCalendar())
    outputs = run_step(step, CircuitState.new, inputs, moments[-1] + timedelta(minutes=1))
    for status in outputs.latest(CIRCUIT_STATUS).values():
        outputs.features.update((f.feature_id, f) for f in streetlight_features(status))
    return outputs


# ---- the service and the browser ------------------------------------------------------------


def dashboard_records(records: Iterable[Record]) -> list[Record]:
    """The records of the topics operations follows (alerts, KPIs, every installed layer's topic);
    the rest (the processors' other outputs) nothing on the dashboard reads."""
    followed = {ALERTS.name, KPIS.name, *(layer.layer.topic.name for layer in discovered_layers())}
    return [record for record in records if record[0].name in followed]


async def publish(bootstrap: str, records: Sequence[Record]) -> None:
    await ensure_topics(bootstrap, list({spec.name: spec for spec, _, _ in records}.values()), default_partitions=2)
    async with EventProducer(bootstrap, source="dashboard-test") as producer:
        for spec, key, message in records:
            await producer.send_and_wait(spec, key, message)


async def served(service: RunningService, features: set[str], alert_ids: set[str], kpi_ids: set[str]) -> None:
    """Wait until the service has read every record: the dashboard polls the map every 5 s and the
    KPIs every 10 s, so the page then shows them on its first load."""

    async def caught_up() -> bool:
        async with service.http("viewer") as http:
            shown = (await http.get("/api/v1/map/features", params={"city": CITY})).json()["features"]
            indicators = (await http.get("/api/v1/kpis")).json()["indicators"]
            active = (await http.get("/api/v1/alerts", params={"state": "active", "limit": 100})).json()["alerts"]
        return (features <= {f["feature_id"] for f in shown} and kpi_ids <= {i["kpi_id"] for i in indicators}
                and alert_ids <= {a["alert_id"] for a in active})

    await eventually(caught_up, timeout_s=SETTLE_S, interval_s=0.2)


@dataclass
class Seen:
    """What the page shows: map features (id -> (element, its classes, computed colour, line vertices)),
    the alert board's rows, the indicator groups (KPI ids) per domain and the strip's active alerts
    per domain."""

    features: dict[str, tuple[str, str, str, int]]
    alert_rows: set[str]
    indicators: dict[str, set[str]]
    active_per_domain: dict[str, str]


async def dashboard(url: str, token: str, features: set[str], alert_ids: set[str],
                    kpi_domains: set[str]) -> Seen:
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1600, "height": 1000})
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(str(error)))
            await page.add_init_script(f"localStorage.setItem('madina.operations.city', '{CITY}')")
            await page.goto(f"{url}/#token={token}")
            wanted = [f"#city-map [data-feature-id='{feature_id}']" for feature_id in sorted(features)]
            wanted += [f"#alert-board tr[data-alert-id='{alert_id}']" for alert_id in sorted(alert_ids)]
            wanted += [f"#pane-indicators [data-indicator-domain='{domain}']" for domain in sorted(kpi_domains)]
            for selector in wanted:
                await expect(page.locator(selector)).to_have_count(1, timeout=SETTLE_S * 1000)
            drawn = await page.locator("#city-map [data-feature-id]").evaluate_all(
                """elements => elements.map(e => [e.dataset.featureId, e.tagName.toLowerCase(),
                    e.getAttribute('class'), getComputedStyle(e).color,
                    (e.getAttribute('points') || '').trim().split(/\\s+/).filter(Boolean).length])""")
            rows = await page.locator("#alert-board tr[data-alert-id]").evaluate_all(
                "rows => rows.map(row => row.dataset.alertId)")
            groups = await page.locator("#pane-indicators [data-indicator-domain] [data-kpi-id]").evaluate_all(
                """groups => groups.map(g => [g.closest('[data-indicator-domain]').dataset.indicatorDomain,
                                             g.dataset.kpiId])""")
            strip = await page.locator("#kpi-strip [data-kpi-domain]").evaluate_all(
                "cards => cards.map(c => [c.dataset.kpiDomain, c.querySelector('.kpi-value').textContent])")
            assert problems == []
        finally:
            await browser.close()
    indicators: dict[str, set[str]] = {}
    for domain, kpi_id in groups:
        indicators.setdefault(domain, set()).add(kpi_id)
    return Seen({fid: (tag, cls, colour, n) for fid, tag, cls, colour, n in drawn}, set(rows), indicators,
                dict(strip))


def test_dashboard_shows_each_domain_on_the_map_by_level_with_its_alerts_and_kpis(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent; install it with `make system-deps` (apt-get install chromium)")
    domains = {"mobility": mobility_outputs(), "waste": waste_outputs(), "energy": energy_outputs()}
    records = dashboard_records(record for outputs in domains.values() for record in outputs.records)
    features = {fid: f for outputs in domains.values() for fid, f in outputs.features.items()}
    alert_ids = {alert_id for outputs in domains.values() for alert_id in outputs.open_alert_ids}
    kpi_ids = {kpi_id for domain in KPI_DOMAINS for kpi_id in domains[domain].kpi_ids}
    asyncio.run(publish(kafka_bootstrap, records))
    with running_service(tmp_path, kafka_bootstrap, f"sqlite:///{tmp_path / 'operations.db'}") as service:
        asyncio.run(served(service, set(features), alert_ids, kpi_ids))
        seen = asyncio.run(dashboard(service.http_url, service.tokens["viewer"], set(features), alert_ids,
                                     set(KPI_DOMAINS)))

    # The map: every feature the domains' layers make of the records, in its level's colour.
    levels = {fid: [c for c in cls.split() if c.startswith("lv-")] for fid, (_, cls, _, _) in seen.features.items()}
    assert {fid: levels.get(fid) for fid in features} == {fid: [COLOUR_CLASS[f.level]] for fid, f in features.items()}
    colour = {fid: drawn[2] for fid, drawn in seen.features.items()}

    # Buses by delay: the late one at the trip-delay level, the on-time one OK, in other colours.
    late, on_time = features[f"mobility/bus/{LATE_BUS}"], features[f"mobility/bus/{ON_TIME_BUS}"]
    assert (late.level, on_time.level) == (Level.WARNING, Level.OK), (late.status, on_time.status)
    assert colour[late.feature_id] != colour[on_time.feature_id]

    # Containers by fill: full ones WARNING, the empty one OK, in other colours.
    containers = sorted((f for f in features.values() if f.kind == "container"), key=lambda f: f.status)
    empty, full = containers[0], containers[-1]
    assert (empty.level, full.level) == (Level.OK, Level.WARNING), (empty.status, full.status)
    assert colour[empty.feature_id] != colour[full.feature_id]

    # The planned round: a line from the depot through its stops and back.
    (route,) = [f for f in features.values() if f.kind == "collection-route"]
    tag, _, _, vertices = seen.features[route.feature_id]
    assert (tag, vertices) == ("polyline", len(route.points)) and vertices >= 4

    # Lamps by their circuit's open alerts: the failed lamp in its lamp-out alert's colour, the rest OK.
    lamps = {f.feature_id: f for f in features.values() if f.kind == "streetlight"}
    faulty = [f for f in lamps.values() if f.level is not Level.OK]
    assert [(f.level, f.status) for f in faulty] == [(Level.WARNING, "lamp out (0 W drawn)")]
    assert {colour[fid] for fid in lamps if fid != faulty[0].feature_id} != {colour[faulty[0].feature_id]}
    assert len({colour[fid] for fid in lamps}) == 2

    # Every domain's open alerts on the board and in the strip's count; KPIs in the indicators pane.
    assert alert_ids <= seen.alert_rows
    for domain, outputs in domains.items():
        assert outputs.open_alert_ids and outputs.kpi_ids, domain
        assert seen.active_per_domain.get(domain) == str(len(outputs.open_alert_ids)), seen.active_per_domain
    for domain in KPI_DOMAINS:
        assert domains[domain].kpi_ids <= seen.indicators.get(domain, set()), (domain, seen.indicators)
