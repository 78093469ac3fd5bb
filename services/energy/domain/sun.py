"""Day and night at a lamp, from the sun's position (``astral``), cached per place and date.

A lamp should burn from about sunset to sunrise; whether it is wrong for it to be dark, or lit,
depends on where the sun is, not on fixed hours (Berkane's winter night is five hours longer than
its summer night). Each moment falls in one :class:`Phase`:

* ``NIGHT``: the sun below civil twilight (more than 6 degrees under the horizon): it is dark,
  a lamp commanded on must be lit.
* ``DAY``: the sun above the horizon and more than ``day_margin`` (30 min by default) past
  sunrise and before sunset: a lit lamp is wasting energy.
* ``TWILIGHT``: the rest. Photocells and schedules legitimately switch here, so neither the
  lamp-out nor the lamp-on-by-day rule judges a reading taken then.

astral takes ~25 µs per event, far too slow per record, so :class:`SunCalendar` memoises the four
events (civil dawn, sunrise, sunset, civil dusk) per 0.1-degree cell (about 11 km: twilight
moves by under 30 s across it) and UTC date, and a lookup is then a dict hit and three float
comparisons. Dates are UTC dates: for longitudes within about +-60 degrees (all Madina cities)
dawn and dusk of a UTC date both fall inside that date. Where the sun never sets or never gets
6 degrees below the horizon on that date (polar summer), the date is all day or all twilight.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import NamedTuple

from astral import Observer
from astral.sun import dawn, dusk, sunrise, sunset

CELL_DEG = 0.1
DEFAULT_DAY_MARGIN = timedelta(minutes=30)
_DAY_S = 86_400


class Phase(StrEnum):
    """Where the sun is, as far as street lighting cares."""

    NIGHT = "night"
    TWILIGHT = "twilight"
    DAY = "day"


class SunTimes(NamedTuple):
    """One date's events at one place, as POSIX seconds; ``nan`` when the event does not occur."""

    civil_dawn: float
    sunrise: float
    sunset: float
    civil_dusk: float

    def at(self, name: str) -> datetime:
        """An event as a UTC datetime, e.g. ``at("sunset")``."""
        value = getattr(self, name)
        if math.isnan(value):
            raise ValueError(f"no {name} on this date at this place")
        return datetime.fromtimestamp(value, UTC)


class SunCalendar:
    """Memoised sun events per (cell, UTC date); one per process is plenty.

    Holds no clock: every answer depends only on the arguments, so it is safe to share between
    the processor and the test oracle. The cache grows by one entry per cell per day (a city is
    a handful of cells), so it is bounded by ``max_entries`` and simply cleared when full.
    """

    def __init__(self, day_margin: timedelta = DEFAULT_DAY_MARGIN, max_entries: int = 20_000) -> None:
        self.day_margin_s = day_margin.total_seconds()
        self.max_entries = max_entries
        self._cache: dict[tuple[int, int, int], SunTimes] = {}

    def times(self, lat: float, lon: float, day: date) -> SunTimes:
        """Civil dawn, sunrise, sunset and civil dusk at ``(lat, lon)`` on UTC date ``day``."""
        return self._times(round(lat / CELL_DEG), round(lon / CELL_DEG), day.toordinal())

    def phase(self, lat: float, lon: float, moment: datetime) -> Phase:
        """The lighting phase at ``moment`` (tz-aware) for a place."""
        return self.phase_at(lat, lon, moment.timestamp())

    def phase_at(self, lat: float, lon: float, posix_s: float) -> Phase:
        """:meth:`phase` for POSIX seconds, the form the hot loop has at hand."""
        ordinal = _EPOCH_ORDINAL + int(posix_s // _DAY_S)
        times = self._times(round(lat / CELL_DEG), round(lon / CELL_DEG), ordinal)
        dawn_s, rise_s, set_s, dusk_s = times
        if math.isnan(rise_s):  # no sunrise: polar day or polar night
            if math.isnan(dawn_s):
                return Phase.DAY if _is_polar_day(lat, ordinal) else Phase.NIGHT
            return Phase.NIGHT if posix_s < dawn_s or posix_s >= dusk_s else Phase.TWILIGHT
        if not math.isnan(dawn_s) and (posix_s < dawn_s or posix_s >= dusk_s):
            return Phase.NIGHT
        if rise_s + self.day_margin_s <= posix_s < set_s - self.day_margin_s:
            return Phase.DAY
        return Phase.TWILIGHT

    def _times(self, lat_cell: int, lon_cell: int, ordinal: int) -> SunTimes:
        key = (lat_cell, lon_cell, ordinal)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        if len(self._cache) >= self.max_entries:
            self._cache.clear()
        observer = Observer(latitude=lat_cell * CELL_DEG, longitude=lon_cell * CELL_DEG)
        day = date.fromordinal(ordinal)
        times = SunTimes(
            _event(dawn, observer, day), _event(sunrise, observer, day),
            _event(sunset, observer, day), _event(dusk, observer, day),
        )
        self._cache[key] = times
        return times


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _event(function: object, observer: Observer, day: date) -> float:
    try:
        return function(observer, day, tzinfo=UTC).timestamp()  # type: ignore[operator, no-any-return]
    except ValueError:  # the sun does not reach that elevation on this date
        return math.nan


def _is_polar_day(lat: float, ordinal: int) -> bool:
    # Northern summer half-year (roughly equinox to equinox) with sun never setting.
    day_of_year = date.fromordinal(ordinal).timetuple().tm_yday
    northern_summer = 80 <= day_of_year < 266
    return (lat > 0) == northern_summer
