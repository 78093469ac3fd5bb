"""A container sensor's reading and the one plausibility check every boundary applies to it.

:func:`validate_reading` returns problems as ``"field: problem"`` strings (the environment's
convention), so the HTTP ingest can answer 422 naming the field, gRPC ``INVALID_ARGUMENT``, and
the step function can refuse the same readings whichever way they arrived.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from madina.eventtime import EventTimeBounds, event_time_problem

# Generous on purpose: they reject broken sensors and unit mix-ups (percent sent as a ratio,
# Fahrenheit sent as Celsius in a fire is still < 150), not unusual but real values.
TEMPERATURE_C_RANGE = (-40.0, 150.0)
TILT_DEG_RANGE = (0.0, 180.0)
BATTERY_PERCENT_RANGE = (0.0, 100.0)


@dataclass(frozen=True)
class Reading:
    """One report of one container's sensor; optional channels are ``None`` when not measured.

    ``fill_ratio`` is FIWARE ``WasteContainer.fillingLevel``: 0 empty, 1 full to the rim.
    ``tilt_deg`` is the angle from upright (0 upright, 90 on its side).
    """

    container_id: str
    observe_time: datetime
    fill_ratio: float
    temperature_c: float | None = None
    tilt_deg: float | None = None
    lid_open: bool | None = None
    battery_percent: float | None = None


def validate_reading(
    reading: Reading, now: datetime | None = None, bounds: EventTimeBounds = EventTimeBounds()
) -> list[str]:
    """Problems with ``reading``, each ``"field: problem"``; empty when valid.

    With ``now`` (the judge's clock) the observe time must also lie within ``bounds`` of it, so one
    reading dated year 9000 cannot move a container's clock there.
    """
    errors: list[str] = []
    if not reading.container_id:
        errors.append("container_id: must not be empty")
    moment = reading.observe_time
    if moment.tzinfo is None or moment.utcoffset() is None:
        errors.append("observe_time: must be timezone-aware")
    elif now is not None and (problem := event_time_problem(moment, now, bounds)) is not None:
        errors.append(f"observe_time: {problem}")
    _check_number(errors, "fill_ratio", reading.fill_ratio, (0.0, 1.0), required=True)
    _check_number(errors, "temperature_c", reading.temperature_c, TEMPERATURE_C_RANGE)
    _check_number(errors, "tilt_deg", reading.tilt_deg, TILT_DEG_RANGE)
    _check_number(errors, "battery_percent", reading.battery_percent, BATTERY_PERCENT_RANGE)
    if reading.lid_open is not None and not isinstance(reading.lid_open, bool):
        errors.append(f"lid_open: must be true or false, got {type(reading.lid_open).__name__}")
    return errors


def _check_number(
    errors: list[str], field: str, value: object, bounds: tuple[float, float], *, required: bool = False
) -> None:
    if type(value) is float and bounds[0] <= value <= bounds[1]:
        return  # the common case, answered first (NaN fails the comparison and is judged below)
    if value is None:
        if required:
            errors.append(f"{field}: required")
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        errors.append(f"{field}: must be a number, got {type(value).__name__}")
    elif not math.isfinite(value):
        errors.append(f"{field}: must be finite, got {value}")
    elif not bounds[0] <= value <= bounds[1]:
        errors.append(f"{field}: {value:g} outside {bounds[0]:g}..{bounds[1]:g}")
