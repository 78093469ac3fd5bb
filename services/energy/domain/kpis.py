"""KPI values the energy service publishes (``kpis.v1``), as plain values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from madina.alerts.timeutil import time_from_text, time_to_text

# Indicator ids, unique within the energy domain.
LIGHTING_ENERGY_KWH = "lighting-energy-kwh"
LIGHTING_BASELINE_KWH = "lighting-baseline-kwh"
LIGHTING_SAVINGS_KWH = "lighting-savings-kwh"
LIGHTING_SAVINGS_TCO2 = "lighting-savings-tco2"
PV_ENERGY_KWH = "pv-energy-kwh"
PV_EXPECTED_KWH = "pv-expected-kwh"
PV_PERFORMANCE_RATIO = "pv-performance-ratio"

DISPLAY_NAMES = {
    LIGHTING_ENERGY_KWH: "Street-lighting energy",
    LIGHTING_BASELINE_KWH: "Street-lighting energy before LED (baseline)",
    LIGHTING_SAVINGS_KWH: "Street-lighting energy saved by LED",
    LIGHTING_SAVINGS_TCO2: "CO2 avoided by LED street lighting",
    PV_ENERGY_KWH: "PV energy generated",
    PV_EXPECTED_KWH: "PV energy expected (clear sky)",
    PV_PERFORMANCE_RATIO: "PV output vs clear-sky expectation",
}
UNITS = {
    LIGHTING_ENERGY_KWH: "kWh", LIGHTING_BASELINE_KWH: "kWh", LIGHTING_SAVINGS_KWH: "kWh",
    LIGHTING_SAVINGS_TCO2: "t", PV_ENERGY_KWH: "kWh", PV_EXPECTED_KWH: "kWh", PV_PERFORMANCE_RATIO: "",
}

HOUR = "hour"
DAY = "day"
PERIOD_NAMES = {HOUR: "hourly", DAY: "daily"}


@dataclass(frozen=True, slots=True)
class EnergyKpi:
    """One indicator value for one entity (lamp, circuit, district, PV site) over one period."""

    kpi_id: str
    entity_kind: str
    """``lamp``, ``circuit``, ``district`` or ``pv-site``."""
    entity_id: str
    """The entity's id; for a district ``<city>/<district>``."""
    city: str
    district: str
    period: str
    """``hour`` or ``day`` (a city-local day)."""
    period_start: datetime
    value: float

    @property
    def unit(self) -> str:
        return UNITS[self.kpi_id]

    @property
    def scope(self) -> str:
        """The history key's middle (``energy.consumption-history.v1``): one series per entity and
        period length."""
        return f"{self.entity_kind}:{self.entity_id}:{self.period}"

    @property
    def indicator_id(self) -> str:
        """The ``kpis.v1`` indicator: the KPI per period length, because that topic's contract keys
        by ``<kpi_id>/<entity id>`` (or ``<city>/<district>``), one latest value each, and a lamp's
        hourly and daily energy are two values (and two tile groups on the dashboard)."""
        return f"{self.kpi_id}-{self.period}"

    @property
    def indicator_name(self) -> str:
        return f"{DISPLAY_NAMES[self.kpi_id]} ({PERIOD_NAMES[self.period]})"

    @property
    def indicator_key(self) -> str:
        """The ``kpis.v1`` record key, ``<kpi_id>/<scope_id>``: a district's entity id is already
        ``<city>/<district>``, the scope operations derives from a KPI without an entity."""
        return f"{self.indicator_id}/{self.entity_id}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kpi_id": self.kpi_id, "entity_kind": self.entity_kind, "entity_id": self.entity_id,
            "city": self.city, "district": self.district, "period": self.period,
            "period_start": time_to_text(self.period_start), "value": self.value,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnergyKpi:
        start = time_from_text(data["period_start"])
        assert start is not None
        return cls(
            kpi_id=data["kpi_id"], entity_kind=data["entity_kind"], entity_id=data["entity_id"],
            city=data["city"], district=data["district"], period=data["period"], period_start=start,
            value=float(data["value"]),
        )
