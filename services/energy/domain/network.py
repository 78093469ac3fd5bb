"""The lighting network and PV sites: lamps, circuits, control cabinets, photovoltaic sites.

Names follow FIWARE's smart-city data models where they fit: a lamp is a ``Streetlight``
(``powerState``, ``illuminanceLevel`` = our dimming level, ``refStreetlightControlCabinet``), a
cabinet a ``StreetlightControlCabinet`` (it feeds one or more circuits, each a switched feeder
with its own contactor), and a PV site is what ``PhotovoltaicMeasurement`` reports on.

Seed data lives in ``services/energy/data/network.yaml`` (written by ``generate_network.py``);
:func:`load_network` validates it against the shared city geography (``madina.geo``), so every
entity names a district the dashboard can draw, and cross-checks every reference (a lamp's
circuit belongs to the lamp's cabinet, and so on).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from madina.alerts import AlertDetails
from madina.geo import City, load_cities
from madina.yamlfile import parse_yaml

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
NETWORK_PATH = DATA_DIR / "network.yaml"
_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


class NetworkDataError(ValueError):
    """The network file is malformed; the message names the entity and field."""


@dataclass(frozen=True, slots=True)
class Lamp:
    """One street light (FIWARE ``Streetlight``) and the lamp its LED retrofit replaced."""

    id: str
    city: str
    district: str
    cabinet: str
    circuit: str
    lat: float
    lon: float
    rated_power_w: float
    """Rated power of the LED luminaire at 100 % dimming level, driver included."""
    replaced_lamp_type: str
    """Technology of the pre-LED lamp, e.g. ``hps`` (high-pressure sodium), ``mh``, ``mv``."""
    replaced_power_w: float
    """System power of the pre-LED lamp (lamp plus ballast): the savings baseline."""

    def alert_details(self) -> AlertDetails:
        """What every alert about this lamp says about it."""
        return AlertDetails(
            source_kind="lamp", city_id=self.city, district_id=self.district,
            labels={"cabinet_id": self.cabinet, "circuit_id": self.circuit, "lamp_id": self.id},
        )


@dataclass(frozen=True, slots=True)
class Circuit:
    """A switched feeder of a cabinet; every lamp is on exactly one circuit."""

    id: str
    city: str
    district: str
    cabinet: str
    lamp_ids: tuple[str, ...]
    reporting_interval: timedelta
    """How often each lamp's controller reports; drives data-gap alerts."""

    def alert_details(self) -> AlertDetails:
        return AlertDetails(
            source_kind="circuit", city_id=self.city, district_id=self.district,
            labels={"cabinet_id": self.cabinet, "circuit_id": self.id},
        )


@dataclass(frozen=True, slots=True)
class Cabinet:
    """A street-light control cabinet (FIWARE ``StreetlightControlCabinet``)."""

    id: str
    name: str
    city: str
    district: str
    lat: float
    lon: float
    circuit_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PvSite:
    """A grid-tied photovoltaic installation and the geometry its expected output follows from."""

    id: str
    name: str
    city: str
    district: str
    lat: float
    lon: float
    altitude_m: float
    peak_power_kw: float
    """DC nameplate at standard test conditions (kWp)."""
    inverter_power_kw: float
    """AC nameplate of the inverters."""
    tilt_deg: float
    """Module tilt from horizontal."""
    azimuth_deg: float
    """Direction the modules face, degrees clockwise from north (180 = south)."""
    reporting_interval: timedelta

    def alert_details(self) -> AlertDetails:
        return AlertDetails(
            source_kind="pv-site", city_id=self.city, district_id=self.district,
            labels={"site_id": self.id, "site_name": self.name},
        )


@dataclass(frozen=True)
class Network:
    """Everything in the seed file, indexed by id."""

    lamps: Mapping[str, Lamp] = field(default_factory=dict)
    circuits: Mapping[str, Circuit] = field(default_factory=dict)
    cabinets: Mapping[str, Cabinet] = field(default_factory=dict)
    pv_sites: Mapping[str, PvSite] = field(default_factory=dict)
    timezones: Mapping[str, str] = field(default_factory=dict)
    """IANA time zone of each city id, from ``madina.geo``."""

    def circuits_in(self, city: str, district: str | None = None) -> list[Circuit]:
        """Circuits of a city (or one of its districts), in id order."""
        return sorted(
            (c for c in self.circuits.values() if c.city == city and (district is None or c.district == district)),
            key=lambda c: c.id,
        )

    def lamps_of(self, circuit_id: str) -> list[Lamp]:
        return [self.lamps[lamp_id] for lamp_id in self.circuits[circuit_id].lamp_ids]


def load_network(
    path: Path | None = None, cities: Mapping[str, City] | None = None, serving: Collection[str] = ()
) -> Network:
    """The network from ``path`` (default: the seed file), validated; raises :class:`NetworkDataError`.

    ``serving`` keeps only those city ids (empty keeps all); everything is validated either way.
    """
    source = path or NETWORK_PATH
    geography = cities if cities is not None else load_cities()
    try:
        document = parse_yaml(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise NetworkDataError(f"{source}: cannot read network: {exc}") from exc
    if not isinstance(document, dict):
        raise NetworkDataError(f"{source}: expected a mapping")
    parser = _Parser(source, geography)
    cabinets = parser.each(document, "cabinets", parser.cabinet)
    circuits_raw = parser.each(document, "circuits", parser.circuit_raw)
    lamps = parser.each(document, "lamps", parser.lamp)
    pv_sites = parser.each(document, "pv_sites", parser.pv_site)

    by_circuit: dict[str, list[str]] = {cid: [] for cid in circuits_raw}
    for lamp in lamps.values():
        circuit = circuits_raw.get(lamp.circuit)
        if circuit is None:
            raise NetworkDataError(f"{source}: lamp {lamp.id!r} field 'circuit': unknown circuit {lamp.circuit!r}")
        if circuit["cabinet"] != lamp.cabinet:
            raise NetworkDataError(
                f"{source}: lamp {lamp.id!r} field 'cabinet': circuit {lamp.circuit} belongs to {circuit['cabinet']}"
            )
        if (circuit["city"], circuit["district"]) != (lamp.city, lamp.district):
            raise NetworkDataError(f"{source}: lamp {lamp.id!r} field 'district': differs from its circuit's")
        by_circuit[lamp.circuit].append(lamp.id)
    circuits: dict[str, Circuit] = {}
    for cid, raw in circuits_raw.items():
        cabinet = cabinets.get(raw["cabinet"])
        if cabinet is None:
            raise NetworkDataError(f"{source}: circuit {cid!r} field 'cabinet': unknown cabinet {raw['cabinet']!r}")
        if (cabinet.city, cabinet.district) != (raw["city"], raw["district"]):
            raise NetworkDataError(f"{source}: circuit {cid!r} field 'district': differs from its cabinet's")
        if not by_circuit[cid]:
            raise NetworkDataError(f"{source}: circuit {cid!r} has no lamps")
        circuits[cid] = Circuit(lamp_ids=tuple(by_circuit[cid]), **raw)
    full_cabinets = {
        cab.id: Cabinet(
            id=cab.id, name=cab.name, city=cab.city, district=cab.district, lat=cab.lat, lon=cab.lon,
            circuit_ids=tuple(sorted(c.id for c in circuits.values() if c.cabinet == cab.id)),
        )
        for cab in cabinets.values()
    }
    timezones = {city.id: city.timezone for city in geography.values()}
    if serving:
        keep = set(serving)
        return Network(
            lamps={k: v for k, v in lamps.items() if v.city in keep},
            circuits={k: v for k, v in circuits.items() if v.city in keep},
            cabinets={k: v for k, v in full_cabinets.items() if v.city in keep},
            pv_sites={k: v for k, v in pv_sites.items() if v.city in keep},
            timezones=timezones,
        )
    return Network(lamps=lamps, circuits=circuits, cabinets=full_cabinets, pv_sites=pv_sites, timezones=timezones)


class _Parser:
    def __init__(self, source: Path, cities: Mapping[str, City]) -> None:
        self.source = source
        self.cities = cities

    def each(self, document: dict[str, Any], key: str, parse: Any) -> dict[str, Any]:
        items = document.get(key)
        if not isinstance(items, list):
            raise NetworkDataError(f"{self.source}: expected a {key!r} list")
        parsed: dict[str, Any] = {}
        for raw in items:
            if not isinstance(raw, dict):
                raise NetworkDataError(f"{self.source}: each of {key} must be a mapping")
            item = parse(_Fields(self.source, key.rstrip("s"), raw, self.cities))
            item_id = item["id"] if isinstance(item, dict) else item.id
            if item_id in parsed:
                raise NetworkDataError(f"{self.source}: {key.rstrip('s')} {item_id!r} field 'id': defined twice")
            parsed[item_id] = item
        return parsed

    @staticmethod
    def cabinet(f: _Fields) -> Cabinet:
        city, district = f.place()
        lat, lon = f.location()
        return Cabinet(id=f.ident(), name=f.text("name"), city=city, district=district, lat=lat, lon=lon,
                       circuit_ids=())

    @staticmethod
    def circuit_raw(f: _Fields) -> dict[str, Any]:
        city, district = f.place()
        return {
            "id": f.ident(), "city": city, "district": district, "cabinet": f.text("cabinet"),
            "reporting_interval": timedelta(seconds=f.number("reporting_interval_s", 1, 86_400)),
        }

    @staticmethod
    def lamp(f: _Fields) -> Lamp:
        city, district = f.place()
        lat, lon = f.location()
        replaced = f.raw.get("replaced")
        if not isinstance(replaced, dict):
            raise f.fail("replaced", "expected a mapping with type and power_w")
        rated = f.number("rated_power_w", 1, 2000)
        baseline = _Fields(f.source, f.kind, {"id": f.raw.get("id"), **replaced}, f.cities)
        return Lamp(
            id=f.ident(), city=city, district=district, cabinet=f.text("cabinet"), circuit=f.text("circuit"),
            lat=lat, lon=lon, rated_power_w=rated,
            replaced_lamp_type=baseline.text("type"), replaced_power_w=baseline.number("power_w", 1, 5000),
        )

    @staticmethod
    def pv_site(f: _Fields) -> PvSite:
        city, district = f.place()
        lat, lon = f.location()
        return PvSite(
            id=f.ident(), name=f.text("name"), city=city, district=district, lat=lat, lon=lon,
            altitude_m=f.number("altitude_m", -500, 9000),
            peak_power_kw=f.number("peak_power_kw", 0.1, 1_000_000),
            inverter_power_kw=f.number("inverter_power_kw", 0.1, 1_000_000),
            tilt_deg=f.number("tilt_deg", 0, 90),
            azimuth_deg=f.number("azimuth_deg", 0, 360),
            reporting_interval=timedelta(seconds=f.number("reporting_interval_s", 1, 86_400)),
        )


class _Fields:
    """Typed access to one raw entity; every failure names the entity and the field."""

    def __init__(self, source: Path, kind: str, raw: dict[str, Any], cities: Mapping[str, City]) -> None:
        self.source, self.kind, self.raw, self.cities = source, kind, raw, cities

    def fail(self, name: str, problem: str) -> NetworkDataError:
        return NetworkDataError(f"{self.source}: {self.kind} {self.raw.get('id', '?')!r} field {name!r}: {problem}")

    def text(self, name: str) -> str:
        value = self.raw.get(name)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(name, f"expected non-empty text, got {value!r}")
        return value.strip()

    def ident(self) -> str:
        value = self.text("id")
        if not _ID.match(value):
            raise self.fail("id", "expected a lowercase slug such as 'brk-sl-0001'")
        return value

    def number(self, name: str, low: float, high: float) -> float:
        value = self.raw.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise self.fail(name, f"expected a number in {low:g}..{high:g}, got {value!r}")
        return float(value)

    def place(self) -> tuple[str, str]:
        city, district = self.text("city"), self.text("district")
        if city not in self.cities:
            raise self.fail("city", f"unknown city {city!r} (known: {', '.join(sorted(self.cities))})")
        if all(d.id != district for d in self.cities[city].districts):
            raise self.fail("district", f"{city} has no district {district!r}")
        return city, district

    def location(self) -> tuple[float, float]:
        value = self.raw.get("location")
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
            or not (-90 <= value[0] <= 90 and -180 <= value[1] <= 180)
        ):
            raise self.fail("location", f"expected [lat, lon] in degrees, got {value!r}")
        return float(value[0]), float(value[1])
