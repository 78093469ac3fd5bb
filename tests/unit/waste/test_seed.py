"""The seed files: valid against the city geography, reproducible by the generator, sized as documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from madina.geo import load_cities
from services.waste import seed
from services.waste.domain.containers import Stream, WasteDataError, load_containers, load_fleet


def test_seed_has_a_few_hundred_containers_per_city_in_known_districts() -> None:
    containers = load_containers()
    cities = load_cities()
    for city in ("berkane", "casablanca"):
        mine = [c for c in containers if c.city == city]
        assert 150 <= len(mine) <= 500
        assert {c.stream for c in mine} == set(Stream)
        for c in mine:
            assert cities[city].district(c.district).contains(c.lat, c.lon)
    assert len(load_containers(serving=["berkane"])) == len([c for c in containers if c.city == "berkane"])


def test_every_stream_of_every_city_has_a_truck() -> None:
    fleet = load_fleet()
    for city in ("berkane", "casablanca"):
        served = {s for t in fleet.trucks for s in t.streams if fleet.depot(t.depot).city == city}
        assert served == set(Stream)


def test_seed_generator_reproduces_the_committed_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    containers, fleet = tmp_path / "containers.yaml", tmp_path / "fleet.yaml"
    monkeypatch.setattr("sys.argv", ["seed", "--containers", str(containers), "--fleet", str(fleet)])
    seed.main()
    assert containers.read_text() == seed.CONTAINERS_PATH.read_text()
    assert fleet.read_text() == seed.FLEET_PATH.read_text()


def test_a_bad_container_names_its_field(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("containers:\n- {id: x1, city: berkane, district: centre-ville, location: [34.92, -2.32],"
                   " stream: compost, volume_l: 1100, reporting_interval: 1h}\n")
    with pytest.raises(WasteDataError, match="'x1' field 'stream'"):
        load_containers(bad)
