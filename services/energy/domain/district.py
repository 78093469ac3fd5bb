"""District energy totals, folded from circuit KPIs (a second stage keyed by district).

Circuit state cannot see a whole district, so the processor forwards each circuit's closed-period
KPIs to a district-keyed stage that calls :func:`fold_district`. It keeps each circuit's latest
value per (kpi, period, start) and re-emits the district sum, so a replayed or repeated circuit
KPI does not double count (idempotent by circuit), and the published district value is revised
as circuits close their hours.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from services.energy.domain.kpis import EnergyKpi

_DISTRICT_KPIS = ("lighting-energy-kwh", "lighting-baseline-kwh", "lighting-savings-kwh", "lighting-savings-tco2")


@dataclass(frozen=True)
class DistrictState:
    """Per (kpi id, period, period start text) the latest value of each circuit."""

    district_key: str
    values: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    max_periods: int = 96

    def to_dict(self) -> dict[str, Any]:
        return {"district_key": self.district_key, "values": {k: dict(v) for k, v in sorted(self.values.items())}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DistrictState:
        return cls(data["district_key"], {k: dict(v) for k, v in data.get("values", {}).items()})


def fold_district(state: DistrictState, circuit_kpis: Iterable[EnergyKpi]) -> tuple[DistrictState, list[EnergyKpi]]:
    """Add circuit KPIs of one district; returns the new state and the revised district KPIs."""
    values = {k: dict(v) for k, v in state.values.items()}
    touched: dict[str, EnergyKpi] = {}
    for kpi in circuit_kpis:
        if kpi.entity_kind != "circuit" or kpi.kpi_id not in _DISTRICT_KPIS:
            continue
        key = f"{kpi.kpi_id}|{kpi.period}|{kpi.period_start.isoformat()}"
        values.setdefault(key, {})[kpi.entity_id] = kpi.value
        touched[key] = kpi
    out = [
        EnergyKpi(kpi.kpi_id, "district", f"{kpi.city}/{kpi.district}", kpi.city, kpi.district, kpi.period,
                  kpi.period_start, sum(values[key].values()))
        for key, kpi in sorted(touched.items())
    ]
    if len(values) > state.max_periods:  # keep the newest periods; older ones are published and final
        for key in sorted(values, key=lambda k: k.rsplit("|", 1)[1])[: len(values) - state.max_periods]:
            del values[key]
    return DistrictState(state.district_key, values, state.max_periods), out
