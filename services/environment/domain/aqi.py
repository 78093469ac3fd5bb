"""US EPA Air Quality Index with the breakpoints in force since May 2024.

Source: US EPA, *Technical Assistance Document for the Reporting of Daily Air Quality - the Air
Quality Index (AQI)*, EPA-454/B-24-002, May 2024 (PM2.5 revision of the 2024 PM NAAQS).

Each pollutant's concentration, averaged over its EPA period, is truncated as EPA prescribes
(PM2.5 to 0.1 µg/m³, PM10 to 1 µg/m³, O3 to 0.001 ppm, CO to 0.1 ppm, NO2 and SO2 to 1 ppb) and
interpolated linearly inside its breakpoint row; the station's AQI is the highest sub-index.
Inputs arrive in the platform's mass units and are converted to ppm/ppb at 25 °C and 1 atm.

Above the top row the index is capped at 500 ("beyond the AQI") and a note says so. Two EPA
footnotes are honoured: 8 h ozone defines AQI only up to 300 (higher values come from 1 h ozone,
which is included when supplied, as EPA allows where it is more precautionary), and 1 h SO2
defines AQI only up to 200 (higher values need the 24 h SO2 mean).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

# Mass-to-mixing-ratio factors at 25 °C: 1 ppm O3 = 1962 µg/m³, 1 ppb NO2 = 1.88 µg/m³,
# 1 ppb SO2 = 2.62 µg/m³, 1 ppm CO = 1.145 mg/m³.
O3_UGM3_PER_PPM = 1962.0
NO2_UGM3_PER_PPB = 1.88
SO2_UGM3_PER_PPB = 2.62
CO_MGM3_PER_PPM = 1.145

# Inputs accepted by compute_aqi: averaging period is part of the key so a 1 h mean can never
# be mistaken for the 8 h mean EPA asks for.
PM25_24H = "pm25_24h_ugm3"
PM10_24H = "pm10_24h_ugm3"
O3_8H = "o3_8h_ugm3"
O3_1H = "o3_1h_ugm3"
NO2_1H = "no2_1h_ugm3"
SO2_1H = "so2_1h_ugm3"
SO2_24H = "so2_24h_ugm3"
CO_8H = "co_8h_mgm3"

Row = tuple[float, float, int, int]

_PM25: tuple[Row, ...] = (
    (0.0, 9.0, 0, 50),
    (9.1, 35.4, 51, 100),
    (35.5, 55.4, 101, 150),
    (55.5, 125.4, 151, 200),
    (125.5, 225.4, 201, 300),
    (225.5, 325.4, 301, 500),
)
_PM10: tuple[Row, ...] = (
    (0, 54, 0, 50),
    (55, 154, 51, 100),
    (155, 254, 101, 150),
    (255, 354, 151, 200),
    (355, 424, 201, 300),
    (425, 604, 301, 500),
)
_O3_8H_PPM: tuple[Row, ...] = (
    (0.000, 0.054, 0, 50),
    (0.055, 0.070, 51, 100),
    (0.071, 0.085, 101, 150),
    (0.086, 0.105, 151, 200),
    (0.106, 0.200, 201, 300),
)
_O3_1H_PPM: tuple[Row, ...] = (
    (0.125, 0.164, 101, 150),
    (0.165, 0.204, 151, 200),
    (0.205, 0.404, 201, 300),
    (0.405, 0.604, 301, 500),
)
_NO2_1H_PPB: tuple[Row, ...] = (
    (0, 53, 0, 50),
    (54, 100, 51, 100),
    (101, 360, 101, 150),
    (361, 649, 151, 200),
    (650, 1249, 201, 300),
    (1250, 2049, 301, 500),
)
_SO2_1H_PPB: tuple[Row, ...] = (
    (0, 35, 0, 50),
    (36, 75, 51, 100),
    (76, 185, 101, 150),
    (186, 304, 151, 200),
)
_SO2_24H_PPB: tuple[Row, ...] = (
    (305, 604, 201, 300),
    (605, 1004, 301, 500),
)
_CO_8H_PPM: tuple[Row, ...] = (
    (0.0, 4.4, 0, 50),
    (4.5, 9.4, 51, 100),
    (9.5, 12.4, 101, 150),
    (12.5, 15.4, 151, 200),
    (15.5, 30.4, 201, 300),
    (30.5, 50.4, 301, 500),
)

_CATEGORIES: tuple[tuple[int, str], ...] = (
    (50, "Good"),
    (100, "Moderate"),
    (150, "Unhealthy for Sensitive Groups"),
    (200, "Unhealthy"),
    (300, "Very Unhealthy"),
    (500, "Hazardous"),
)

# Sub-indices are keyed by measurand name, as AirQualityIndexComputed.sub_indices is.
# Order decides the dominant pollutant when sub-indices tie, so results never depend on dict order.
POLLUTANTS = ("pm25_ugm3", "pm10_ugm3", "o3_ugm3", "no2_ugm3", "so2_ugm3", "co_mgm3")


@dataclass(frozen=True)
class AqiResult:
    """Station AQI, the pollutant that set it, and every sub-index that could be computed."""

    aqi: int
    category: str
    dominant_pollutant: str
    sub_indices: Mapping[str, int]
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "aqi": self.aqi,
            "category": self.category,
            "dominant_pollutant": self.dominant_pollutant,
            "sub_indices": dict(self.sub_indices),
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AqiResult:
        return cls(
            aqi=int(data["aqi"]),
            category=data["category"],
            dominant_pollutant=data["dominant_pollutant"],
            sub_indices={k: int(v) for k, v in data["sub_indices"].items()},
            notes=tuple(data.get("notes", ())),
        )


def category_for(aqi: int) -> str:
    """EPA category name of an AQI value."""
    for upper, name in _CATEGORIES:
        if aqi <= upper:
            return name
    return _CATEGORIES[-1][1]


def compute_aqi(means: Mapping[str, float]) -> AqiResult | None:
    """AQI from averaged concentrations keyed as the module constants (``PM25_24H`` …).

    Missing pollutants are skipped; ``None`` when none of them is present.
    """
    sub_indices: dict[str, int] = {}
    notes: list[str] = []

    def put(pollutant: str, index: int | None) -> None:
        if index is not None:
            sub_indices[pollutant] = max(index, sub_indices.get(pollutant, index))

    if PM25_24H in means:
        put("pm25_ugm3", _index("PM2.5 24 h", _truncate(means[PM25_24H], "0.1"), _PM25, notes))
    if PM10_24H in means:
        put("pm10_ugm3", _index("PM10 24 h", _truncate(means[PM10_24H], "1"), _PM10, notes))
    if O3_8H in means:
        ppm = _truncate(means[O3_8H] / O3_UGM3_PER_PPM, "0.001")
        if ppm > _O3_8H_PPM[-1][1]:
            notes.append("O3 8 h above 0.200 ppm: EPA defines AQI above 300 from 1 h ozone only")
            put("o3_ugm3", 300)
        else:
            put("o3_ugm3", _index("O3 8 h", ppm, _O3_8H_PPM, notes))
    if O3_1H in means:
        ppm = _truncate(means[O3_1H] / O3_UGM3_PER_PPM, "0.001")
        if ppm >= _O3_1H_PPM[0][0]:
            put("o3_ugm3", _index("O3 1 h", ppm, _O3_1H_PPM, notes))
    if NO2_1H in means:
        ppb = _truncate(means[NO2_1H] / NO2_UGM3_PER_PPB, "1")
        put("no2_ugm3", _index("NO2 1 h", ppb, _NO2_1H_PPB, notes))
    if SO2_1H in means:
        put("so2_ugm3", _so2_index(means, notes))
    if CO_8H in means:
        ppm = _truncate(means[CO_8H] / CO_MGM3_PER_PPM, "0.1")
        put("co_mgm3", _index("CO 8 h", ppm, _CO_8H_PPM, notes))

    if not sub_indices:
        return None
    dominant = max(POLLUTANTS, key=lambda p: (sub_indices.get(p, -1), -POLLUTANTS.index(p)))
    aqi = sub_indices[dominant]
    return AqiResult(
        aqi=aqi,
        category=category_for(aqi),
        dominant_pollutant=dominant,
        sub_indices={p: sub_indices[p] for p in POLLUTANTS if p in sub_indices},
        notes=tuple(notes),
    )


def _so2_index(means: Mapping[str, float], notes: list[str]) -> int | None:
    ppb_1h = _truncate(means[SO2_1H] / SO2_UGM3_PER_PPB, "1")
    if ppb_1h <= _SO2_1H_PPB[-1][1]:
        return _index("SO2 1 h", ppb_1h, _SO2_1H_PPB, notes)
    if SO2_24H in means:
        ppb_24h = _truncate(means[SO2_24H] / SO2_UGM3_PER_PPB, "1")
        if ppb_24h >= _SO2_24H_PPB[0][0]:
            return _index("SO2 24 h", ppb_24h, _SO2_24H_PPB, notes)
    notes.append("SO2 1 h above 304 ppb: EPA defines AQI above 200 from the 24 h SO2 mean")
    return 200


def _truncate(value: float, quantum: str) -> float:
    # Rounding to 9 places first absorbs unit-conversion noise (0.054 ppm * 1962 / 1962 may come
    # back as 0.05399999…), and Decimal avoids binary artefacts in the truncation itself.
    cleaned = round(max(value, 0.0), 9)
    return float(Decimal(repr(cleaned)).quantize(Decimal(quantum), rounding=ROUND_DOWN))


def _index(label: str, concentration: float, table: tuple[Row, ...], notes: list[str]) -> int | None:
    for c_low, c_high, i_low, i_high in table:
        if c_low <= concentration <= c_high:
            exact = (i_high - i_low) / (c_high - c_low) * (concentration - c_low) + i_low
            return math.floor(exact + 0.5)
    if concentration > table[-1][1]:
        notes.append(f"{label} {concentration:g} is beyond the AQI; capped at {table[-1][3]}")
        return table[-1][3]
    return None
