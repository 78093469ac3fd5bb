"""Pure energy logic: plain values in, plain values out, no Kafka, gRPC, HTTP or protobuf.

* :mod:`.network` - lamps, circuits, cabinets, PV sites from ``data/network.yaml`` (``load_network``).
* :mod:`.config` - rule settings from ``data/energy.yaml`` (``load_config``), grid emission factor.
* :mod:`.telemetry` - ``LampTelemetry``, ``GenerationReading`` and their field-named validation.
* :mod:`.sun` - day / twilight / night at a place (astral, cached per cell and date).
* :mod:`.metering` - counter deltas robust to resets and gaps, split by hour.
* :mod:`.dimming` - schedules -> per-circuit ``LightingCommand``s; matching telemetry to commands.
* :mod:`.circuit` - ``step``: one circuit's state + events -> state, alerts, KPIs, confirmations.
* :mod:`.health` - what a circuit's status adds: lamps in fault, supply voltage, open alerts.
* :mod:`.district` - district totals folded from circuit KPIs.
* :mod:`.pv` - clear-sky PV expectation (pvlib, cached per site and day) and underperformance.

Typical wiring (processor keyed by circuit id)::

    network, config, sun = load_network(), load_config(), SunCalendar()
    ctx = CircuitContext.of(network, circuit_id, config, sun)        # once per circuit
    state, transitions, kpis, confirmations, rejected = step(state, [TelemetryBatch(...)], ctx)
"""

from services.energy.domain.circuit import (
    CircuitContext,
    CircuitState,
    ClockTick,
    RejectCode,
    Rejection,
    StepResult,
    TelemetryBatch,
    apply_telemetry,
    step,
)
from services.energy.domain.config import EnergyConfig, load_config
from services.energy.domain.dimming import (
    CommandConfirmation,
    DimmingSchedule,
    LightingCommand,
    ScheduleStep,
    commands_between,
    level_at,
    validate_schedule,
)
from services.energy.domain.district import DistrictState, fold_district
from services.energy.domain.kpis import EnergyKpi
from services.energy.domain.network import Cabinet, Circuit, Lamp, Network, PvSite, load_network
from services.energy.domain.pv import PvExpectation, SiteState, apply_generation, check_site_silence
from services.energy.domain.sun import Phase, SunCalendar
from services.energy.domain.telemetry import (
    GenerationReading,
    LampTelemetry,
    validate_generation,
    validate_lamp_telemetry,
)

__all__ = [
    "Cabinet",
    "Circuit",
    "CircuitContext",
    "CircuitState",
    "ClockTick",
    "CommandConfirmation",
    "DimmingSchedule",
    "DistrictState",
    "EnergyConfig",
    "EnergyKpi",
    "GenerationReading",
    "Lamp",
    "LampTelemetry",
    "LightingCommand",
    "Network",
    "Phase",
    "PvExpectation",
    "PvSite",
    "RejectCode",
    "Rejection",
    "ScheduleStep",
    "SiteState",
    "StepResult",
    "SunCalendar",
    "TelemetryBatch",
    "apply_generation",
    "apply_telemetry",
    "check_site_silence",
    "commands_between",
    "fold_district",
    "level_at",
    "load_config",
    "load_network",
    "step",
    "validate_generation",
    "validate_lamp_telemetry",
    "validate_schedule",
]
