"""What the environment service measures: measurand names, units, plausible ranges, observations.

Measurand names carry their unit (``pm25_ugm3``) as the proto fields do, so a value is never
ambiguous. :func:`validate_observation` is the single plausibility check; HTTP and gRPC ingest
use it to refuse bad input at the edge, and the evaluator uses it again so nothing implausible
reaches the windows whichever way it arrived.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class StationKind(StrEnum):
    """The family of sensors an observation comes from."""

    AIR = "air"
    WATER = "water"
    NOISE = "noise"


@dataclass(frozen=True)
class Measurand:
    """One measurable quantity with its unit, display label and physically plausible range."""

    name: str
    kind: StationKind
    label: str
    unit: str
    minimum: float
    maximum: float


# Ranges are generous on purpose: they reject broken sensors and unit mix-ups (ppb sent as
# µg/m³, mg/m³ sent as µg/m³), not real pollution episodes.
MEASURANDS: dict[str, Measurand] = {
    m.name: m
    for m in (
        Measurand("pm25_ugm3", StationKind.AIR, "PM2.5", "µg/m³", 0.0, 2000.0),
        Measurand("pm10_ugm3", StationKind.AIR, "PM10", "µg/m³", 0.0, 5000.0),
        Measurand("no2_ugm3", StationKind.AIR, "NO2", "µg/m³", 0.0, 4000.0),
        Measurand("o3_ugm3", StationKind.AIR, "O3", "µg/m³", 0.0, 2000.0),
        Measurand("so2_ugm3", StationKind.AIR, "SO2", "µg/m³", 0.0, 5000.0),
        Measurand("co_mgm3", StationKind.AIR, "CO", "mg/m³", 0.0, 200.0),
        Measurand("ph", StationKind.WATER, "pH", "", 0.0, 14.0),
        Measurand("turbidity_ntu", StationKind.WATER, "Turbidity", "NTU", 0.0, 4000.0),
        Measurand("nitrate_mgl", StationKind.WATER, "Nitrate", "mg/L", 0.0, 1000.0),
        Measurand("dissolved_oxygen_mgl", StationKind.WATER, "Dissolved oxygen", "mg/L", 0.0, 25.0),
        Measurand("ecoli_cfu_100ml", StationKind.WATER, "E. coli", "CFU/100 mL", 0.0, 1.0e7),
        Measurand("laeq_db", StationKind.NOISE, "LAeq", "dB(A)", 0.0, 160.0),
    )
}


def format_value(measurand: str, value: float) -> str:
    """``"42.1 µg/m³"`` for messages; pH has no unit."""
    unit = MEASURANDS[measurand].unit
    text = f"{value:.3g}" if abs(value) < 1 else f"{value:.1f}"
    return f"{text} {unit}" if unit else text


@dataclass(frozen=True)
class Observation:
    """Readings of one station at one event time; ``values`` maps measurand name to value."""

    station_id: str
    observe_time: datetime
    kind: StationKind
    values: Mapping[str, float] = field(default_factory=dict)


def validate_values(kind: StationKind | str, values: Mapping[str, float]) -> list[str]:
    """Problems with a set of readings, each naming the offending field; empty when valid."""
    errors: list[str] = []
    try:
        station_kind = StationKind(kind)
    except ValueError:
        kinds = ", ".join(k.value for k in StationKind)
        return [f"kind: unknown kind {kind!r} (expected one of {kinds})"]
    if not values:
        errors.append("values: at least one measurand is required")
    for name, value in values.items():
        measurand = MEASURANDS.get(name)
        if measurand is None:
            errors.append(f"values.{name}: unknown measurand")
            continue
        if measurand.kind is not station_kind:
            errors.append(f"values.{name}: is a {measurand.kind.value} measurand, not {station_kind.value}")
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            errors.append(f"values.{name}: must be a number, got {type(value).__name__}")
        elif not math.isfinite(value):
            errors.append(f"values.{name}: must be finite, got {value}")
        elif not measurand.minimum <= value <= measurand.maximum:
            errors.append(
                f"values.{name}: {value} outside plausible range "
                f"{measurand.minimum:g}..{measurand.maximum:g} {measurand.unit}".rstrip()
            )
    return errors


def validate_observation(observation: Observation) -> list[str]:
    """Problems with a whole observation, each naming the offending field; empty when valid."""
    errors: list[str] = []
    if not observation.station_id:
        errors.append("station_id: must not be empty")
    moment = observation.observe_time
    if moment.tzinfo is None or moment.utcoffset() is None:
        errors.append("observe_time: must be timezone-aware")
    errors.extend(validate_values(observation.kind, observation.values))
    return errors
