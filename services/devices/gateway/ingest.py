"""Each domain's ingest as the gateway calls it: the domain's own parsing, checks and publisher.

Nothing here validates a reading. A direct device's body, or a decoded uplink turned into one
item of the same shape, goes through exactly what the domain's HTTP handler runs, the public
ingest of ``services/<domain>/api/publisher.py``: its ``parse_*`` function (the ingest model and
the ``check_*`` rules, errors naming the field) and its ``publish*`` function (one record per
entity, acks=all). Environment readings are also checked for lateness against each station's
newest observation, from the status feed the gateway follows as the environment API does
(:class:`services.environment.api.state.StationStatusFeed`). The gateway adds one rule of its
own, the device registry's: a device reports only for its own entity.

Each :class:`DomainIngest` turns one message into domain readings (:meth:`DomainIngest.prepare`,
which raises ValueError naming the field) and publishes many messages' readings at once
(:meth:`DomainIngest.publish`), so a burst of small MQTT messages becomes few Kafka records.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from madina.bus import EventProducer
from madina.bus.topics import TopicSpec
from madina.settings import load_settings
from services.devices.domain.registry import DeviceEntry, DeviceRefused


@dataclass
class DomainData:
    """Each domain's entities and settings, loaded from the same files and settings as its API, on first use."""

    cities: Sequence[str] = ()

    @cached_property
    def environment(self) -> Any:
        from services.environment.settings import EnvironmentProcessorSettings

        return load_settings(EnvironmentProcessorSettings)

    @cached_property
    def stations(self) -> Mapping[str, Any]:
        from services.environment.domain.stations import load_stations

        return {s.id: s for s in load_stations(self.environment.environment_stations_file, serving=self.cities)}

    @cached_property
    def station_status(self) -> Any:
        """Each station's status as the environment status feed reports it (the lateness check's newest
        observation); empty until :meth:`StationStatusFeed.follow` runs, as the gateway's start-up does."""
        from services.environment.api.state import StationStatusFeed

        return StationStatusFeed(self.stations)

    @cached_property
    def waste(self) -> Any:
        from services.waste.settings import WasteProcessorSettings

        return load_settings(WasteProcessorSettings)

    @cached_property
    def containers(self) -> Mapping[str, Any]:
        from services.waste.domain.containers import load_containers

        return {c.id: c for c in load_containers(self.waste.waste_containers_file, serving=self.cities)}

    @cached_property
    def car_parks(self) -> Mapping[str, Any]:
        from services.mobility.domain.parking import load_car_parks
        from services.mobility.settings import MobilityProcessorSettings

        return load_car_parks(load_settings(MobilityProcessorSettings).mobility_car_parks_file)

    @cached_property
    def network(self) -> Any:
        from services.energy.settings import EnergyProcessorSettings

        return load_settings(EnergyProcessorSettings).network()


@dataclass(frozen=True, eq=False)  # hashed by identity: one per (domain, kind)
class DomainIngest:
    domain: str
    kind: str  # as in the direct topic, e.g. air-quality (the HTTP path's last part)
    topic: TopicSpec  # where accepted readings go (documentation, health)
    entity_field: str  # the ingest item's field naming the entity
    entity_of: Callable[[Any], str]
    parse: Callable[[DomainData, Any, int, datetime], list[Any]]  # body -> checked domain readings
    send: Callable[[DomainData, EventProducer, list[Any]], Awaitable[int]]
    loads: Sequence[str] = field(default=())  # DomainData attributes to load at start-up

    def prepare(self, data: DomainData, device: DeviceEntry, body: Any, max_items: int, now: datetime) -> list[Any]:
        readings = self.parse(data, body, max_items, now)
        for reading in readings:
            if self.entity_of(reading) != device.entity_id:
                raise DeviceRefused(
                    f"{self.entity_field}: device {device.device_id} reports for {device.entity_id}, "
                    f"not {self.entity_of(reading)[:64]}")
        return readings

    async def publish(self, data: DomainData, producer: EventProducer, readings: list[Any]) -> int:
        return await self.send(data, producer, readings) if readings else 0


def _environment(kind_path: str) -> DomainIngest:
    from services.environment.api.publisher import PATHS, check_observation, parse_observations, publish
    from services.environment.topics import TOPIC_OF

    kind = next(k for k, path in PATHS.items() if path == kind_path)

    def parse(data: DomainData, body: Any, max_items: int, now: datetime) -> list[Any]:
        observations = parse_observations(kind, body, max_items)
        batched = isinstance(body, dict) and "observations" in body
        bounds = data.environment.event_time_bounds()
        for index, observation in enumerate(observations):
            check_observation(observation, data.stations, f"observations[{index}]" if batched else "", now, bounds,
                              newest_observed=data.station_status.last_observe_time(observation.station_id))
        return observations

    async def send(data: DomainData, producer: EventProducer, readings: list[Any]) -> int:
        return await publish(producer, readings)

    return DomainIngest("environment", kind_path, TOPIC_OF[kind], "station_id", lambda o: o.station_id, parse, send,
                        ("stations", "station_status"))


def _waste() -> DomainIngest:
    from services.waste.api.publisher import parse_readings, publish
    from services.waste.topics import CONTAINER_LEVELS

    def parse(data: DomainData, body: Any, max_items: int, now: datetime) -> list[Any]:
        return parse_readings(body, data.containers, max_items, now, data.waste.event_time_bounds())

    async def send(data: DomainData, producer: EventProducer, readings: list[Any]) -> int:
        return await publish(producer, readings)

    return DomainIngest("waste", "container-level", CONTAINER_LEVELS, "container_id", lambda r: r.container_id,
                        parse, send, ("containers",))


def _streetlight() -> DomainIngest:
    from services.energy.api.publisher import parse_lamp_reports, publish_lamp_reports
    from services.energy.topics import STREETLIGHT_TELEMETRY

    def parse(data: DomainData, body: Any, max_items: int, now: datetime) -> list[Any]:
        return parse_lamp_reports(body, data.network, max_items)

    async def send(data: DomainData, producer: EventProducer, readings: list[Any]) -> int:
        return await publish_lamp_reports(producer, data.network, readings)

    return DomainIngest("energy", "streetlight", STREETLIGHT_TELEMETRY, "lamp_id", lambda r: r.lamp_id, parse, send,
                        ("network",))


def _generation() -> DomainIngest:
    from services.energy.api.publisher import parse_generation, publish_generation
    from services.energy.topics import GENERATION

    def parse(data: DomainData, body: Any, max_items: int, now: datetime) -> list[Any]:
        return parse_generation(body, data.network, max_items)

    async def send(data: DomainData, producer: EventProducer, readings: list[Any]) -> int:
        return await publish_generation(producer, readings)

    return DomainIngest("energy", "generation", GENERATION, "site_id", lambda r: r.site_id, parse, send,
                        ("network",))


def _parking() -> DomainIngest:
    from services.mobility.api.publisher import ingest_parking, parse_parking
    from services.mobility.topics import PARKING_OCCUPANCY

    def parse(data: DomainData, body: Any, max_items: int, now: datetime) -> list[Any]:
        return parse_parking(body, dict(data.car_parks), max_items)

    async def send(data: DomainData, producer: EventProducer, readings: list[Any]) -> int:
        return await ingest_parking(producer, dict(data.car_parks), readings)

    return DomainIngest("mobility", "parking-occupancy", PARKING_OCCUPANCY, "car_park_id", lambda c: c.car_park_id,
                        parse, send, ("car_parks",))


def _all() -> dict[tuple[str, str], DomainIngest]:
    ingests = [_environment(path) for path in ("air-quality", "water-quality", "noise")]
    ingests += [_waste(), _streetlight(), _generation(), _parking()]
    return {(ingest.domain, ingest.kind): ingest for ingest in ingests}


INGESTS: Mapping[tuple[str, str], DomainIngest] = _all()


def kinds() -> dict[str, set[str]]:
    """Domain -> the kinds the gateway can ingest, for validating the registry."""
    out: dict[str, set[str]] = {}
    for domain, kind in INGESTS:
        out.setdefault(domain, set()).add(kind)
    return out
