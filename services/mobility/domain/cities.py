"""Which city a bus, a stop or a route belongs to, from the shared geography (``madina/geo/cities.yaml``).

GTFS has no city: a route belongs to its feed, and a feed to the city its stops are in. A feed
named after a city (``data/gtfs/berkane``, as the simulator also assumes) is that city's; any other
feed is the city holding most of its stops, so a deployer's ``casa-tram-2026.zip`` still lands in
Casablanca. A point outside every district (a road between them) belongs to the city with the
nearest centre: a bus on its way still belongs to its city's map and lists.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from madina.geo import City, district_at
from services.mobility.domain.gtfs import Feed, Schedule


def city_at(cities: Mapping[str, City], lat: float, lon: float) -> str:
    """The city whose districts hold the point, else the one with the nearest centre ("" without cities)."""
    for city in cities.values():
        if district_at(city, lat, lon) is not None:
            return city.id
    nearest = min(cities.values(), key=lambda c: (c.center[0] - lat) ** 2 + (c.center[1] - lon) ** 2, default=None)
    return nearest.id if nearest is not None else ""


def feed_city(cities: Mapping[str, City], feed: Feed) -> str:
    """The feed's city: its id when that names a city, else the city of most of its stops."""
    if feed.feed_id in cities:
        return feed.feed_id
    votes = Counter(city_at(cities, stop.lat, stop.lon) for stop in feed.stops.values())
    return votes.most_common(1)[0][0] if votes else ""


def route_cities(cities: Mapping[str, City], schedule: Schedule) -> dict[str, str]:
    """route_id -> city id, for every route of the schedule."""
    by_feed = {feed.feed_id: feed_city(cities, feed) for feed in schedule.feeds}
    return {route.route_id: by_feed.get(route.feed_id, "") for route in schedule.routes.values()}
