"""Realistic air, water and noise streams for `madina simulate` (the environment's generator).

Each station gets a baseline per measurand shaped by a diurnal cycle (traffic peaks at 08:00
and 19:00 for NO2 and particles, an afternoon ozone peak, quiet nights), a per-district factor
(industrial districts run dirtier) and noise. On top of that, scripted incidents make the
platform's behaviour visible within a minute of start-up:

* a pollution episode at the city's industrial air station (particles and SO2 climb, then ease),
* a faecal contamination sample at one water station,
* loud evenings at a noise station,
* one station that goes silent after 30 s (a data-gap alert follows).

Timestamps are real time; the diurnal *shape* runs ``speedup`` times faster so a day's cycle
is visible in minutes. All randomness comes from the seeded ``rng``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from datetime import datetime

from madina.simulation import Delivery, HttpPost, SimulationContext
from services.environment.api.http import PATHS
from services.environment.domain.measurands import MEASURANDS, StationKind
from services.environment.domain.stations import Station, load_stations

# Clean-day means at an urban background station; the diurnal cycle and district factor scale them.
BASELINE = {
    "pm25_ugm3": 12.0,
    "pm10_ugm3": 30.0,
    "no2_ugm3": 22.0,
    "o3_ugm3": 60.0,
    "so2_ugm3": 6.0,
    "co_mgm3": 0.5,
    "ph": 7.4,
    "turbidity_ntu": 0.4,
    "nitrate_mgl": 12.0,
    "dissolved_oxygen_mgl": 8.5,
    "ecoli_cfu_100ml": 0.0,
    "laeq_db": 58.0,
}
INDUSTRIAL_WORDS = ("industri", "sebaa", "bernoussi")
EPISODE_START_S = 15.0
EPISODE_PEAK_S = 180.0
EPISODE_END_S = 600.0
SILENCE_AFTER_S = 30.0


def _traffic(hour: float) -> float:
    return 0.6 + 0.7 * math.exp(-((hour - 8) ** 2) / 3) + 0.6 * math.exp(-((hour - 19) ** 2) / 4)


def _sun(hour: float) -> float:
    return 0.4 + 1.0 * math.exp(-((hour - 15) ** 2) / 8)


def _activity(hour: float) -> float:
    return 0.93 if 1 <= hour < 6 else 1.0 + (0.06 if 19 <= hour < 24 else 0.0)


class EnvironmentGenerator:
    domain = "environment"

    def __init__(self, context: SimulationContext, stations: Sequence[Station] | None = None) -> None:
        from madina.settings import load_settings
        from services.environment.settings import EnvironmentPorts

        self.context = context
        self.rng: random.Random = context.rng
        all_stations = stations if stations is not None else load_stations()
        self.stations = [s for s in all_stations if s.city == context.city]
        if not self.stations:
            raise ValueError(f"no environment stations in city {context.city!r}")
        port = context.options.get("environment_http_port") or load_settings(EnvironmentPorts).environment_http_port
        self.ingest_url = f"http://127.0.0.1:{port}"
        self._cursor = 0
        self.episode_station = self._pick(StationKind.AIR, industrial=True)
        self.contaminated_station = self._pick(StationKind.WATER)
        self.loud_station = self._pick(StationKind.NOISE)
        air = [s for s in self.stations if StationKind.AIR in s.kinds and s is not self.episode_station]
        self.silent_station = air[-1] if air else None

    def _pick(self, kind: StationKind, industrial: bool = False) -> Station | None:
        candidates = [s for s in self.stations if kind in s.kinds]
        if industrial:
            dirty = [
                s for s in candidates if any(w in (s.district + s.name).lower() for w in INDUSTRIAL_WORDS)
            ]
            candidates = dirty or candidates
        return candidates[0] if candidates else None

    def next_deliveries(self, now: datetime, budget: int) -> list[Delivery]:
        elapsed = (now - self.context.started_at).total_seconds()
        by_kind: dict[StationKind, list[dict[str, object]]] = {}
        for _ in range(budget):
            station = self._next_station(elapsed)
            if station is None:
                break
            for kind in station.kinds:
                observation = self._observe(station, kind, now, elapsed)
                by_kind.setdefault(kind, []).append(observation)
        return [
            HttpPost(path=f"/v1/{PATHS[kind]}", body={"observations": items}, count=len(items))
            for kind, items in by_kind.items()
        ]

    def _next_station(self, elapsed: float) -> Station | None:
        for _ in range(len(self.stations)):
            station = self.stations[self._cursor % len(self.stations)]
            self._cursor += 1
            if station is self.silent_station and elapsed > SILENCE_AFTER_S:
                continue
            return station
        return None

    def _observe(
        self, station: Station, kind: StationKind, now: datetime, elapsed: float
    ) -> dict[str, object]:
        simulated = self.context.simulated_time(now)
        hour = simulated.hour + simulated.minute / 60
        industrial = any(w in (station.district + station.name).lower() for w in INDUSTRIAL_WORDS)
        district_factor = 1.6 if industrial else 1.0
        values: dict[str, float] = {}
        for name in station.measurands:
            if MEASURANDS[name].kind is not kind:
                continue
            value = self._baseline(name, hour, district_factor)
            value = self._incidents(station, name, value, elapsed)
            low, high = MEASURANDS[name].minimum, MEASURANDS[name].maximum
            values[name] = round(min(max(value, low), high), 3 if name in ("ph", "co_mgm3") else 2)
        return {"station_id": station.id, "observe_time": now.isoformat().replace("+00:00", "Z"), **values}

    def _baseline(self, name: str, hour: float, district_factor: float) -> float:
        base = BASELINE[name]
        noise = self.rng.gauss(1.0, 0.08)
        if name in ("pm25_ugm3", "pm10_ugm3", "no2_ugm3", "co_mgm3"):
            return base * _traffic(hour) * district_factor * noise
        if name == "so2_ugm3":
            return base * district_factor * district_factor * noise
        if name == "o3_ugm3":
            return base * _sun(hour) * noise
        if name == "laeq_db":
            return base * _activity(hour) + self.rng.gauss(0, 1.5)
        if name == "ph":
            return base + self.rng.gauss(0, 0.05)
        if name == "ecoli_cfu_100ml":
            return 0.0
        return base * noise

    def _incidents(self, station: Station, name: str, value: float, elapsed: float) -> float:
        if station is self.episode_station and name in ("pm25_ugm3", "pm10_ugm3", "so2_ugm3"):
            return value * (1 + 9 * _episode_shape(elapsed))
        if station is self.contaminated_station and name == "ecoli_cfu_100ml" and 20 <= elapsed < 80:
            return float(self.rng.randint(3, 40))
        if station is self.contaminated_station and name == "turbidity_ntu" and 20 <= elapsed < 80:
            return value + 6.5
        if station is self.loud_station and name == "laeq_db" and elapsed > 10:
            return value + 14
        return value


def _episode_shape(elapsed: float) -> float:
    """0 before and after, rising to 1 at the peak: a smooth pollution episode."""
    if elapsed < EPISODE_START_S or elapsed > EPISODE_END_S:
        return 0.0
    if elapsed < EPISODE_PEAK_S:
        return (elapsed - EPISODE_START_S) / (EPISODE_PEAK_S - EPISODE_START_S)
    return max(0.0, 1 - (elapsed - EPISODE_PEAK_S) / (EPISODE_END_S - EPISODE_PEAK_S))


def create(context: SimulationContext) -> EnvironmentGenerator:
    return EnvironmentGenerator(context)
