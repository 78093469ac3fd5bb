"""The waste domain's topics. Readings travel as batches of one container's readings, so the
stream processor pays its per-record cost once per batch, not once per reading."""

from __future__ import annotations

from madina.bus.topics import DAY_MS, TopicSpec
from madina_proto.waste.v1 import container_pb2, plan_pb2

CONTAINER_LEVELS = TopicSpec(
    name="waste.container-levels.v1",
    message_type=container_pb2.ContainerLevelObservedBatch,
    key="container_id",
    description="Container fill-sensor readings (fill, temperature, tilt, lid, battery), batched per container.",
    retention_ms=14 * DAY_MS,
)
CONTAINER_TICKS = TopicSpec(
    name="waste.container-ticks.v1",
    message_type=container_pb2.ContainerClockTick,
    key="container_id",
    description="Processor clock ticks per container, so silence is detected inside the container's stream.",
    retention_ms=1 * DAY_MS,
)
CONTAINER_STATUS = TopicSpec(
    name="waste.container-status.v1",
    message_type=container_pb2.ContainerStatusChanged,
    key="container_id",
    description="Latest status per container (fill, fill rate, predicted full time, active alerts); compacted.",
    cleanup_policy="compact",
    retention_ms=-1,
)
COLLECTIONS = TopicSpec(
    name="waste.collections.v1",
    message_type=container_pb2.ContainerCollected,
    key="container_id",
    description="Emptyings seen in the readings, one record per collection.",
    retention_ms=90 * DAY_MS,
)
COLLECTION_PLANS = TopicSpec(
    name="waste.collection-plans.v1",
    message_type=plan_pb2.CollectionPlanned,
    key="depot_id",
    description="Every planned collection round (routes per truck), kept 90 days: the history crews "
                "and reports read.",
    retention_ms=90 * DAY_MS,
)
# Beside the history, not instead of it: compacting the history by depot would drop the plans crews
# and reports look back on, and a reader that wants only the current round (the operations map,
# which reads its layers from the start) would otherwise replay 90 days of plans to find it.
LATEST_COLLECTION_PLANS = TopicSpec(
    name="waste.latest-collection-plans.v1",
    message_type=plan_pb2.CollectionPlanned,
    key="depot_id",
    description="Each depot's newest planned round; compacted (what the map shows).",
    cleanup_policy="compact",
    retention_ms=-1,
)

CONTAINER_SUMMARIES = TopicSpec(
    name="waste.container-summaries.v1",
    message_type=container_pb2.ContainerSummaryChanged,
    key="<city>/<district>",
    description="A container's part in its district's KPIs (fill, needs collection, fire risk) when it "
                "changes enough to matter, keyed by district: the district stage's input.",
    retention_ms=7 * DAY_MS,
)

# Everything the processor reads must be co-partitioned with its container table.
PROCESSOR_INPUTS = (CONTAINER_LEVELS, CONTAINER_TICKS)
DISTRICT_INPUTS = (CONTAINER_SUMMARIES,)
ALL = (*PROCESSOR_INPUTS, CONTAINER_STATUS, COLLECTIONS, COLLECTION_PLANS, LATEST_COLLECTION_PLANS,
       *DISTRICT_INPUTS)
