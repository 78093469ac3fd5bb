"""EPA NowCast for particles: the current AQI from the last 12 hourly means.

The daily PM AQI needs a complete 24-hour mean, so for the *current* index EPA and AirNow use the
NowCast, a weighted mean of the 12 most recent hourly concentrations c1 (newest) … c12:

1. range = max - min of the valid hours; scaled rate of change = range / max;
2. weight factor w = 1 - scaled rate, floored at 0.5 for PM (the floor approximates a 3-hour mean);
3. NowCast = Σ w^(i-1)·ci / Σ w^(i-1) over the valid hours (a missing hour drops out of both sums);
4. the NowCast is valid only when at least 2 of the 3 most recent hours are valid.

The concentration is then truncated (0.1 µg/m³ PM2.5, 1 µg/m³ PM10) and mapped through the 24 h
breakpoints, which :func:`~.aqi.compute_aqi` does.

Sources: US EPA, "PM NowCast" fact sheet (How the NowCast works, steps 1-8),
https://nepis.epa.gov/Exe/ZyPURL.cgi?Dockey=P100X0J6.txt ; AirNow-Tech, "The NowCast for PM2.5
and PM10" (completeness: 2 of the past 3 hourly values; raw hourly values, truncation after),
https://forum.airnowtech.org/t/the-nowcast-for-pm2-5-and-pm10/172 ; EPA-454/B-24-002 (May 2024)
section on the NowCast.

The ozone NowCast (8 hours, no weight floor in AirNow's implementation) is not implemented: EPA
reports the current ozone AQI from it only where the 8-hour breakpoints apply, and this platform's
current index keeps the rolling 8 h and 1 h ozone means.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.environment.domain import aqi as aqi_inputs
from services.environment.domain.aqi import AqiResult, compute_aqi

NOWCAST_HOURS = 12
PM_MIN_WEIGHT = 0.5


def nowcast(
    hourly: Sequence[float | None], *, hours: int = NOWCAST_HOURS, min_weight: float = PM_MIN_WEIGHT
) -> float | None:
    """NowCast concentration from hourly means, newest first (``None`` = missing hour).

    ``None`` when fewer than 2 of the 3 newest hours are valid.
    """
    recent = list(hourly[:hours])
    if sum(value is not None for value in recent[:3]) < 2:
        return None
    valid = [(age, value) for age, value in enumerate(recent) if value is not None]
    highest = max(value for _, value in valid)
    lowest = min(value for _, value in valid)
    weight = 1.0 if highest <= 0 else 1.0 - (highest - lowest) / highest
    weight = max(weight, min_weight)
    numerator = sum(weight**age * value for age, value in valid)
    denominator = sum(weight**age for age, _ in valid)
    return numerator / denominator


def nowcast_aqi(pm25_hourly: Sequence[float | None], pm10_hourly: Sequence[float | None]) -> AqiResult | None:
    """The current particle AQI from each pollutant's hourly means (newest first); ``None`` if neither is valid."""
    means: dict[str, float] = {}
    pm25 = nowcast(pm25_hourly)
    if pm25 is not None:
        means[aqi_inputs.PM25_24H] = pm25
    pm10 = nowcast(pm10_hourly)
    if pm10 is not None:
        means[aqi_inputs.PM10_24H] = pm10
    return compute_aqi(means)
