"""The waste service's static world: containers, depots and trucks, loaded from the seed YAML.

Containers follow FIWARE's ``WasteContainer`` in spirit (a fill level 0..1, a stream, a volume),
with Madina's conventions: units in the field names (``volume_l``), ids as lowercase slugs, and a
district that ``madina.geo`` can draw. :func:`load_containers` and :func:`load_fleet` validate the
files and raise :class:`WasteDataError` naming the entity and field.

Truck capacity is in *loose litres*: the container volume a truck can empty into its body before it
must unload (body volume times its compaction ratio), the unit a container's ``fill_ratio *
volume_l`` is in, so planning adds like to like.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from madina.alerts import AlertDetails
from madina.geo import City, load_cities
from madina.yamlfile import parse_yaml

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
CONTAINERS_PATH = DATA_DIR / "containers.yaml"
FLEET_PATH = DATA_DIR / "fleet.yaml"
_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_DURATION = re.compile(r"^(\d+)(s|min|h)$")
_UNIT_SECONDS = {"s": 1, "min": 60, "h": 3600}


class WasteDataError(ValueError):
    """A seed file is malformed; the message names the file, entity and field."""


class Stream(StrEnum):
    """What a container collects; a truck serves some streams and never mixes the others in."""

    HOUSEHOLD = "household"
    GLASS = "glass"
    PAPER = "paper"
    PLASTIC = "plastic"


@dataclass(frozen=True)
class Container:
    """One street container with its fill sensor (the sensor reports under the container's id)."""

    id: str
    city: str
    district: str
    lat: float
    lon: float
    stream: Stream
    volume_l: int
    reporting_interval: timedelta

    def alert_details(self) -> AlertDetails:
        """What every alert about this container says about it."""
        return AlertDetails(
            source_kind="container", city_id=self.city, district_id=self.district, labels={"stream": self.stream.value}
        )


@dataclass(frozen=True)
class Depot:
    """Where trucks start and end a round (and unload)."""

    id: str
    name: str
    city: str
    lat: float
    lon: float


@dataclass(frozen=True)
class Truck:
    """A collection truck based at a depot, serving some streams, with a capacity in loose litres."""

    id: str
    depot: str
    streams: tuple[Stream, ...]
    capacity_l: int


@dataclass(frozen=True)
class Fleet:
    depots: tuple[Depot, ...]
    trucks: tuple[Truck, ...]

    def depot(self, depot_id: str) -> Depot:
        for depot in self.depots:
            if depot.id == depot_id:
                return depot
        raise KeyError(f"no depot {depot_id!r}")

    def trucks_at(self, depot_id: str) -> tuple[Truck, ...]:
        return tuple(truck for truck in self.trucks if truck.depot == depot_id)


def parse_interval(text: Any) -> timedelta:
    """``"1h"``, ``"30min"``, ``"90s"`` -> timedelta; ValueError otherwise."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"expected a duration such as '1h', '30min' or '90s', got {text!r}")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def load_containers(
    path: Path | None = None, cities: Mapping[str, City] | None = None, serving: Collection[str] = ()
) -> list[Container]:
    """Containers from ``path`` (default: the seed), validated; ``serving`` keeps those city ids."""
    source = path or CONTAINERS_PATH
    geography = cities if cities is not None else load_cities()
    document = _read(source, "containers")
    containers: list[Container] = []
    seen: set[str] = set()
    for raw in document["containers"]:
        container = _parse_container(source, raw, geography)
        if container.id in seen:
            raise WasteDataError(f"{source}: container {container.id!r} field 'id': defined twice")
        seen.add(container.id)
        containers.append(container)
    return [c for c in containers if c.city in serving] if serving else containers


def load_fleet(path: Path | None = None, cities: Mapping[str, City] | None = None) -> Fleet:
    """Depots and trucks from ``path`` (default: the seed), validated."""
    source = path or FLEET_PATH
    geography = cities if cities is not None else load_cities()
    document = _read(source, "depots")
    depots: list[Depot] = []
    for raw in document["depots"]:
        fields = _Fields(source, "depot", raw)
        city = fields.text("city")
        if city not in geography:
            raise fields.fail("city", f"unknown city {city!r}")
        lat, lon = fields.location()
        depot = Depot(id=fields.slug(), name=fields.text("name"), city=city, lat=lat, lon=lon)
        if any(d.id == depot.id for d in depots):
            raise fields.fail("id", "defined twice")
        depots.append(depot)
    trucks: list[Truck] = []
    if not isinstance(document.get("trucks"), list):
        raise WasteDataError(f"{source}: expected a 'trucks' list")
    for raw in document["trucks"]:
        fields = _Fields(source, "truck", raw)
        depot_id = fields.text("depot")
        if all(d.id != depot_id for d in depots):
            raise fields.fail("depot", f"unknown depot {depot_id!r}")
        streams_raw = raw.get("streams")
        if not isinstance(streams_raw, list) or not streams_raw:
            raise fields.fail("streams", "expected a non-empty list")
        try:
            streams = tuple(Stream(s) for s in streams_raw)
        except ValueError:
            raise fields.fail("streams", f"expected some of {', '.join(s.value for s in Stream)}") from None
        truck = Truck(id=fields.slug(), depot=depot_id, streams=streams, capacity_l=fields.positive_int("capacity_l"))
        if any(t.id == truck.id for t in trucks):
            raise fields.fail("id", "defined twice")
        trucks.append(truck)
    return Fleet(depots=tuple(depots), trucks=tuple(trucks))


def _read(source: Path, key: str) -> dict[str, Any]:
    try:
        document = parse_yaml(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise WasteDataError(f"{source}: cannot read: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get(key), list):
        raise WasteDataError(f"{source}: expected a mapping with a {key!r} list")
    return document


class _Fields:
    """Typed access to one entity's fields, failing with the file, entity and field named."""

    def __init__(self, source: Path, kind: str, raw: Any) -> None:
        if not isinstance(raw, dict):
            raise WasteDataError(f"{source}: each {kind} must be a mapping")
        self.raw = raw
        self.place = f"{source}: {kind} {raw.get('id', '?')!r}"

    def fail(self, field: str, problem: str) -> WasteDataError:
        return WasteDataError(f"{self.place} field {field!r}: {problem}")

    def text(self, field: str) -> str:
        value = self.raw.get(field)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(field, f"expected non-empty text, got {value!r}")
        return value.strip()

    def slug(self) -> str:
        value = self.text("id")
        if not _ID.match(value):
            raise self.fail("id", "expected a lowercase slug such as 'cas-anfa-h001'")
        return value

    def positive_int(self, field: str) -> int:
        value = self.raw.get(field)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise self.fail(field, f"expected a positive integer, got {value!r}")
        return value

    def location(self) -> tuple[float, float]:
        location = self.raw.get("location")
        if (
            not isinstance(location, list)
            or len(location) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in location)
            or not (-90 <= location[0] <= 90 and -180 <= location[1] <= 180)
        ):
            raise self.fail("location", f"expected [lat, lon] in degrees, got {location!r}")
        return float(location[0]), float(location[1])


def _parse_container(source: Path, raw: Any, cities: Mapping[str, City]) -> Container:
    fields = _Fields(source, "container", raw)
    container_id = fields.slug()
    city_id, district_id = fields.text("city"), fields.text("district")
    if city_id not in cities:
        raise fields.fail("city", f"unknown city {city_id!r} (known: {', '.join(sorted(cities))})")
    if all(d.id != district_id for d in cities[city_id].districts):
        raise fields.fail("district", f"{city_id} has no district {district_id!r}")
    lat, lon = fields.location()
    try:
        stream = Stream(fields.text("stream"))
    except ValueError:
        raise fields.fail("stream", f"expected one of {', '.join(s.value for s in Stream)}") from None
    try:
        interval = parse_interval(raw.get("reporting_interval"))
    except ValueError as exc:
        raise fields.fail("reporting_interval", str(exc)) from None
    if interval <= timedelta(0):
        raise fields.fail("reporting_interval", "must be positive")
    return Container(
        id=container_id,
        city=city_id,
        district=district_id,
        lat=lat,
        lon=lon,
        stream=stream,
        volume_l=fields.positive_int("volume_l"),
        reporting_interval=interval,
    )
