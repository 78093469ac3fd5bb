"""Clock-hour means per station and measurand: the hourly values regulators count with.

EPA and the EU build every statistic they report from *hourly values*: the NowCast is a weighted
mean of the last 12 hourly means, a daily mean is valid with 18 of its 24 hourly values, an 8 h
mean with 6 of 8, an annual mean with enough hours of the year. The rolling windows in
:mod:`.windows` slice time by window length, not by clock hour, so they cannot say how many
hourly values a mean holds; this module keeps the hours themselves.

**An hourly value is valid** when the hour's samples cover 75 % of it (Directive 2008/50/EC
Annex XI A and Annex VII A.2: "one hour values 75 % (i.e. 45 minutes)"). Coverage is judged in
quarter hours: 3 of the 4 quarters must hold a sample. A station reporting less often than every
15 minutes cannot fill 3 quarters, so the quorum scales with its reporting interval
(:func:`quarters_needed`): 2 quarters at 30 min, 1 at an hour or more (its one sample *is* the
hourly value).

Hours are epoch-aligned UTC hours (index = seconds since epoch // 3600). Local calendar days in
zones with whole-hour offsets are unions of such hours; in a zone with a half-hour offset a day
boundary splits one hour, which is then assigned to the day its start falls in.

Only the air measurands are kept (noise and water have no hourly-value statistics here), and only
the newest :data:`RETAIN_HOURS` hours: enough for a local calendar day of 25 hours closing after
the allowed lateness, and for the NowCast's 12 hours.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from services.environment.domain.measurands import MEASURANDS, StationKind

HOURLY_MEASURANDS = frozenset(name for name, m in MEASURANDS.items() if m.kind is StationKind.AIR)
RETAIN_HOURS = 50
VALID_HOUR_FRACTION = 0.75
_QUARTER_S = 900
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def hour_index(moment: datetime) -> int:
    """The epoch hour holding ``moment`` (tz-aware)."""
    return int((moment - _EPOCH) // timedelta(hours=1))


def hour_start(index: int) -> datetime:
    """UTC start of epoch hour ``index``."""
    return _EPOCH + timedelta(hours=index)


def quarters_needed(reporting_interval: timedelta) -> int:
    """Quarter hours that must hold a sample for a valid hourly value from a station reporting this often."""
    seconds = max(reporting_interval.total_seconds(), 1.0)
    expected = min(4, max(1, math.ceil(3600 / max(seconds, _QUARTER_S))))
    return max(1, math.ceil(VALID_HOUR_FRACTION * expected))


class HourlyStore:
    """Per measurand, ``hour index -> (sum, count, quarter bitmask)`` for the newest hours.

    Mutable inside one batch like :class:`~.windows.StationWindows`; :meth:`copy` for purity,
    :meth:`to_dict` / :meth:`from_dict` for the changelogged state. ``changes`` counts changes to
    any hour's quarter mask, so callers can cache what depends on hour validity.
    """

    def __init__(self) -> None:
        self.hours: dict[str, dict[int, tuple[float, int, int]]] = {}
        self.newest: int | None = None
        self.changes = 0

    def add(self, moment: datetime, values: Mapping[str, float]) -> None:
        """Fold one accepted sample in (lateness is the windows' job, decided before this)."""
        seconds = (moment - _EPOCH) // timedelta(seconds=1)
        index, offset = divmod(int(seconds), 3600)
        quarter = 1 << (offset // _QUARTER_S)
        if self.newest is None or index > self.newest:
            self.newest = index
            self._prune()
        if index <= self.newest - RETAIN_HOURS:
            return
        for measurand, value in values.items():
            if measurand not in HOURLY_MEASURANDS or value is None:
                continue
            hours = self.hours.get(measurand)
            if hours is None:
                hours = self.hours[measurand] = {}
            bucket = hours.get(index)
            if bucket is None:
                hours[index] = (float(value), 1, quarter)
                self.changes += 1
                continue
            # Buckets are replaced, never changed in place, so copy() can share them.
            total, count, mask = bucket
            hours[index] = (total + float(value), count + 1, mask | quarter)
            if not mask & quarter:
                self.changes += 1

    def mean(self, measurand: str, index: int, quorum: int) -> float | None:
        """The valid hourly mean of ``measurand`` in hour ``index``, or ``None`` (absent or < quorum)."""
        bucket = self.hours.get(measurand, {}).get(index)
        if bucket is None or bucket[2].bit_count() < quorum:
            return None
        return bucket[0] / bucket[1]

    def means(self, measurand: str, indices: Iterable[int], quorum: int) -> list[float | None]:
        return [self.mean(measurand, index, quorum) for index in indices]

    def valid_hours(self, measurand: str, first: int, last: int, quorum: int) -> int:
        """How many hours in ``[first, last]`` hold a valid hourly value."""
        hours = self.hours.get(measurand, {})
        return sum(
            1 for index, bucket in hours.items() if first <= index <= last and bucket[2].bit_count() >= quorum
        )

    def indices(self) -> list[int]:
        """Every hour holding a sample of any measurand, oldest first."""
        return sorted({index for hours in self.hours.values() for index in hours})

    def copy(self) -> HourlyStore:
        twin = HourlyStore()
        twin.hours = {measurand: dict(hours) for measurand, hours in self.hours.items()}
        twin.newest = self.newest
        twin.changes = self.changes
        return twin

    def to_dict(self) -> dict[str, Any]:
        return {
            "newest": self.newest,
            "hours": {
                measurand: [[index, total, int(count), int(mask)]
                            for index, (total, count, mask) in sorted(hours.items())]
                for measurand, hours in sorted(self.hours.items())
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> HourlyStore:
        store = cls()
        if not data:
            return store
        store.newest = data.get("newest")
        store.hours = {
            measurand: {int(index): (float(total), int(count), int(mask)) for index, total, count, mask in rows}
            for measurand, rows in data.get("hours", {}).items()
        }
        return store

    def _prune(self) -> None:
        assert self.newest is not None
        cutoff = self.newest - RETAIN_HOURS
        for hours in self.hours.values():
            for index in [i for i in hours if i <= cutoff]:
                del hours[index]
