"""Writes ``network.yaml``: a small, realistic, reproducible lighting network and PV sites.

    .venv/bin/python -m services.energy.data.generate_network [--check]

Deterministic (a fixed seed, no clock), so the committed file is exactly what this prints;
``--check`` fails if it is not. Per district: two control cabinets of two circuits each, lamps
strung along a street through the district at ~30 m spacing (every lamp inside the district
outline of ``madina/geo/cities.yaml``). Each LED luminaire replaced a high-pressure sodium (HPS)
or mercury-vapour (MV) lamp; the replaced system power includes the magnetic ballast loss
(about 10-17 % for HPS), which is what the old lamp really drew and the savings baseline.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from pathlib import Path

import yaml

from madina.geo import City, District, load_cities

OUT = Path(__file__).resolve().parent / "network.yaml"
SEED = 13
CITY_CODES = {"berkane": "brk", "casablanca": "cas"}
LAMPS_PER_CIRCUIT = {"berkane": (13, 18), "casablanca": (10, 14)}
# (LED rated W, replaced type, replaced system W incl. ballast): typical one-for-one retrofits.
RETROFITS = [
    (36, "hps", 83),    # 70 W HPS + ballast
    (54, "hps", 117),   # 100 W HPS
    (72, "hps", 171),   # 150 W HPS
    (110, "hps", 280),  # 250 W HPS, main roads
    (54, "mv", 137),    # 125 W mercury vapour, older quarters
]
RETROFIT_WEIGHTS = [3, 4, 3, 1, 1]
SPACING_DEG = 0.00028  # ~30 m
PV_SITES = [
    # id, name, city, district, location, altitude, kWp, inverter kW, tilt, azimuth
    ("brk-pv-mairie", "Berkane town hall rooftop", "berkane", "centre-ville", [34.9222, -2.3200], 160, 30.0, 27.0, 30, 180),
    ("brk-pv-zi-canopy", "Berkane industrial zone car-park canopy", "berkane", "zone-industrielle",
     [34.9060, -2.3165], 150, 120.0, 100.0, 10, 190),
    ("cas-pv-ain-sebaa-depot", "Casablanca Aïn Sebaâ municipal depot", "casablanca", "ain-sebaa",
     [33.6040, -7.5330], 20, 250.0, 220.0, 25, 180),
    ("cas-pv-maarif-school", "Casablanca Maârif school rooftop", "casablanca", "maarif",
     [33.5770, -7.6300], 60, 45.0, 40.0, 20, 160),
    ("cas-pv-sidi-moumen-pumping", "Casablanca Sidi Moumen pumping station", "casablanca", "sidi-moumen",
     [33.5760, -7.5110], 90, 80.0, 70.0, 30, 200),
]


def build() -> dict[str, list[dict[str, object]]]:
    rng = random.Random(SEED)
    cities = load_cities()
    cabinets: list[dict[str, object]] = []
    circuits: list[dict[str, object]] = []
    lamps: list[dict[str, object]] = []
    for city_id in ("berkane", "casablanca"):
        city = cities[city_id]
        code = CITY_CODES[city_id]
        lamp_number = 0
        cabinet_number = 0
        for district in city.districts:
            for _ in range(2):
                cabinet_number += 1
                cabinet_id = f"{code}-cab-{cabinet_number:02d}"
                cab_lat, cab_lon = _inside(rng, district, 0.002)
                cabinets.append({
                    "id": cabinet_id, "name": f"{city.name} {district.name} cabinet {cabinet_number}",
                    "city": city_id, "district": district.id, "location": [cab_lat, cab_lon],
                })
                for circuit_number in (1, 2):
                    circuit_id = f"{cabinet_id}-c{circuit_number}"
                    circuits.append({
                        "id": circuit_id, "city": city_id, "district": district.id, "cabinet": cabinet_id,
                        "reporting_interval_s": 300,
                    })
                    low, high = LAMPS_PER_CIRCUIT[city_id]
                    retrofit = rng.choices(RETROFITS, RETROFIT_WEIGHTS)[0]  # one street, one lamp type
                    for lat, lon in _street(rng, city, district, rng.randint(low, high)):
                        lamp_number += 1
                        led_w, old_type, old_w = retrofit
                        lamps.append({
                            "id": f"{code}-sl-{lamp_number:04d}", "city": city_id, "district": district.id,
                            "cabinet": cabinet_id, "circuit": circuit_id, "location": [lat, lon],
                            "rated_power_w": led_w, "replaced": {"type": old_type, "power_w": old_w},
                        })
    pv_sites = [
        {
            "id": sid, "name": name, "city": city_id, "district": district_id, "location": location,
            "altitude_m": altitude, "peak_power_kw": kwp, "inverter_power_kw": kwac, "tilt_deg": tilt,
            "azimuth_deg": azimuth, "reporting_interval_s": 300,
        }
        for sid, name, city_id, district_id, location, altitude, kwp, kwac, tilt, azimuth in PV_SITES
    ]
    return {"cabinets": cabinets, "circuits": circuits, "lamps": lamps, "pv_sites": pv_sites}


def _inside(rng: random.Random, district: District, radius: float) -> tuple[float, float]:
    while True:
        lat = round(district.center[0] + rng.uniform(-radius, radius), 6)
        lon = round(district.center[1] + rng.uniform(-radius, radius), 6)
        if district.contains(lat, lon):
            return lat, lon


def _street(rng: random.Random, city: City, district: District, count: int) -> list[tuple[float, float]]:
    """``count`` points ~30 m apart on a straight street inside the district (retrying if it leaves)."""
    while True:
        start_lat, start_lon = _inside(rng, district, 0.003)
        angle = rng.uniform(0, math.pi)
        step_lat = SPACING_DEG * math.sin(angle)
        step_lon = SPACING_DEG * math.cos(angle) / math.cos(math.radians(start_lat))
        points = [
            (round(start_lat + i * step_lat, 6), round(start_lon + i * step_lon, 6)) for i in range(count)
        ]
        if all(district.contains(lat, lon) for lat, lon in points):
            return points


HEADER = """\
# Energy service seed network: control cabinets, circuits, street lamps and PV sites.
#
# GENERATED by services/energy/data/generate_network.py (seeded, reproducible); do not edit by
# hand: change the generator and run `.venv/bin/python -m services.energy.data.generate_network`.
# Loaded and validated by services.energy.domain.network.load_network; city and district ids
# refer to madina/geo/cities.yaml. Coordinates are WGS 84 [lat, lon].
#
# Semantics after FIWARE smart-city data models (https://github.com/smart-data-models/dataModel.Streetlighting):
# a lamp is a Streetlight (refStreetlightControlCabinet = cabinet), a cabinet a
# StreetlightControlCabinet feeding switched circuits; pv_sites are what a
# PhotovoltaicMeasurement (dataModel.Energy) reports on. rated_power_w is the LED luminaire at
# 100 % dimming; replaced.power_w the pre-LED lamp's system power including ballast (typical
# HPS ballast losses: 70 W -> 83 W, 100 W -> 117 W, 150 W -> 171 W, 250 W -> 280 W).
# PV: peak_power_kw is DC kWp at STC, azimuth degrees clockwise from north (180 = south).
"""


def render() -> str:
    body = yaml.safe_dump(build(), sort_keys=False, allow_unicode=True, default_flow_style=None, width=200)
    return HEADER + "\n" + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if network.yaml is not what the generator writes")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is stale: run python -m services.energy.data.generate_network", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
