"""Telemetry the energy service ingests, and the plausibility rules the APIs apply to it.

Validation functions return a list of problems, each starting with the field's name
(``"lamps[3].dimming_pct: 120 outside 0..100 %"`` once the API prefixes the index), so an HTTP
ingest can answer 422 naming the field and a gRPC stream INVALID_ARGUMENT. Empty means valid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from services.energy.domain.network import Lamp, PvSite

MAX_ENERGY_WH = 1e13  # ten GWh: beyond any street-light or municipal PV counter
MAX_VOLTAGE_V = 500.0
MAX_IRRADIANCE_WM2 = 1600.0
FAULT_CODE_MAX_LEN = 64


@dataclass(frozen=True, slots=True)
class LampTelemetry:
    """One report of one street light's controller (FIWARE ``Streetlight`` telemetry)."""

    lamp_id: str
    observe_time: datetime
    on: bool
    """Relay state the controller reports: True when it is switched (commanded) on."""
    dimming_pct: float
    """Dimming level the driver is set to, 0-100 % of rated output."""
    power_w: float
    """Active power drawn, watts."""
    voltage_v: float | None = None
    """Supply voltage, volts; None when the controller does not measure it."""
    energy_wh: float | None = None
    """Cumulative energy counter, watt-hours; may reset to zero (controller replaced or rebooted)."""
    fault_code: str = ""
    """Vendor fault code the controller reports (e.g. ``DRIVER_FAILURE``); empty when healthy."""


@dataclass(frozen=True, slots=True)
class GenerationReading:
    """One report of one PV site's inverter/meter (FIWARE ``PhotovoltaicMeasurement``)."""

    site_id: str
    observe_time: datetime
    power_kw: float
    """AC power fed in, kilowatts."""
    energy_wh: float | None = None
    """Cumulative AC energy counter, watt-hours; may reset."""
    poa_irradiance_wm2: float | None = None
    """Plane-of-array irradiance from an on-site sensor, W/m²; lets the expectation follow clouds."""


def validate_lamp_telemetry(reading: LampTelemetry, lamps: Mapping[str, Lamp]) -> list[str]:
    """Problems with one lamp report, each naming its field; empty when valid."""
    errors: list[str] = []
    lamp = lamps.get(reading.lamp_id)
    if not reading.lamp_id:
        errors.append("lamp_id: must not be empty")
    elif lamp is None:
        errors.append(f"lamp_id: unknown lamp {reading.lamp_id[:100]!r}")
    _time(errors, reading.observe_time)
    if not isinstance(reading.on, bool):
        errors.append(f"on: must be true or false, got {type(reading.on).__name__}")
    _number(errors, "dimming_pct", reading.dimming_pct, 0.0, 100.0, "%")
    power_limit = 3 * lamp.rated_power_w + 50 if lamp is not None else 5000.0
    _number(errors, "power_w", reading.power_w, 0.0, power_limit, "W")
    if reading.voltage_v is not None:
        _number(errors, "voltage_v", reading.voltage_v, 0.0, MAX_VOLTAGE_V, "V")
    if reading.energy_wh is not None:
        _number(errors, "energy_wh", reading.energy_wh, 0.0, MAX_ENERGY_WH, "Wh")
    if not isinstance(reading.fault_code, str):
        errors.append("fault_code: must be text")
    elif len(reading.fault_code) > FAULT_CODE_MAX_LEN or not reading.fault_code.isprintable():
        errors.append(f"fault_code: at most {FAULT_CODE_MAX_LEN} printable characters")
    return errors


def validate_generation(reading: GenerationReading, sites: Mapping[str, PvSite]) -> list[str]:
    """Problems with one PV report, each naming its field; empty when valid."""
    errors: list[str] = []
    site = sites.get(reading.site_id)
    if not reading.site_id:
        errors.append("site_id: must not be empty")
    elif site is None:
        errors.append(f"site_id: unknown PV site {reading.site_id[:100]!r}")
    _time(errors, reading.observe_time)
    # An inverter cannot feed in much above its AC rating; 1.2x leaves room for meter error.
    limit = site.inverter_power_kw * 1.2 if site is not None else 1_000_000.0
    _number(errors, "power_kw", reading.power_kw, 0.0, limit, "kW")
    if reading.energy_wh is not None:
        _number(errors, "energy_wh", reading.energy_wh, 0.0, MAX_ENERGY_WH, "Wh")
    if reading.poa_irradiance_wm2 is not None:
        _number(errors, "poa_irradiance_wm2", reading.poa_irradiance_wm2, 0.0, MAX_IRRADIANCE_WM2, "W/m²")
    return errors


def _time(errors: list[str], moment: object) -> None:
    if not isinstance(moment, datetime):
        errors.append("observe_time: required")
    elif moment.tzinfo is None or moment.utcoffset() is None:
        errors.append("observe_time: must be timezone-aware")


def _number(errors: list[str], field: str, value: object, low: float, high: float, unit: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        errors.append(f"{field}: must be a number, got {type(value).__name__}")
    elif not math.isfinite(value):
        errors.append(f"{field}: must be finite, got {value}")
    elif not low <= value <= high:
        errors.append(f"{field}: {value:g} outside {low:g}..{high:g} {unit}")
