"""``madina service waste-processor``: the faust worker behind waste alerts, statuses and collections.

The entity-processor runner (:mod:`madina.streams.entities`) over ``waste.container-levels.v1``
and the container clock ticks, both keyed and partitioned by container: each container's state is
one table value, written once per batch of records, and its step (``container_stream.container_step``)
publishes alert transitions, the container's status, its fill KPI and the collections seen. The
runner gives each alert revision exactly once across kill -9, restarts and rebalances, and
dead-letters poison once: a record that does not decode, is not the container's under its own
key, names an unknown container, or readings the step refuses (implausible, stale, or outside the
event-time bounds of this process's clock, :mod:`madina.eventtime`, the rule the ingest API applies).

``madina service waste-district-processor`` is the district stage: the containers' summaries,
forwarded keyed by district on ``waste.container-summaries.v1``, folded by
``domain.districts.fold_container`` into each district's mean fill, containers full, containers
needing collection and containers at fire risk on ``kpis.v1`` (a container cannot see its district).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from madina.bus.alert_events import timestamp
from madina.bus.topics import KPIS, TopicSpec
from madina.streams.entities import EntityProcessor, EntityRecord, Step, Ticks, processor_main
from madina_proto.waste.v1 import container_pb2
from services.waste.convert import kpi_to_pb, summary_from_pb
from services.waste.domain.containers import load_containers
from services.waste.domain.detector import DetectionConfig
from services.waste.domain.districts import DistrictState, fold_container
from services.waste.processor.container_stream import StoredState, container_step
from services.waste.settings import WasteProcessorSettings
from services.waste.topics import (
    ALL,
    COLLECTIONS,
    CONTAINER_STATUS,
    CONTAINER_SUMMARIES,
    CONTAINER_TICKS,
    DISTRICT_INPUTS,
    PROCESSOR_INPUTS,
)

SOURCE = "waste-processor"
APP_ID = "madina-waste-processor"
DISTRICT_SOURCE = "waste-district-processor"


def waste_processor(settings: WasteProcessorSettings) -> EntityProcessor[StoredState]:
    containers = {c.id: c for c in load_containers(settings.waste_containers_file, serving=settings.cities)}
    config = DetectionConfig(event_time_bounds=settings.event_time_bounds())

    def clock_ticks(now: datetime) -> Iterator[tuple[str, container_pb2.ContainerClockTick]]:
        for container_id in containers:
            yield container_id, container_pb2.ContainerClockTick(container_id=container_id, tick_time=timestamp(now))

    return EntityProcessor(
        app_id=APP_ID,
        domain="waste",
        source=SOURCE,
        inputs=PROCESSOR_INPUTS,
        outputs=(CONTAINER_STATUS, COLLECTIONS, KPIS, CONTAINER_SUMMARIES),
        step=container_step(containers, config),
        new_state=StoredState.new,
        state_to_dict=StoredState.to_dict,
        state_from_dict=StoredState.from_dict,
        ticks=Ticks(CONTAINER_TICKS, settings.waste_tick_interval_s, clock_ticks),
        table="container-state",
    )


def district_step(state: DistrictState, record: EntityRecord) -> Step[DistrictState]:
    new_state, kpis = fold_container(state, summary_from_pb(record.value))
    return Step(new_state, records=[(KPIS, kpi.key, kpi_to_pb(kpi)) for kpi in kpis])


def _district_of(_spec: TopicSpec, message: container_pb2.ContainerSummaryChanged) -> str:
    return f"{message.district.city_id}/{message.district.district_id}"


def district_processor(settings: WasteProcessorSettings) -> EntityProcessor[DistrictState]:
    return EntityProcessor(
        app_id="madina-waste-district-processor",
        domain="waste",
        source=DISTRICT_SOURCE,
        inputs=DISTRICT_INPUTS,
        outputs=(KPIS,),
        step=district_step,
        new_state=DistrictState,
        state_to_dict=DistrictState.to_dict,
        state_from_dict=lambda data, _id: DistrictState.from_dict(data),
        entity_of=_district_of,
        table="district-state",
    )


def main() -> int:
    return processor_main(WasteProcessorSettings, waste_processor, ALL, source=SOURCE,
                          port_of=lambda settings: settings.waste_processor_port)


def district_main() -> int:
    return processor_main(WasteProcessorSettings, district_processor, ALL, source=DISTRICT_SOURCE,
                          port_of=lambda settings: settings.waste_district_processor_port)
