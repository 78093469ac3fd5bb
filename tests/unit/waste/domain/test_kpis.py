"""KPIs per container and per district."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from services.waste.domain.containers import load_containers
from services.waste.domain.detector import Collection, ContainerStatus
from services.waste.domain.kpis import collections_per_day, container_kpis, district_full_counts

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def status(container_id: str, fill: float | None) -> ContainerStatus:
    return ContainerStatus(container_id, T0, fill, None, None, None, None, None, None, None, ())


def test_container_fill_kpi_bands() -> None:
    (container,) = [c for c in load_containers() if c.id == "brk-centre-ville-h001"]
    (kpi,) = container_kpis(status(container.id, 0.96), container)
    assert (kpi.value, kpi.band_level, kpi.key) == (0.96, 4, "container-fill/brk-centre-ville-h001")
    assert container_kpis(status(container.id, None), container) == []


def test_full_containers_are_counted_per_district_with_zeros() -> None:
    containers = {c.id: c for c in load_containers(serving=["berkane"])}
    ids = [cid for cid in containers if containers[cid].district == "hay-al-quds"][:3]
    kpis = district_full_counts([status(ids[0], 0.8), status(ids[1], 0.97), status(ids[2], 0.79)], containers, T0)
    by_district = {k.district: k.value for k in kpis}
    assert by_district["hay-al-quds"] == 2
    assert by_district["centre-ville"] == 0 and len(by_district) == 6


def test_collections_per_day_use_the_city_local_day() -> None:
    def collected(when: datetime, district: str = "anfa") -> Collection:
        return Collection("c", "casablanca", district, "household", when - timedelta(hours=1), when, 0.9, 0.05, 935.0)

    # Casablanca is UTC+1 on 4 May 2026 (UTC+0 only during Ramadan): 23:30 UTC on the 3rd is the 4th
    # locally, 23:30 UTC on the 4th is already the 5th.
    events = [
        collected(datetime(2026, 5, 3, 23, 30, tzinfo=UTC)),
        collected(datetime(2026, 5, 4, 22, 59, tzinfo=UTC)),
        collected(datetime(2026, 5, 4, 23, 30, tzinfo=UTC)),
        collected(datetime(2026, 5, 4, 6, tzinfo=UTC), "maarif"),
    ]
    kpis = collections_per_day(events, date(2026, 5, 4), "Africa/Casablanca", [("casablanca", "sidi-moumen")])
    assert {k.district: k.value for k in kpis} == {"anfa": 2, "maarif": 1, "sidi-moumen": 0}
    assert kpis[0].observe_time == datetime(2026, 5, 4, 23, tzinfo=UTC)
