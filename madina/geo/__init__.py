"""City geography shared by every domain: cities, their districts and approximate outlines.

The data lives in ``madina/geo/cities.yaml`` so a city is added without touching code.
:func:`load_cities` validates it; :func:`district_at` places a point (a sensor, a bus stop) in
a district. Coordinates are WGS 84 ``(lat, lon)`` pairs throughout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from madina.yamlfile import parse_yaml

CITIES_PATH = Path(__file__).resolve().parent / "cities.yaml"

LatLon = tuple[float, float]


class GeoDataError(ValueError):
    """The geography file is malformed; the message names the city, district and field."""


@dataclass(frozen=True)
class District:
    id: str
    name: str
    center: LatLon
    polygon: tuple[LatLon, ...]

    def contains(self, lat: float, lon: float) -> bool:
        """Whether the point lies inside the district outline (even-odd ray casting)."""
        inside = False
        points = self.polygon
        for (lat_a, lon_a), (lat_b, lon_b) in zip(points, points[1:] + points[:1], strict=True):
            if (lat_a > lat) != (lat_b > lat):
                crossing_lon = lon_a + (lat - lat_a) * (lon_b - lon_a) / (lat_b - lat_a)
                if lon < crossing_lon:
                    inside = not inside
        return inside


@dataclass(frozen=True)
class City:
    id: str
    name: str
    country: str
    region: str
    timezone: str
    center: LatLon
    districts: tuple[District, ...]

    def district(self, district_id: str) -> District:
        for district in self.districts:
            if district.id == district_id:
                return district
        raise KeyError(f"city {self.id!r} has no district {district_id!r}")


def load_cities(path: Path | None = None) -> dict[str, City]:
    """Cities keyed by id from ``path`` (default: the built-in file); raises :class:`GeoDataError`."""
    source = path or CITIES_PATH
    try:
        document = parse_yaml(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise GeoDataError(f"{source}: cannot read cities: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("cities"), list):
        raise GeoDataError(f"{source}: expected a mapping with a 'cities' list")
    cities: dict[str, City] = {}
    for raw in document["cities"]:
        city = _parse_city(source, raw)
        if city.id in cities:
            raise GeoDataError(f"{source}: city {city.id!r} is defined twice")
        cities[city.id] = city
    return cities


@cache
def shared_cities() -> Mapping[str, City]:
    """The built-in cities, parsed once per process for the code that reads them per record or per
    request (parsing takes ~0.2 s); shared, so not to be changed."""
    return load_cities()


def district_at(city: City, lat: float, lon: float) -> District | None:
    """The first district of ``city`` whose outline contains the point, if any."""
    for district in city.districts:
        if district.contains(lat, lon):
            return district
    return None


def _parse_city(source: Path, raw: Any) -> City:
    if not isinstance(raw, dict):
        raise GeoDataError(f"{source}: each city must be a mapping")
    place = f"{source}: city {raw.get('id', '?')!r}"
    city_id = _text(place, raw, "id")
    districts_raw = raw.get("districts")
    if not isinstance(districts_raw, list) or not districts_raw:
        raise GeoDataError(f"{place} field 'districts': expected a non-empty list")
    districts: list[District] = []
    for item in districts_raw:
        if not isinstance(item, dict):
            raise GeoDataError(f"{place} field 'districts': each district must be a mapping")
        district_place = f"{place} district {item.get('id', '?')!r}"
        polygon_raw = item.get("polygon")
        if not isinstance(polygon_raw, list) or not 3 <= len(polygon_raw) <= 16:
            raise GeoDataError(f"{district_place} field 'polygon': expected 3 to 16 [lat, lon] points")
        district = District(
            id=_text(district_place, item, "id"),
            name=_text(district_place, item, "name"),
            center=_lat_lon(district_place, "center", item.get("center")),
            polygon=tuple(_lat_lon(district_place, "polygon", point) for point in polygon_raw),
        )
        if not district.contains(*district.center):
            raise GeoDataError(f"{district_place} field 'center': lies outside the district polygon")
        if any(existing.id == district.id for existing in districts):
            raise GeoDataError(f"{district_place} field 'id': duplicate district id")
        districts.append(district)
    return City(
        id=city_id,
        name=_text(place, raw, "name"),
        country=_text(place, raw, "country"),
        region=_text(place, raw, "region"),
        timezone=_text(place, raw, "timezone"),
        center=_lat_lon(place, "center", raw.get("center")),
        districts=tuple(districts),
    )


def _text(place: str, raw: dict[str, Any], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise GeoDataError(f"{place} field {key!r}: expected non-empty text, got {value!r}")
    return value.strip()


def _lat_lon(place: str, field: str, value: Any) -> LatLon:
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        or not (-90 <= value[0] <= 90 and -180 <= value[1] <= 180)
    ):
        raise GeoDataError(f"{place} field {field!r}: expected [lat, lon] in degrees, got {value!r}")
    return float(value[0]), float(value[1])
