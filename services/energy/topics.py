"""The energy domain's topics.

Telemetry and lighting commands are keyed by circuit id, so the circuit processor sees one
circuit's reports and commands in order in one stream (a command is confirmed by the telemetry
that follows it). Generation is keyed by PV site id and read by the PV processor: the entity-
processor runner keeps one entity kind per processor, and a site is not a circuit.
"""

from __future__ import annotations

from madina.bus.topics import DAY_MS, TopicSpec
from madina_proto.energy.v1 import control_pb2, status_pb2, telemetry_pb2
from madina_proto.kpis.v1 import kpis_pb2

STREETLIGHT_TELEMETRY = TopicSpec(
    name="energy.streetlight-telemetry.v1",
    message_type=telemetry_pb2.StreetlightTelemetryBatch,
    key="circuit_id",
    description="Street-light controller reports, batched per circuit.",
    retention_ms=14 * DAY_MS,
)
LIGHTING_COMMANDS = TopicSpec(
    name="energy.lighting-commands.v1",
    message_type=control_pb2.LightingCommand,
    key="circuit_id",
    description="Dimming commands per circuit, with who issued them and why (the audit trail).",
    retention_ms=365 * DAY_MS,
)
CIRCUIT_TICKS = TopicSpec(
    name="energy.circuit-ticks.v1",
    message_type=telemetry_pb2.CircuitClockTick,
    key="circuit_id",
    description="Processor clock ticks per circuit: silence, command timeouts, closing quiet hours.",
    retention_ms=1 * DAY_MS,
)
COMMAND_CONFIRMATIONS = TopicSpec(
    name="energy.lighting-confirmations.v1",
    message_type=control_pb2.LightingCommandConfirmed,
    key="circuit_id",
    description="Lighting commands the circuit's telemetry showed carried out.",
    retention_ms=365 * DAY_MS,
)
CIRCUIT_STATUS = TopicSpec(
    name="energy.circuit-status.v1",
    message_type=status_pb2.CircuitStatusChanged,
    key="circuit_id",
    description="Latest lamp states per circuit; compacted.",
    cleanup_policy="compact",
    retention_ms=-1,
)
GENERATION = TopicSpec(
    name="energy.generation.v1",
    message_type=telemetry_pb2.GenerationObservedBatch,
    key="site_id",
    description="PV inverter/meter reports, batched per site.",
    retention_ms=14 * DAY_MS,
)
SITE_TICKS = TopicSpec(
    name="energy.site-ticks.v1",
    message_type=telemetry_pb2.SiteClockTick,
    key="site_id",
    description="PV processor clock ticks per site, so silence is detected inside the site's stream.",
    retention_ms=1 * DAY_MS,
)

CIRCUIT_CONSUMPTION = TopicSpec(
    name="energy.circuit-consumption.v1",
    message_type=status_pb2.CircuitConsumptionClosed,
    key="<city>/<district>",
    description="Circuits' closed-period energy KPIs keyed by district: the district stage's input.",
    retention_ms=7 * DAY_MS,
)
# kpis.v1 is compacted to the latest value per series, so it cannot hold history. Here the key is
# the period itself: compaction keeps each period's final value (a district revised as its circuits
# close replaces its own earlier value) and deletion drops periods older than the retention.
CONSUMPTION_HISTORY = TopicSpec(
    name="energy.consumption-history.v1",
    message_type=kpis_pb2.KpiObserved,
    key="<kpi_id>/<entity kind>:<entity id>:<period>/<period start>",
    description="Every closed hour and day of energy KPIs (lamps, circuits, districts, PV sites); "
                "what GetConsumption and GetGeneration serve, rebuilt from here when the API starts.",
    cleanup_policy="compact,delete",
    retention_ms=62 * DAY_MS,
)

# Each processor's inputs are co-partitioned with its table.
CIRCUIT_INPUTS = (STREETLIGHT_TELEMETRY, LIGHTING_COMMANDS, CIRCUIT_TICKS)
SITE_INPUTS = (GENERATION, SITE_TICKS)
DISTRICT_INPUTS = (CIRCUIT_CONSUMPTION,)
ALL = (*CIRCUIT_INPUTS, COMMAND_CONFIRMATIONS, CIRCUIT_STATUS, *SITE_INPUTS, *DISTRICT_INPUTS, CONSUMPTION_HISTORY)
