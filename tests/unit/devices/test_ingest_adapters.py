"""Every kind the gateway ingests goes through its domain's own model and checks: a good body
becomes domain readings, a bad value is refused naming the field, a device reports only for its
entity. (Publishing is the integration tests'.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.devices.domain.registry import DeviceEntry, DeviceRefused
from services.devices.gateway.ingest import INGESTS, DomainData

NOW = datetime.now(UTC)
STAMP = (NOW - timedelta(seconds=5)).isoformat()
DATA = DomainData(cities=["berkane"])

CASES: dict[tuple[str, str], tuple[str, dict[str, Any], str, Any]] = {
    # (domain, kind): (entity, good body, field made bad, bad value)
    ("environment", "air-quality"): ("brk-air-al-quds", {"station_id": "brk-air-al-quds", "observe_time": STAMP,
                                                         "pm25_ugm3": 12.0}, "pm25_ugm3", -4.0),
    ("environment", "noise"): ("brk-noise-al-massira", {"station_id": "brk-noise-al-massira", "observe_time": STAMP,
                                                        "laeq_db": 55.0}, "laeq_db", 400.0),
    ("waste", "container-level"): ("brk-centre-ville-h001", {"container_id": "brk-centre-ville-h001",
                                                             "observe_time": STAMP, "fill_ratio": 0.4},
                                   "fill_ratio", 1.7),
    ("energy", "streetlight"): ("brk-sl-0001", {"lamp_id": "brk-sl-0001", "observe_time": STAMP, "on": True,
                                                "dimming_pct": 80.0, "power_w": 40.0}, "dimming_pct", 180.0),
    ("energy", "generation"): ("brk-pv-mairie", {"site_id": "brk-pv-mairie", "observe_time": STAMP,
                                                 "power_kw": 3.0}, "power_kw", -1.0),
    ("mobility", "parking-occupancy"): ("BK-P1", {"car_park_id": "BK-P1", "timestamp": STAMP, "occupied_spaces": 90,
                                                  "capacity_spaces": 180}, "occupied_spaces", 500),
}


@pytest.mark.parametrize("key", sorted(CASES))
def test_each_kind_takes_its_domains_checks(key: tuple[str, str]) -> None:
    entity, body, field, bad = CASES[key]
    ingest = INGESTS[key]
    device = DeviceEntry("dev", key[0], key[1], entity)
    readings = ingest.prepare(DATA, device, body, 10, NOW)
    assert [ingest.entity_of(r) for r in readings] == [entity]
    assert len(ingest.prepare(DATA, device, {ingest_list(key): [body, body]}, 10, NOW)) == 2
    with pytest.raises(ValueError, match=field.split("_")[0]):
        ingest.prepare(DATA, device, {**body, field: bad}, 10, NOW)
    with pytest.raises(DeviceRefused, match=f"reports for someone-else, not {entity}"):
        ingest.prepare(DATA, DeviceEntry("dev", key[0], key[1], "someone-else"), body, 10, NOW)


def ingest_list(key: tuple[str, str]) -> str:
    return {"environment": "observations", "waste": "readings", "energy": "reports",
            "mobility": "parking_occupancies"}[key[0]]


def test_every_ingest_kind_is_covered_here() -> None:
    assert set(CASES) == set(INGESTS) - {("environment", "water-quality")}
