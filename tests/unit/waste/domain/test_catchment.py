"""Each container belongs to one depot: two depots of a city never plan the same container."""

from __future__ import annotations

from datetime import timedelta

from services.waste.domain.containers import Container, Depot, Stream, Truck, load_containers, load_fleet
from services.waste.domain.planning import catchment, haversine_m


def _container(cid: str, lon: float, stream: Stream = Stream.HOUSEHOLD) -> Container:
    return Container(cid, "casablanca", "maarif", 33.58, lon, stream, 1100, timedelta(minutes=15))


WEST = Depot("d-west", "west", "casablanca", 33.58, -7.70)
EAST = Depot("d-east", "east", "casablanca", 33.58, -7.50)
ELSEWHERE = Depot("d-berkane", "berkane", "berkane", 34.92, -2.32)


def test_the_sample_cities_split_their_containers_between_their_depots_without_overlap() -> None:
    fleet, containers = load_fleet(), load_containers()
    for city in {depot.city for depot in fleet.depots}:
        depots = [d for d in fleet.depots if d.city == city]
        shares = [catchment(d, fleet.depots, fleet.trucks, containers) for d in depots]
        ids = [c.id for share in shares for c in share]
        assert len(ids) == len(set(ids)), f"{city}: a container is planned by two depots"
        assert set(ids) == {c.id for c in containers if c.city == city}, f"{city}: a container is planned by none"
    casablanca = [d for d in fleet.depots if d.city == "casablanca"]
    assert len(casablanca) == 2 and all(catchment(d, fleet.depots, fleet.trucks, containers) for d in casablanca)


def test_a_container_goes_to_the_nearest_depot_that_can_carry_its_stream() -> None:
    trucks = [Truck("w1", WEST.id, (Stream.HOUSEHOLD,), 10_000),
              Truck("e1", EAST.id, (Stream.HOUSEHOLD, Stream.GLASS), 10_000)]
    near_west = _container("c-household", -7.68)
    glass_near_west = _container("c-glass", -7.68, Stream.GLASS)
    paper_anywhere = _container("c-paper", -7.52, Stream.PAPER)  # no truck carries paper: the nearest depot
    containers = [near_west, glass_near_west, paper_anywhere]
    depots = [WEST, EAST, ELSEWHERE]
    assert haversine_m((WEST.lat, WEST.lon), (33.58, -7.68)) < haversine_m((EAST.lat, EAST.lon), (33.58, -7.68))
    assert catchment(WEST, depots, trucks, containers) == [near_west]
    assert catchment(EAST, depots, trucks, containers) == [glass_near_west, paper_anywhere]
    assert catchment(ELSEWHERE, depots, trucks, containers) == []


def test_a_tie_goes_to_the_smaller_depot_id_whatever_the_fleet_order() -> None:
    second = Depot("d-2", "second yard", "casablanca", WEST.lat, WEST.lon)  # the same place as WEST
    first = Depot("d-1", "first yard", "casablanca", WEST.lat, WEST.lon)
    container = _container("c-1", -7.65)
    trucks = [Truck("t1", first.id, (Stream.HOUSEHOLD,), 10_000), Truck("t2", second.id, (Stream.HOUSEHOLD,), 10_000)]
    for depots in ([first, second], [second, first]):
        assert catchment(first, depots, trucks, [container]) == [container]
        assert catchment(second, depots, trucks, [container]) == []
