"""The Containers and Collection routes map layers, fed the records the processor and planner make."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import pytest

from madina.bus.alert_events import timestamp
from madina.maplayers import Level
from madina_proto.waste.v1 import container_pb2, plan_pb2
from services.waste import maplayers
from services.waste.convert import batches_by_container, plan_to_pb
from services.waste.domain.containers import Stream, Truck, load_containers, load_fleet
from services.waste.domain.detector import DetectionConfig
from services.waste.domain.planning import ContainerForecast, plan_collection
from services.waste.domain.readings import Reading
from services.waste.maplayers import collection_route_features, container_features
from services.waste.plugin import DOMAIN
from services.waste.processor.container_stream import StoredState, apply_batch, apply_tick
from services.waste.topics import CONTAINER_LEVELS, CONTAINER_STATUS

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
(CONTAINER,) = [c for c in load_containers() if c.id == "brk-centre-ville-h001"]


def _statuses(
    fill: float, minutes: int = 30, **channels: float
) -> tuple[StoredState, container_pb2.ContainerStatusChanged]:
    """The processor's status after readings every 10 min for ``minutes``, all alike."""
    stored, config, status = StoredState.new(CONTAINER.id), DetectionConfig(), None
    for minute in range(0, minutes + 1, 10):
        (batch,) = batches_by_container([Reading(CONTAINER.id, T0 + timedelta(minutes=minute), fill, **channels)])
        step = apply_batch(stored, batch, CONTAINER, config, None, CONTAINER_LEVELS)
        stored = step.state
        status = next((m for spec, _, m in step.records if spec is CONTAINER_STATUS), status)
    assert status is not None
    return stored, status


@pytest.mark.parametrize(("fill", "channels", "level", "text"), [
    (0.40, {}, Level.OK, "40 % full"),
    (0.75, {}, Level.WATCH, "75 % full"),
    (0.82, {}, Level.WARNING, "82 % full"),
    (0.30, {"temperature_c": 75.0}, Level.CRITICAL, "fire risk, 30 % full"),
    (0.30, {"tilt_deg": 90.0}, Level.WARNING, "tipped over, 30 % full"),
])
def test_a_container_is_coloured_by_its_fill_and_its_active_alerts(
    fill: float, channels: dict[str, float], level: Level, text: str
) -> None:
    (feature,) = container_features(_statuses(fill, **channels)[1])
    assert (feature.level, feature.status) == (level, text)
    assert feature.feature_id == f"waste/container/{CONTAINER.id}"
    assert (feature.points, feature.city_id) == (((CONTAINER.lat, CONTAINER.lon),), "berkane")
    assert feature.observe_time == T0 + timedelta(minutes=30)


def test_a_silent_container_and_one_that_never_reported_are_unknown() -> None:
    stored, _ = _statuses(0.5)
    tick = container_pb2.ContainerClockTick(container_id=CONTAINER.id, tick_time=timestamp(T0 + timedelta(days=2)))
    step = apply_tick(stored, tick, CONTAINER, DetectionConfig())
    (silent,) = [m for spec, _, m in step.records if spec is CONTAINER_STATUS]
    (feature,) = container_features(silent)
    assert (feature.level, feature.status) == (Level.UNKNOWN, "silent, last 50 % full")
    never = container_pb2.ContainerStatusChanged()
    never.status.container.CopyFrom(silent.status.container)
    assert [(f.level, f.status) for f in container_features(never)] == [(Level.UNKNOWN, "no reading yet")]


def test_a_container_without_a_position_in_the_status_is_placed_from_the_registry_or_left_off() -> None:
    _, status = _statuses(0.4)
    status.status.container.ClearField("location")
    assert container_features(status)[0].points == ((CONTAINER.lat, CONTAINER.lon),)
    status.status.container.container_id = "not-a-container"
    assert container_features(status) == []


def _plan() -> plan_pb2.CollectionPlanned:
    """A copy of one real plan (planning takes a few seconds: made once)."""
    message = plan_pb2.CollectionPlanned()
    message.CopyFrom(_planned())
    return message


@cache
def _planned() -> plan_pb2.CollectionPlanned:
    fleet = load_fleet()
    depot = fleet.depot("cas-depot-ain-chock")
    containers = [c for c in load_containers() if c.district == "anfa" and c.stream is Stream.HOUSEHOLD][:4]
    plan = plan_collection(depot, [Truck("cas-ain-chock-h1", depot.id, (Stream.HOUSEHOLD,), 48_000)],
                           timedelta(hours=24), [ContainerForecast(c, 0.9) for c in containers], plan_time=T0)
    return plan_to_pb(plan)


def test_a_planned_route_is_a_line_from_the_depot_through_its_stops_in_order_and_back() -> None:
    message = _plan()
    depot = load_fleet().depot(message.depot_id)
    by_id = {c.id: c for c in load_containers()}
    (feature,) = collection_route_features(message)
    stops = [(by_id[c].lat, by_id[c].lon) for c in message.routes[0].container_ids]
    assert feature.points == ((depot.lat, depot.lon), *stops, (depot.lat, depot.lon))
    assert feature.is_line and feature.level is Level.OK and feature.city_id == "casablanca"
    assert feature.feature_id == "waste/collection-route/cas-ain-chock-h1"
    assert feature.label == "Truck cas-ain-chock-h1: 4 stops"
    assert feature.observe_time == T0 and feature.details["plan"] == message.plan_id


def test_a_route_whose_depot_and_stops_cannot_be_placed_is_left_off() -> None:
    message = _plan()
    message.depot_id = "no-such-depot"
    assert len(collection_route_features(message)[0].points) == 4  # the stops alone
    del message.routes[0].container_ids[1:]
    message.routes[0].container_ids[0] = "not-a-container"
    assert collection_route_features(message) == []


def test_every_declared_layer_loads_and_follows_a_waste_topic() -> None:
    assert [layer.name for layer in DOMAIN.map_layers] == ["Containers", "Collection routes"]
    for layer in DOMAIN.map_layers:
        assert layer.topic in DOMAIN.topics
        assert layer.topic.cleanup_policy == "compact", f"operations reads {layer.topic.name} whole at start"
    containers, routes = (layer.load() for layer in DOMAIN.map_layers)
    assert containers(_statuses(0.4)[1])[0].kind == "container"
    assert routes(_plan())[0].kind == "collection-route"


def test_routes_are_placed_from_the_citys_own_containers_and_fleet_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "containers.yaml").write_text(
        "containers:\n"
        "- {id: own-h1, city: berkane, district: centre-ville, location: [34.93, -2.33], stream: household,"
        " volume_l: 1100, reporting_interval: 1h}\n"
        "- {id: own-h2, city: berkane, district: centre-ville, location: [34.94, -2.34], stream: household,"
        " volume_l: 1100, reporting_interval: 1h}\n")
    (tmp_path / "fleet.yaml").write_text(
        "depots:\n- {id: own-depot, name: Own depot, city: berkane, location: [34.90, -2.30]}\n"
        "trucks:\n- {id: own-truck, depot: own-depot, streams: [household], capacity_l: 10000}\n")
    monkeypatch.setenv("MADINA_WASTE_CONTAINERS_FILE", str(tmp_path / "containers.yaml"))
    monkeypatch.setenv("MADINA_WASTE_FLEET_FILE", str(tmp_path / "fleet.yaml"))
    for cached in (maplayers._seed_files, maplayers._containers, maplayers._depots):
        monkeypatch.setattr(maplayers, cached.__name__, cache(cached.__wrapped__))
    message = plan_pb2.CollectionPlanned(depot_id="own-depot", routes=[
        plan_pb2.CollectionRoute(truck_id="own-truck", container_ids=["own-h2", "own-h1"])])
    (feature,) = collection_route_features(message)
    assert feature.points == ((34.90, -2.30), (34.94, -2.34), (34.93, -2.33), (34.90, -2.30))
    assert feature.details["depot"] == "Own depot"
