"""``madina service mobility-processor``: the faust worker behind mobility alerts.

The entity-processor runner (:mod:`madina.streams.entities`) over trip updates, vehicle positions
and route clock ticks, all keyed and partitioned by route, and over ticket validations (by card,
then by route and stop) and car-park counts (by car park): :mod:`.counts_stream` sends each
record to the step of its kind of entity. Each route's state is one table value,
written once per batch of records, and its step (``route_stream.route_step``) publishes alert transitions
(trip delay episodes, cancelled trips, route-level delays, bunching, silent buses) exactly once,
KPIs and the route's status. Inputs are batches of one route's entities from one published
feed, so faust's per-record cost is paid per route per feed, not per entity (see bench/mobility).

Start-up loads the GTFS Schedule feeds (MADINA_MOBILITY_GTFS_FEEDS); a broken feed stops it with
the loader's message naming file, line and field.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from madina.bus.topics import KPIS
from madina.eventtime import EventTimeBounds
from madina.geo import load_cities
from madina.streams.entities import EntityProcessor, Ticks, processor_main
from madina_proto.mobility.v1 import events_pb2
from services.mobility.domain.avl import PathIndex
from services.mobility.domain.gtfs import load_feeds
from services.mobility.domain.parking import load_car_parks
from services.mobility.processor.counts_stream import (
    CountsConfig,
    MobilityEntity,
    Unseen,
    entity_from_dict,
    entity_to_dict,
    mobility_entity_of,
    mobility_step,
)
from services.mobility.processor.route_stream import route_step, tick_message
from services.mobility.settings import MobilityProcessorSettings
from services.mobility.topics import (
    ALL,
    CAR_PARK_STATUS,
    PROCESSOR_INPUTS,
    RIDERSHIP,
    RIDERSHIP_VALIDATIONS,
    ROUTE_STATUS,
    ROUTE_TICKS,
)

SOURCE = "mobility-processor"
APP_ID = "madina-mobility-processor"


def mobility_processor(settings: MobilityProcessorSettings) -> EntityProcessor[MobilityEntity]:
    schedule = load_feeds(settings.mobility_gtfs_feeds)
    paths = PathIndex(schedule)
    bounds = EventTimeBounds()
    car_parks = load_car_parks(settings.mobility_car_parks_file)
    step = mobility_step(route_step(schedule, paths, settings.rules(), bounds), schedule, car_parks, load_cities(),
                         CountsConfig(settings.fraud_policy(), settings.parking_policy()), bounds)
    # Car parks share the routes' clock (the runner has one); only the served cities' are watched.
    watched = [p for p in car_parks if not settings.cities or car_parks[p].city_id in settings.cities]

    def clock_ticks(now: datetime) -> Iterator[tuple[str, events_pb2.RouteClockTick]]:
        for entity_id in (*schedule.routes, *watched):
            yield entity_id, tick_message(entity_id, now)

    return EntityProcessor(
        app_id=APP_ID,
        domain="mobility",
        source=SOURCE,
        inputs=PROCESSOR_INPUTS,
        outputs=(ROUTE_STATUS, KPIS, RIDERSHIP_VALIDATIONS, RIDERSHIP, CAR_PARK_STATUS),
        step=step,
        new_state=Unseen,
        state_to_dict=entity_to_dict,
        state_from_dict=entity_from_dict,
        entity_of=mobility_entity_of,
        ticks=Ticks(ROUTE_TICKS, settings.mobility_tick_interval_s, clock_ticks),
        table="route-state",
    )


def main() -> int:
    return processor_main(MobilityProcessorSettings, mobility_processor, ALL, source=SOURCE,
                          port_of=lambda settings: settings.mobility_processor_port)
