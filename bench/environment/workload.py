"""The benchmark's input: a generated station file and deterministic observation batches.

Half the stations measure air (clean air: rolling windows, AQI, no alerts), half water. Water
turbidity follows a fixed cycle of ``TURBIDITY_CYCLE`` samples per station: two samples at 3 NTU
(above the WHO 1 NTU disinfection target, so the episode is RAISED on the first) and the rest at
0.4 NTU (below the 0.9 NTU clear level; after 2 h of event time the episode is CLEARED). So every
water station yields two alert transitions per cycle, whatever the batch size, and with batches
of 10 exactly half the water records (a quarter of all records) carry one transition.

Event time advances per station by its reporting interval on every observation, from a fixed
start, so windows and the clear hold work; it runs far faster than wall-clock time, which the
processor does not care about (only data-gap ticks read the clock, and they are disabled).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from madina.bus.codec import standard_headers
from madina.geo import load_cities
from services.environment.convert import BATCH_TYPE, OBSERVED_TYPE
from services.environment.domain.measurands import StationKind
from services.environment.topics import AIR_QUALITY, WATER_QUALITY

START = datetime(2026, 1, 1, tzinfo=UTC)
TURBIDITY_CYCLE = 40
TURBIDITY_HIGH_NTU = 3.0
TURBIDITY_LOW_NTU = 0.4
AIR_INTERVAL = timedelta(seconds=60)
WATER_INTERVAL = timedelta(seconds=300)
# Measurand sets of the seed stations, cycled over the generated air stations.
AIR_MEASURANDS = (
    ("pm25_ugm3", "pm10_ugm3", "no2_ugm3", "o3_ugm3", "so2_ugm3", "co_mgm3"),
    ("pm25_ugm3", "pm10_ugm3", "no2_ugm3"),
    ("pm25_ugm3", "pm10_ugm3", "o3_ugm3"),
)
WATER_MEASURANDS = ("ph", "turbidity_ntu", "nitrate_mgl", "ecoli_cfu_100ml")
# Clean-air means, below every WHO 2021 AQG level.
AIR_BASELINE = {"pm25_ugm3": 8.0, "pm10_ugm3": 20.0, "no2_ugm3": 15.0, "o3_ugm3": 50.0, "so2_ugm3": 5.0,
                "co_mgm3": 0.4}


@dataclass(frozen=True)
class BenchStation:
    id: str
    kind: StationKind
    measurands: tuple[str, ...]


@dataclass(frozen=True)
class Record:
    """One produced record: a station's batch, and the (station, observe time ms) it carries."""

    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    observations: int
    event_keys: tuple[tuple[str, int], ...] = ()
    alert_keys: tuple[tuple[str, int], ...] = ()
    """The observations that raise or clear the turbidity alert (by construction of the cycle)."""


def make_stations(count: int) -> list[BenchStation]:
    stations = []
    for n in range(count):
        if n % 2 == 0:
            stations.append(BenchStation(f"bench-air-{n // 2:03d}", StationKind.AIR,
                                         AIR_MEASURANDS[(n // 2) % len(AIR_MEASURANDS)]))
        else:
            stations.append(BenchStation(f"bench-water-{n // 2:03d}", StationKind.WATER, WATER_MEASURANDS))
    return stations


def write_stations_file(path: Path, stations: list[BenchStation]) -> Path:
    """The stations in the schema of services/environment/data/stations.yaml, on real districts."""
    places = [(city, district) for city in load_cities().values() for district in city.districts]
    entries = []
    for n, station in enumerate(stations):
        city, district = places[n % len(places)]
        lat, lon = city.center
        entries.append({
            "id": station.id,
            "name": f"Bench {station.kind.value} station {n}",
            "city": city.id,
            "district": district.id,
            "location": [round(lat + (n % 17) * 0.001, 5), round(lon + (n % 13) * 0.001, 5)],
            "kinds": [station.kind.value],
            "measurands": list(station.measurands),
            "reporting_interval": "60s" if station.kind is StationKind.AIR else "300s",
        })
    path.write_text(yaml.safe_dump({"stations": entries}, sort_keys=False), encoding="utf-8")
    return path


@dataclass
class Workload:
    """Per-station observation counters, so successive phases continue each station's event time."""

    stations: list[BenchStation]
    seed: int = 7
    _next_index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def records(self, observations: int, batch_size: int) -> list[Record]:
        """``observations`` in records of ``batch_size`` (rounded up to whole rounds over all stations),
        one round over every station after another, as gateways uploading in turn would."""
        per_round = batch_size * len(self.stations)
        rounds = max(1, -(-observations // per_round))
        return [self._record(station, batch_size) for _ in range(rounds) for station in self.stations]

    def rounds(self, batch_size: int) -> Iterator[Record]:
        """Endless rounds of one record per station (for paced producing)."""
        while True:
            for station in self.stations:
                yield self._record(station, batch_size)

    def _record(self, station: BenchStation, batch_size: int) -> Record:
        first = self._next_index.get(station.id, 0)
        self._next_index[station.id] = first + batch_size
        kind = station.kind
        interval = AIR_INTERVAL if kind is StationKind.AIR else WATER_INTERVAL
        messages = []
        event_keys = []
        alert_keys = []
        for index in range(first, first + batch_size):
            at = START + index * interval
            message = OBSERVED_TYPE[kind](station_id=station.id, **self._values(station, index))
            message.observe_time.FromDatetime(at)
            messages.append(message)
            event_keys.append((station.id, int(at.timestamp() * 1000)))
            if kind is StationKind.WATER and _turns_alert(index):
                alert_keys.append(event_keys[-1])
        batch = BATCH_TYPE[kind](station_id=station.id, observations=messages)
        spec = AIR_QUALITY if kind is StationKind.AIR else WATER_QUALITY
        return Record(spec.name, station.id.encode(), batch.SerializeToString(), standard_headers(spec, "bench"),
                      batch_size, tuple(event_keys), tuple(alert_keys))

    def _values(self, station: BenchStation, index: int) -> dict[str, float]:
        jitter = self._rng.uniform
        if station.kind is StationKind.AIR:
            return {m: round(AIR_BASELINE[m] * jitter(0.8, 1.2), 2) for m in station.measurands}
        high = index % TURBIDITY_CYCLE >= TURBIDITY_CYCLE - 2
        return {
            "ph": round(jitter(7.3, 7.5), 2),
            "turbidity_ntu": TURBIDITY_HIGH_NTU if high else TURBIDITY_LOW_NTU,
            "nitrate_mgl": round(jitter(10.0, 14.0), 1),
            "ecoli_cfu_100ml": 0.0,
        }


def _turns_alert(index: int) -> bool:
    """RAISED on the first high sample; CLEARED 2 h (24 samples of 5 min) after the first low one."""
    phase = index % TURBIDITY_CYCLE
    return phase == TURBIDITY_CYCLE - 2 or (phase == 24 and index >= TURBIDITY_CYCLE + 24)
