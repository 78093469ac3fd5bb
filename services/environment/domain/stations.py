"""Environment station metadata: where each station is, what it measures, how often it reports.

Seed data lives in ``services/environment/data/stations.yaml``; :func:`load_stations` validates
it against the measurand catalogue and the shared city geography (``madina.geo``), so a station
can only name a district the dashboard can draw.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from madina.alerts import AlertDetails
from madina.geo import City, load_cities
from madina.yamlfile import parse_yaml
from services.environment.domain.durations import parse_duration
from services.environment.domain.measurands import MEASURANDS, StationKind

STATIONS_PATH = Path(__file__).resolve().parent.parent / "data" / "stations.yaml"
_STATION_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


class StationDataError(ValueError):
    """The station file is malformed; the message names the station and field."""


@dataclass(frozen=True)
class Station:
    id: str
    name: str
    city: str
    district: str
    lat: float
    lon: float
    kinds: tuple[StationKind, ...]
    measurands: tuple[str, ...]
    reporting_interval: timedelta
    timezone: str = "UTC"
    """IANA zone of the station's city: calendar days and years are counted in it."""

    def alert_details(self) -> AlertDetails:
        """What every alert from this station says about it."""
        return AlertDetails(
            source_kind="station", city_id=self.city, district_id=self.district, labels={"station_name": self.name}
        )


def load_stations(
    path: Path | None = None, cities: Mapping[str, City] | None = None, serving: Collection[str] = ()
) -> list[Station]:
    """Stations from ``path`` (default: the seed file), validated; raises :class:`StationDataError`.

    ``serving`` keeps only the stations of those city ids (a deployment serves its own city;
    empty keeps all). Every station is validated either way.
    """
    source = path or STATIONS_PATH
    geography = cities if cities is not None else load_cities()
    try:
        document = parse_yaml(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise StationDataError(f"{source}: cannot read stations: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("stations"), list):
        raise StationDataError(f"{source}: expected a mapping with a 'stations' list")
    stations: list[Station] = []
    seen: set[str] = set()
    for raw in document["stations"]:
        station = _parse_station(source, raw, geography)
        if station.id in seen:
            raise StationDataError(f"{source}: station {station.id!r} field 'id': defined twice")
        seen.add(station.id)
        stations.append(station)
    if serving:
        return [station for station in stations if station.city in serving]
    return stations


def _parse_station(source: Path, raw: Any, cities: Mapping[str, City]) -> Station:
    if not isinstance(raw, dict):
        raise StationDataError(f"{source}: each station must be a mapping")
    place = f"{source}: station {raw.get('id', '?')!r}"

    def fail(field: str, problem: str) -> StationDataError:
        return StationDataError(f"{place} field {field!r}: {problem}")

    def text(field: str) -> str:
        value = raw.get(field)
        if not isinstance(value, str) or not value.strip():
            raise fail(field, f"expected non-empty text, got {value!r}")
        return value.strip()

    station_id = text("id")
    if not _STATION_ID.match(station_id):
        raise fail("id", "expected a lowercase slug such as 'cas-air-anfa'")
    city_id, district_id = text("city"), text("district")
    if city_id not in cities:
        raise fail("city", f"unknown city {city_id!r} (known: {', '.join(sorted(cities))})")
    if all(d.id != district_id for d in cities[city_id].districts):
        known = ", ".join(d.id for d in cities[city_id].districts)
        raise fail("district", f"{city_id} has no district {district_id!r} (known: {known})")
    location = raw.get("location")
    if (
        not isinstance(location, list)
        or len(location) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in location)
        or not (-90 <= location[0] <= 90 and -180 <= location[1] <= 180)
    ):
        raise fail("location", f"expected [lat, lon] in degrees, got {location!r}")
    kinds_raw = raw.get("kinds")
    if not isinstance(kinds_raw, list) or not kinds_raw:
        raise fail("kinds", "expected a non-empty list")
    try:
        kinds = tuple(StationKind(k) for k in kinds_raw)
    except ValueError:
        raise fail("kinds", f"expected some of {', '.join(k.value for k in StationKind)}") from None
    measurands_raw = raw.get("measurands")
    if not isinstance(measurands_raw, list) or not measurands_raw:
        raise fail("measurands", "expected a non-empty list")
    for name in measurands_raw:
        if name not in MEASURANDS:
            raise fail("measurands", f"unknown measurand {name!r}")
        if MEASURANDS[name].kind not in kinds:
            kind_name = MEASURANDS[name].kind.value
            raise fail("measurands", f"{name} is a {kind_name} measurand but kinds are {kinds_raw}")
    for kind in kinds:
        if not any(MEASURANDS[name].kind is kind for name in measurands_raw):
            raise fail("kinds", f"kind {kind.value!r} has no measurand")
    try:
        interval = parse_duration(raw.get("reporting_interval"))
    except ValueError as exc:
        raise fail("reporting_interval", str(exc)) from None
    if interval <= timedelta(0):
        raise fail("reporting_interval", "must be positive")
    return Station(
        id=station_id,
        name=text("name"),
        city=city_id,
        district=district_id,
        lat=float(location[0]),
        lon=float(location[1]),
        kinds=kinds,
        measurands=tuple(measurands_raw),
        reporting_interval=interval,
        timezone=cities[city_id].timezone,
    )
