"""The environment domain's topics. Observation topics carry batches of one station's observations,
so a stream processor pays its per-record cost once per batch, not once per observation."""

from __future__ import annotations

from madina.bus.topics import DAY_MS, TopicSpec
from madina_proto.environment.v1 import observations_pb2, station_pb2
from services.environment.domain.measurands import StationKind

AIR_QUALITY = TopicSpec(
    name="environment.air-quality.v1",
    message_type=observations_pb2.AirQualityObservedBatch,
    key="station_id",
    description="Air-quality observations (PM2.5, PM10, NO2, O3, SO2, CO), batched per station.",
    retention_ms=14 * DAY_MS,
)
WATER_QUALITY = TopicSpec(
    name="environment.water-quality.v1",
    message_type=observations_pb2.WaterQualityObservedBatch,
    key="station_id",
    description="Water-quality observations (pH, turbidity, nitrate, dissolved oxygen, E. coli), batched per station.",
    retention_ms=14 * DAY_MS,
)
NOISE = TopicSpec(
    name="environment.noise.v1",
    message_type=observations_pb2.NoiseObservedBatch,
    key="station_id",
    description="Noise observations (LAeq), batched per station.",
    retention_ms=14 * DAY_MS,
)
STATION_TICKS = TopicSpec(
    name="environment.station-ticks.v1",
    message_type=station_pb2.StationClockTick,
    key="station_id",
    description="Processor clock ticks per station, so silence is detected inside the station's stream.",
    retention_ms=1 * DAY_MS,
)
AQI = TopicSpec(
    name="environment.aqi.v1",
    message_type=observations_pb2.AirQualityIndexComputed,
    key="station_id",
    description="US EPA Air Quality Index per station, when it changes.",
    retention_ms=30 * DAY_MS,
)
STATION_STATUS = TopicSpec(
    name="environment.station-status.v1",
    message_type=station_pb2.StationStatusChanged,
    key="station_id",
    description="Latest status per station (values, rolling means, AQI, active alerts); compacted.",
    cleanup_policy="compact",
    retention_ms=-1,
)

OBSERVATION_TOPICS = (AIR_QUALITY, WATER_QUALITY, NOISE)
TOPIC_OF = {StationKind.AIR: AIR_QUALITY, StationKind.WATER: WATER_QUALITY, StationKind.NOISE: NOISE}
# Everything the processor reads must be co-partitioned with its station table.
PROCESSOR_INPUTS = (*OBSERVATION_TOPICS, STATION_TICKS)
ALL = (*PROCESSOR_INPUTS, AQI, STATION_STATUS)
