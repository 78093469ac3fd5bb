"""Deterministic generator of the waste seed files in ``services/waste/data/``.

The seed is generated rather than typed so it is reproducible and easy to resize:
``python -m services.waste.seed`` rewrites ``containers.yaml`` and ``fleet.yaml`` from
:data:`SEED` and the district outlines in ``madina.geo``. Placement is uniform inside each
district outline (rejection sampling), coordinates rounded to 1e-5 degrees (about a metre).

Stream mix and volumes follow Moroccan municipal practice: 1,100 L four-wheel bins for household
waste (street bins, the bulk of the fleet), 2,500 L glass banks and 3,000 L paper and plastic
igloos at drop-off points. Trucks: rear-loading compactors of about 16 m³ at 3:1 compaction
(48,000 loose litres) for household waste, 36,000 L for recyclables (lighter compaction), and an
uncompacted 30,000 L crane truck for glass.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from madina.geo import City, District, load_cities
from services.waste.domain.containers import CONTAINERS_PATH, FLEET_PATH, Container, Stream, parse_interval

SEED = 14
# (stream, share of a district's containers, volume_l)
STREAM_MIX: tuple[tuple[Stream, float, int], ...] = (
    (Stream.HOUSEHOLD, 0.64, 1100),
    (Stream.GLASS, 0.10, 2500),
    (Stream.PAPER, 0.13, 3000),
    (Stream.PLASTIC, 0.13, 3000),
)
CONTAINERS_PER_DISTRICT = {"berkane": 36, "casablanca": 45}
REPORTING_INTERVAL = "1h"
DEPOTS: tuple[dict[str, Any], ...] = (
    {"id": "brk-depot-zi", "name": "Berkane depot, Zone industrielle", "city": "berkane",
     "location": [34.9052, -2.3175]},
    {"id": "cas-depot-ain-sebaa", "name": "Casablanca east depot, Aïn Sebaâ", "city": "casablanca",
     "location": [33.6035, -7.5335]},
    {"id": "cas-depot-ain-chock", "name": "Casablanca south depot, Aïn Chock", "city": "casablanca",
     "location": [33.5335, -7.6075]},
)
# (depot, truck suffix, streams, capacity_l)
TRUCKS: tuple[tuple[str, str, tuple[Stream, ...], int], ...] = (
    ("brk-depot-zi", "h1", (Stream.HOUSEHOLD,), 48_000),
    ("brk-depot-zi", "h2", (Stream.HOUSEHOLD,), 48_000),
    ("brk-depot-zi", "g1", (Stream.GLASS,), 30_000),
    ("brk-depot-zi", "r1", (Stream.PAPER, Stream.PLASTIC), 36_000),
    ("cas-depot-ain-sebaa", "h1", (Stream.HOUSEHOLD,), 48_000),
    ("cas-depot-ain-sebaa", "h2", (Stream.HOUSEHOLD,), 48_000),
    ("cas-depot-ain-sebaa", "h3", (Stream.HOUSEHOLD,), 48_000),
    ("cas-depot-ain-sebaa", "g1", (Stream.GLASS,), 30_000),
    ("cas-depot-ain-sebaa", "r1", (Stream.PAPER, Stream.PLASTIC), 36_000),
    ("cas-depot-ain-chock", "h1", (Stream.HOUSEHOLD,), 48_000),
    ("cas-depot-ain-chock", "h2", (Stream.HOUSEHOLD,), 48_000),
    ("cas-depot-ain-chock", "h3", (Stream.HOUSEHOLD,), 48_000),
    ("cas-depot-ain-chock", "g1", (Stream.GLASS,), 30_000),
    ("cas-depot-ain-chock", "r1", (Stream.PAPER, Stream.PLASTIC), 36_000),
)
_CITY_PREFIX = {"berkane": "brk", "casablanca": "cas"}
_STREAM_LETTER = {Stream.HOUSEHOLD: "h", Stream.GLASS: "g", Stream.PAPER: "p", Stream.PLASTIC: "k"}


def point_in(district: District, rng: random.Random) -> tuple[float, float]:
    """A uniformly random point inside the district outline."""
    lats = [p[0] for p in district.polygon]
    lons = [p[1] for p in district.polygon]
    while True:
        lat, lon = rng.uniform(min(lats), max(lats)), rng.uniform(min(lons), max(lons))
        lat, lon = round(lat, 5), round(lon, 5)
        if district.contains(lat, lon):
            return lat, lon


def district_containers(city: City, district: District, count: int, rng: random.Random) -> list[Container]:
    """``count`` containers of ``district``, streams split by :data:`STREAM_MIX`."""
    containers: list[Container] = []
    prefix = f"{_CITY_PREFIX.get(city.id, city.id[:3])}-{district.id}"
    remaining = count
    for index, (stream, share, volume_l) in enumerate(STREAM_MIX):
        n = remaining if index == len(STREAM_MIX) - 1 else round(count * share)
        remaining -= n
        for number in range(1, n + 1):
            lat, lon = point_in(district, rng)
            containers.append(
                Container(
                    id=f"{prefix}-{_STREAM_LETTER[stream]}{number:03d}",
                    city=city.id,
                    district=district.id,
                    lat=lat,
                    lon=lon,
                    stream=stream,
                    volume_l=volume_l,
                    reporting_interval=parse_interval(REPORTING_INTERVAL),
                )
            )
    return containers


def generate_containers(cities: Iterable[City], per_district: dict[str, int], seed: int = SEED) -> list[Container]:
    rng = random.Random(seed)
    containers: list[Container] = []
    for city in cities:
        for district in city.districts:
            containers.extend(district_containers(city, district, per_district[city.id], rng))
    return containers


def _container_yaml(containers: Sequence[Container]) -> dict[str, Any]:
    return {
        "containers": [
            {
                "id": c.id,
                "city": c.city,
                "district": c.district,
                "location": [c.lat, c.lon],
                "stream": c.stream.value,
                "volume_l": c.volume_l,
                "reporting_interval": REPORTING_INTERVAL,
            }
            for c in containers
        ]
    }


def _fleet_yaml() -> dict[str, Any]:
    return {
        "depots": list(DEPOTS),
        "trucks": [
            {"id": f"{depot}-{suffix}".replace("-depot", ""), "depot": depot,
             "streams": [s.value for s in streams], "capacity_l": capacity}
            for depot, suffix, streams, capacity in TRUCKS
        ],
    }


class _Dumper(yaml.SafeDumper):
    """Block style, except short scalar lists (coordinates, streams) on one line."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(not isinstance(item, dict | list) for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)

_HEADER = (
    "# Generated by `python -m services.waste.seed` (deterministic, seed {seed}); edit the generator, not this file.\n"
    "# {what}\n"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=Path, default=CONTAINERS_PATH)
    parser.add_argument("--fleet", type=Path, default=FLEET_PATH)
    args = parser.parse_args()
    cities = load_cities()
    containers = generate_containers([cities[c] for c in CONTAINERS_PER_DISTRICT], CONTAINERS_PER_DISTRICT)
    what = ("Waste containers: city and district ids refer to madina/geo/cities.yaml, location is WGS 84 [lat, lon], "
            "volume_l in litres, reporting_interval drives data-gap alerts.")
    body = yaml.dump(_container_yaml(containers), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)
    args.containers.write_text(_HEADER.format(seed=SEED, what=what) + body, encoding="utf-8")
    what = "Depots and trucks; capacity_l is loose litres of container content (body volume x compaction ratio)."
    body = yaml.dump(_fleet_yaml(), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)
    args.fleet.write_text(_HEADER.format(seed=SEED, what=what) + body, encoding="utf-8")
    print(f"{len(containers)} containers -> {args.containers}; {len(TRUCKS)} trucks -> {args.fleet}")


if __name__ == "__main__":
    main()
