"""``madina service environment-processor``: the faust worker behind environment alerts.

The entity-processor runner (:mod:`madina.streams.entities`) over the three observation topics
and the station clock ticks, all keyed and partitioned by station: each station's state is one
table value, written once per batch of records, and its step (``station_stream.station_step``) publishes
alert transitions, AQI, KPIs and station status. faust's per-record cost is paid once per *batch*
of observations, which is what lets one worker keep up with thousands of observations per second
(see bench/environment). The runner gives each alert revision exactly once across kill -9,
restarts and rebalances, and dead-letters poison once.

Poison: a record that does not decode, is not the station's under its own key, carries times or
numbers no domain value holds, or is dated outside the event-time bounds of this process's clock
(madina.eventtime, the rule the ingest API applies) goes to the topic's
``.dlq`` with the reason, before it can touch a station's state; the agent goes on.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from madina.bus.alert_events import timestamp
from madina.bus.topics import KPIS
from madina.streams.entities import EntityProcessor, Ticks, processor_main
from madina_proto.environment.v1 import station_pb2
from services.environment.domain.evaluator import EvaluatorConfig
from services.environment.domain.profiles import load_profiles, select_annual_limits, select_rules
from services.environment.domain.stations import load_stations
from services.environment.processor.station_stream import StoredState, station_step
from services.environment.settings import EnvironmentProcessorSettings
from services.environment.topics import ALL, AQI, PROCESSOR_INPUTS, STATION_STATUS, STATION_TICKS

SOURCE = "environment-processor"
APP_ID = "madina-environment-processor"


def environment_processor(settings: EnvironmentProcessorSettings) -> EntityProcessor[StoredState]:
    stations = {s.id: s for s in load_stations(settings.environment_stations_file, serving=settings.cities)}
    profiles = load_profiles(settings.environment_extra_profile_files)
    rules = select_rules(profiles, settings.environment_profiles)
    limits = select_annual_limits(profiles, settings.environment_profiles)
    config = EvaluatorConfig(event_time_bounds=settings.event_time_bounds())

    def clock_ticks(now: datetime) -> Iterator[tuple[str, station_pb2.StationClockTick]]:
        for station_id in stations:
            yield station_id, station_pb2.StationClockTick(station_id=station_id, tick_time=timestamp(now))

    return EntityProcessor(
        app_id=APP_ID,
        domain="environment",
        source=SOURCE,
        inputs=PROCESSOR_INPUTS,
        outputs=(AQI, STATION_STATUS, KPIS),
        step=station_step(stations, rules, config, limits),
        new_state=StoredState.new,
        state_to_dict=StoredState.to_dict,
        state_from_dict=StoredState.from_dict,
        ticks=Ticks(STATION_TICKS, settings.environment_tick_interval_s, clock_ticks),
        table="station-state",
    )


def main() -> int:
    return processor_main(EnvironmentProcessorSettings, environment_processor, ALL, source=SOURCE,
                          port_of=lambda settings: settings.environment_processor_port)
