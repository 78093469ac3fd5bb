"""The latest value of every indicator on ``kpis.v1``, for the dashboard's indicator tiles.

``kpis.v1`` is compacted and keyed ``<kpi_id>/<scope_id>``, so its latest records *are* the
current indicators. Every replica reads it whole from the start (no consumer group) and keeps
the latest per key in memory. Nothing here knows a domain: where several entities of one
domain's indicator sit in one district, an aggregate per district (highest value, worst band) is
added, which gives "AQI by district, now" for any domain that publishes per-entity values.

A bad value on a compacted topic lives as long as its key: one that would not serve (a time no
datetime holds, NaN, a key that is not the indicator's own) is skipped when read, and the
indicator keeps its last good value, so ``GET /api/v1/kpis`` never meets it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from madina.bus import KPIS
from madina.bus.reader import read_topic
from madina.contract import InvalidRecord, finite, optional_time
from madina_proto.kpis.v1 import kpis_pb2
from services.operations.api.views import rfc3339

log = logging.getLogger(__name__)


def indicator_json(kpi: kpis_pb2.KpiObserved, *, aggregate_entity: bool = False) -> dict[str, Any]:
    district = kpi.district if kpi.district.district_id or kpi.district.city_id else None
    entity = kpi.entity if kpi.entity.entity_id and not aggregate_entity else None
    observed = optional_time(kpi, "observe_time")
    return {
        "domain": kpi.domain,
        "kpi_id": kpi.kpi_id,
        "display_name": kpi.display_name,
        "district": None if district is None else {
            "city_id": district.city_id, "district_id": district.district_id,
            "display_name": district.display_name,
        },
        "entity": None if entity is None else {
            "domain": entity.domain, "kind": entity.kind, "entity_id": entity.entity_id,
        },
        "value": kpi.value,
        "unit": kpi.unit,
        "band": kpi.band,
        "band_level": kpi.band_level,
        "observe_time": rfc3339(observed),
    }


@dataclass
class KpiBoard:
    """Latest KpiObserved per (domain, key)."""

    latest: dict[tuple[str, str], kpis_pb2.KpiObserved] = field(default_factory=dict)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def put(self, key: str, kpi: kpis_pb2.KpiObserved) -> None:
        self.latest[(kpi.domain, key or _scope_key(kpi))] = kpi

    def delete(self, key: str) -> None:
        for stored in [k for k in self.latest if k[1] == key]:
            del self.latest[stored]

    def indicators(self) -> list[dict[str, Any]]:
        """Every latest indicator, plus per-district aggregates of per-entity indicators."""
        rows = [indicator_json(kpi) for kpi in self.latest.values()]
        by_district: dict[tuple[str, str, str, str], list[kpis_pb2.KpiObserved]] = defaultdict(list)
        published_districts: set[tuple[str, str, str, str]] = set()
        for kpi in self.latest.values():
            if not kpi.district.district_id:
                continue
            place = (kpi.domain, kpi.kpi_id, kpi.district.city_id, kpi.district.district_id)
            if kpi.entity.entity_id:
                by_district[place].append(kpi)
            else:
                published_districts.add(place)
        for place, members in sorted(by_district.items()):
            # A domain that publishes its own district value knows better than a max.
            if len(members) < 2 or place in published_districts:
                continue
            rows.append(_aggregate(members))
        rows.sort(key=lambda r: (r["domain"], r["kpi_id"], r["district"] is None,
                                 (r["district"] or {}).get("district_id", ""), r["entity"] is not None,
                                 (r["entity"] or {}).get("entity_id", "")))
        return rows


def _aggregate(members: list[kpis_pb2.KpiObserved]) -> dict[str, Any]:
    highest = max(members, key=lambda kpi: kpi.value)
    worst = max(members, key=lambda kpi: (kpi.band_level, kpi.value))
    newest = max(members, key=lambda kpi: (kpi.observe_time.seconds, kpi.observe_time.nanos))
    row = indicator_json(highest, aggregate_entity=True)
    row["band"] = worst.band
    row["band_level"] = worst.band_level
    row["observe_time"] = indicator_json(newest)["observe_time"]
    return row


def check_kpi(key: str, kpi: kpis_pb2.KpiObserved) -> kpis_pb2.KpiObserved:
    """``kpi`` if it can be served under ``key``, else InvalidRecord."""
    if not kpi.domain or not kpi.kpi_id:
        raise InvalidRecord("domain and kpi_id are required")
    if key and key != _scope_key(kpi):
        raise InvalidRecord(f"key {key[:200]!r} is not this indicator's {_scope_key(kpi)[:200]!r}")
    finite(kpi.value, "value")
    optional_time(kpi, "observe_time")
    return kpi


def _scope_key(kpi: kpis_pb2.KpiObserved) -> str:
    scope = kpi.entity.entity_id or f"{kpi.district.city_id}/{kpi.district.district_id}"
    return f"{kpi.kpi_id}/{scope}"


async def follow_kpis(bootstrap: str, board: KpiBoard) -> None:
    """Read ``kpis.v1`` from the beginning forever; ``board.ready`` is set once the backlog is read."""

    def on_kpi(key: str, kpi: kpis_pb2.KpiObserved | None) -> None:
        if kpi is None:  # a tombstone retires the indicator
            board.delete(key)
        else:
            board.put(key, check_kpi(key, kpi))

    await read_topic(bootstrap, KPIS, on_kpi, caught_up=board.ready)
