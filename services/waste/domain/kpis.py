"""Waste KPIs for the dashboard, computed purely from statuses and collections.

A KPI is per container (its fill) or per district (how many containers are full, how many were
collected in a day). The processor keeps state per container, so district aggregates are
computed here over whatever set of statuses and collections the caller holds (a district table,
a replayed topic, a test oracle); :mod:`services.waste.convert` maps :class:`KpiValue` onto
``madina.kpis.v1.KpiObserved``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.waste.domain.containers import Container
from services.waste.domain.detector import Collection, ContainerStatus
from services.waste.domain.fillrate import FULL_FILL_RATIO

KPI_FILL = "container-fill"
KPI_FULL_CONTAINERS = "containers-full"
KPI_COLLECTIONS = "collections-per-day"
KPI_DISTRICT_FILL = "district-fill-mean"
KPI_NEEDING_COLLECTION = "containers-needing-collection"
KPI_FIRE_RISK = "containers-fire-risk"
DISPLAY_NAME = {
    KPI_FILL: "Container fill",
    KPI_FULL_CONTAINERS: "Containers at or above 80 %",
    KPI_COLLECTIONS: "Collections per day",
    KPI_DISTRICT_FILL: "Mean container fill",
    KPI_NEEDING_COLLECTION: "Containers needing collection (full or full within 24 h)",
    KPI_FIRE_RISK: "Containers at fire risk",
}


@dataclass(frozen=True)
class KpiValue:
    """One indicator value for a district, or for one container when ``entity_id`` is set."""

    kpi_id: str
    city: str
    district: str
    value: float
    unit: str
    observe_time: datetime
    entity_id: str | None = None
    band_level: int = 0
    """0 (good) to 5 (worst), as ``KpiObserved.band_level``."""

    @property
    def display_name(self) -> str:
        return DISPLAY_NAME[self.kpi_id]

    @property
    def key(self) -> str:
        """The ``kpis.v1`` record key, ``<kpi_id>/<scope>``."""
        return f"{self.kpi_id}/{self.entity_id or f'{self.city}/{self.district}'}"


def container_kpis(status: ContainerStatus, container: Container) -> list[KpiValue]:
    """The container's judged fill, as a ratio; band 2 at 80 %, 4 at 95 %."""
    if status.fill_ratio is None or status.observe_time is None:
        return []
    band = 4 if status.fill_ratio >= 0.95 else 2 if status.fill_ratio >= FULL_FILL_RATIO else 0
    return [KpiValue(KPI_FILL, container.city, container.district, status.fill_ratio, "ratio",
                     status.observe_time, entity_id=container.id, band_level=band)]


def district_full_counts(
    statuses: Iterable[ContainerStatus], containers: Mapping[str, Container], at: datetime
) -> list[KpiValue]:
    """Containers whose judged fill is at or above 80 %, per district (every district of a known
    container is reported, zeros included, so a dashboard tile goes back to 0 after collection)."""
    counts: Counter[tuple[str, str]] = Counter({(c.city, c.district): 0 for c in containers.values()})
    for status in statuses:
        container = containers.get(status.container_id)
        if container is not None and status.fill_ratio is not None and status.fill_ratio >= FULL_FILL_RATIO:
            counts[(container.city, container.district)] += 1
    return [KpiValue(KPI_FULL_CONTAINERS, city, district, float(n), "", at)
            for (city, district), n in sorted(counts.items())]


def collections_per_day(
    collections: Iterable[Collection], day: date, timezone: str, districts: Iterable[tuple[str, str]] = ()
) -> list[KpiValue]:
    """Collections detected on local ``day`` in ``timezone`` (the city's), per (city, district).

    ``districts`` lists (city, district) pairs to report even with no collection that day.
    """
    zone = ZoneInfo(timezone)
    start = datetime.combine(day, time(), zone)
    end = start + timedelta(days=1)
    counts: Counter[tuple[str, str]] = Counter({pair: 0 for pair in districts})
    for collection in collections:
        if start <= collection.detect_time < end:
            counts[(collection.city, collection.district)] += 1
    at = end.astimezone(ZoneInfo("UTC"))
    return [KpiValue(KPI_COLLECTIONS, city, district, float(n), "", at)
            for (city, district), n in sorted(counts.items())]
