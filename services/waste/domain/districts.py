"""Per-district waste indicators: mean fill, containers full, containers needing collection, and
containers at fire risk.

A container's state cannot see its district, so the processor reduces each container status to a
:class:`ContainerSummary` and forwards it, keyed by district, to a district stage whose state is
:class:`DistrictState` (the latest summary of each of its containers). To keep that stage's input
far below the readings' rate, a summary is forwarded only when it matters to the district
(:func:`summary_changed`): a flag flips or the fill moved by ``fill_step`` since the last one
forwarded. :func:`fold_container` then re-computes the district's values and returns only those
that changed, so a repeated (replayed) summary publishes nothing.

"Needing collection" is the planner's rule (:func:`services.waste.domain.planning.select_due`):
full now, or predicted to reach the full level within the collection horizon.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from madina.alerts.timeutil import time_from_text, time_to_text
from services.waste.domain.containers import Container
from services.waste.domain.detector import RULE_FIRE, ContainerStatus
from services.waste.domain.fillrate import FULL_FILL_RATIO
from services.waste.domain.kpis import (
    KPI_DISTRICT_FILL,
    KPI_FIRE_RISK,
    KPI_FULL_CONTAINERS,
    KPI_NEEDING_COLLECTION,
    KpiValue,
)

COLLECTION_HORIZON = timedelta(hours=24)
FILL_STEP = 0.05


@dataclass(frozen=True, slots=True)
class ContainerSummary:
    """What one container contributes to its district's indicators."""

    container_id: str
    city: str
    district: str
    fill_ratio: float | None
    needs_collection: bool
    fire_risk: bool
    change_time: datetime

    @property
    def district_key(self) -> str:
        return f"{self.city}/{self.district}"


def summarise(
    status: ContainerStatus, container: Container, horizon: timedelta = COLLECTION_HORIZON
) -> ContainerSummary | None:
    """The container's part in its district; ``None`` before its first reading."""
    if status.observe_time is None:
        return None
    fill = status.fill_ratio
    due_by = status.observe_time + horizon
    needs = (fill is not None and fill >= FULL_FILL_RATIO) or (
        status.predicted_full_time is not None and status.predicted_full_time <= due_by)
    return ContainerSummary(container.id, container.city, container.district, fill, needs,
                            RULE_FIRE in status.active_rules, status.observe_time)


def summary_changed(last: ContainerSummary | None, new: ContainerSummary, fill_step: float = FILL_STEP) -> bool:
    """Whether ``new`` is worth forwarding after ``last`` (the one forwarded before)."""
    if last is None or (last.needs_collection, last.fire_risk) != (new.needs_collection, new.fire_risk):
        return True
    if last.fill_ratio is None or new.fill_ratio is None:
        return (last.fill_ratio is None) != (new.fill_ratio is None)
    return abs(new.fill_ratio - last.fill_ratio) >= fill_step


def summary_to_dict(summary: ContainerSummary) -> dict[str, Any]:
    """As the container's table value keeps it (the container id is the table key)."""
    return {"city": summary.city, "district": summary.district, "fill": summary.fill_ratio,
            "needs": summary.needs_collection, "fire": summary.fire_risk, "time": time_to_text(summary.change_time)}


def summary_from_dict(container_id: str, data: Mapping[str, Any]) -> ContainerSummary:
    moment = time_from_text(data["time"])
    if moment is None:
        raise ValueError("summary time: required")
    return ContainerSummary(container_id, data["city"], data["district"], data["fill"], bool(data["needs"]),
                            bool(data["fire"]), moment)


@dataclass
class DistrictState:
    """The latest summary of each container of one district, and the values last published."""

    district_key: str
    # container id -> (fill ratio or None, needs collection, fire risk)
    containers: dict[str, tuple[float | None, bool, bool]] = field(default_factory=dict)
    published: dict[str, float] = field(default_factory=dict)
    newest: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"district_key": self.district_key,
                "containers": {k: list(v) for k, v in sorted(self.containers.items())},
                "published": dict(self.published), "newest": time_to_text(self.newest)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DistrictState:
        return cls(data["district_key"],
                   {k: (v[0], bool(v[1]), bool(v[2])) for k, v in data.get("containers", {}).items()},
                   {k: float(v) for k, v in data.get("published", {}).items()},
                   time_from_text(data.get("newest")))


def district_values(containers: Mapping[str, tuple[float | None, bool, bool]]) -> dict[str, float]:
    """The district's indicators over its containers' latest summaries."""
    fills = [fill for fill, _, _ in containers.values() if fill is not None]
    return {
        KPI_DISTRICT_FILL: sum(fills) / len(fills) if fills else 0.0,
        KPI_FULL_CONTAINERS: float(sum(1 for fill in fills if fill >= FULL_FILL_RATIO)),
        KPI_NEEDING_COLLECTION: float(sum(1 for _, needs, _ in containers.values() if needs)),
        KPI_FIRE_RISK: float(sum(1 for _, _, fire in containers.values() if fire)),
    }


_UNITS = {KPI_DISTRICT_FILL: "ratio", KPI_FULL_CONTAINERS: "", KPI_NEEDING_COLLECTION: "", KPI_FIRE_RISK: ""}


def _band(kpi_id: str, value: float) -> int:
    if kpi_id == KPI_FIRE_RISK:
        return 5 if value > 0 else 0
    if kpi_id == KPI_DISTRICT_FILL:
        return 4 if value >= 0.95 else 2 if value >= FULL_FILL_RATIO else 0
    return 0


def fold_container(state: DistrictState, summary: ContainerSummary) -> tuple[DistrictState, list[KpiValue]]:
    """Take one container's summary in; the district's indicators whose value changed."""
    containers = dict(state.containers)
    containers[summary.container_id] = (summary.fill_ratio, summary.needs_collection, summary.fire_risk)
    newest = summary.change_time if state.newest is None or summary.change_time > state.newest else state.newest
    values = district_values(containers)
    changed = {k: v for k, v in values.items() if state.published.get(k) != v}
    city, _, district = state.district_key.partition("/")
    kpis = [KpiValue(kpi_id, city, district, value, _UNITS[kpi_id], newest, band_level=_band(kpi_id, value))
            for kpi_id, value in sorted(changed.items())]
    return DistrictState(state.district_key, containers, {**state.published, **changed}, newest), kpis
