"""Event-time rolling means per station and measurand, bounded in memory and lateness.

**What a mean at time t is.** A window of length W is cut into ``SLICES_PER_WINDOW`` aligned
slices of ``W / SLICES_PER_WINDOW`` (epoch-aligned, so every replica agrees). The mean at t is
the mean of every sample in the slice holding t and the slices before it, back to 60 slices in
all: every sample counted lies in ``(t - W, t]`` and at most one slice (1/60 of W) at the old end
is left out. Regulators compute 8 h and 24 h means from hourly values for the same reason: exact
per-sample windows would need every raw sample kept (1,440 per day per pollutant at one a
minute), and this state is rewritten to a changelogged table on every record.

**Coverage** is the fraction of those slices holding at least one sample. A 24 h mean taken
after ten minutes of data has coverage 1/60; rules can demand e.g. 0.75 before they may breach
(the EU asks for 75 % of hourly values in a daily mean).

**Noise** is averaged energetically, ``10·log10(mean(10^(L/10)))``, because decibels are
logarithmic: one hour at 80 dB and one at 40 dB is 77 dB of sound energy, not 60.

**Lateness.** Samples up to ``allowed_lateness`` behind the station's newest event time are
folded into their slice; older ones are refused with a reason so the caller can count or
dead-letter them. Slices wholly outside every window at the newest time are dropped.

**Instantaneous values** (water samples) are simply the newest sample per measurand.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from madina.alerts.timeutil import require_utc, time_from_text, time_to_text

SLICES_PER_WINDOW = 60
DEFAULT_ALLOWED_LATENESS = timedelta(minutes=10)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Averaging(StrEnum):
    ARITHMETIC = "arithmetic"
    ENERGETIC = "energetic"


ENERGETIC_MEASURANDS = frozenset({"laeq_db"})


def averaging_for(measurand: str) -> Averaging:
    """Sound levels average energetically; everything else arithmetically."""
    return Averaging.ENERGETIC if measurand in ENERGETIC_MEASURANDS else Averaging.ARITHMETIC


@dataclass(frozen=True, order=True)
class WindowSpec:
    """A rolling window of ``seconds`` over one measurand."""

    measurand: str
    seconds: int

    def __post_init__(self) -> None:
        if self.seconds <= 0:
            raise ValueError(f"window for {self.measurand} must be positive, got {self.seconds} s")

    @classmethod
    def of(cls, measurand: str, window: timedelta) -> WindowSpec:
        return cls(measurand, int(window.total_seconds()))

    @property
    def key(self) -> str:
        """Stable text key used in serialised state, e.g. ``pm25_ugm3/86400s``."""
        return f"{self.measurand}/{self.seconds}s"

    @property
    def window(self) -> timedelta:
        return timedelta(seconds=self.seconds)

    @property
    def slice_seconds(self) -> int:
        return max(1, self.seconds // SLICES_PER_WINDOW)

    @property
    def slice_count(self) -> int:
        return self.seconds // self.slice_seconds

    @classmethod
    def from_key(cls, key: str) -> WindowSpec:
        measurand, seconds = key.rsplit("/", 1)
        return cls(measurand, int(seconds.removesuffix("s")))


HOUR = timedelta(hours=1)

# The averaging periods the standards and the AQI use; evaluators always keep these.
STANDARD_WINDOWS: tuple[WindowSpec, ...] = (
    WindowSpec.of("pm25_ugm3", 24 * HOUR),
    WindowSpec.of("pm10_ugm3", 24 * HOUR),
    WindowSpec.of("o3_ugm3", 8 * HOUR),
    WindowSpec.of("o3_ugm3", HOUR),
    WindowSpec.of("no2_ugm3", HOUR),
    WindowSpec.of("so2_ugm3", timedelta(minutes=10)),
    WindowSpec.of("so2_ugm3", HOUR),
    WindowSpec.of("so2_ugm3", 24 * HOUR),
    WindowSpec.of("co_mgm3", 8 * HOUR),
    WindowSpec.of("laeq_db", HOUR),
)


@dataclass(frozen=True)
class WindowMean:
    """A rolling mean with the evidence behind it."""

    measurand: str
    window: timedelta
    end_time: datetime
    mean: float
    sample_count: int
    coverage: float


class StationWindows:
    """Rolling-window buckets and newest values of one station.

    Mutable for speed inside one batch; callers that need purity work on :meth:`copy`. All
    state round-trips through :meth:`to_dict` / :meth:`from_dict` as JSON-safe data.
    """

    def __init__(self, specs: Iterable[WindowSpec] = ()) -> None:
        self.max_event_time: datetime | None = None
        self._slices: dict[WindowSpec, dict[int, list[float]]] = {spec: {} for spec in specs}
        self._latest: dict[str, tuple[datetime, float]] = {}

    @property
    def specs(self) -> tuple[WindowSpec, ...]:
        return tuple(sorted(self._slices))

    def track(self, specs: Iterable[WindowSpec]) -> None:
        """Keep exactly ``specs``: new windows start empty, dropped ones are forgotten."""
        wanted = set(specs)
        self._slices = {spec: self._slices.get(spec, {}) for spec in sorted(wanted)}

    def add(
        self,
        observe_time: datetime,
        values: Mapping[str, float],
        allowed_lateness: timedelta = DEFAULT_ALLOWED_LATENESS,
    ) -> str | None:
        """Fold one observation in; return why it was refused, or ``None`` if accepted."""
        moment = require_utc(observe_time, "observe_time")
        newest = self.max_event_time
        if newest is not None and moment < newest - allowed_lateness:
            return f"late: {moment.isoformat()} is more than {allowed_lateness} behind {newest.isoformat()}"
        for measurand, value in values.items():
            previous = self._latest.get(measurand)
            if previous is None or moment >= previous[0]:
                self._latest[measurand] = (moment, float(value))
        if newest is None or moment > newest:
            self.max_event_time = moment
            self._prune()
        assert self.max_event_time is not None
        for spec, slices in self._slices.items():
            sample = values.get(spec.measurand)
            if sample is None:
                continue
            index = _slice_index(moment, spec)
            if index <= _slice_index(self.max_event_time, spec) - spec.slice_count:
                continue
            contribution = float(sample)
            if averaging_for(spec.measurand) is Averaging.ENERGETIC:
                contribution = 10.0 ** (sample / 10.0)
            bucket = slices.setdefault(index, [0.0, 0])
            bucket[0] += contribution
            bucket[1] += 1
        return None

    def mean(self, spec: WindowSpec) -> WindowMean | None:
        """Mean of ``spec`` at the newest event time; ``None`` when the window holds no sample."""
        if spec not in self._slices:
            raise KeyError(f"window {spec.key} is not tracked")
        if self.max_event_time is None:
            return None
        newest = _slice_index(self.max_event_time, spec)
        oldest = newest - spec.slice_count
        total, count, filled = 0.0, 0, 0
        for index, (bucket_sum, bucket_count) in sorted(self._slices[spec].items()):
            if oldest < index <= newest and bucket_count:
                total += bucket_sum
                count += int(bucket_count)
                filled += 1
        if count == 0:
            return None
        mean = total / count
        if averaging_for(spec.measurand) is Averaging.ENERGETIC:
            mean = 10.0 * math.log10(mean)
        return WindowMean(
            measurand=spec.measurand,
            window=spec.window,
            end_time=self.max_event_time,
            mean=mean,
            sample_count=count,
            coverage=filled / spec.slice_count,
        )

    def latest(self, measurand: str) -> tuple[datetime, float] | None:
        """Newest ``(observe_time, value)`` of ``measurand``, by event time not arrival."""
        return self._latest.get(measurand)

    def copy(self) -> StationWindows:
        return StationWindows.from_dict(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_event_time": time_to_text(self.max_event_time),
            "windows": {
                spec.key: [[index, bucket[0], int(bucket[1])] for index, bucket in sorted(slices.items())]
                for spec, slices in sorted(self._slices.items())
            },
            "latest": {
                measurand: [time_to_text(moment), value]
                for measurand, (moment, value) in sorted(self._latest.items())
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StationWindows:
        windows = cls()
        windows.max_event_time = time_from_text(data.get("max_event_time"))
        for key, rows in data.get("windows", {}).items():
            windows._slices[WindowSpec.from_key(key)] = {
                int(index): [float(total), int(count)] for index, total, count in rows
            }
        for measurand, (moment, value) in data.get("latest", {}).items():
            restored = time_from_text(moment)
            assert restored is not None
            windows._latest[measurand] = (restored, float(value))
        return windows

    def _prune(self) -> None:
        assert self.max_event_time is not None
        for spec, slices in self._slices.items():
            cutoff = _slice_index(self.max_event_time, spec) - spec.slice_count
            for index in [i for i in slices if i <= cutoff]:
                del slices[index]


def _slice_index(moment: datetime, spec: WindowSpec) -> int:
    # Integer microseconds avoid float rounding putting a sample on a slice edge in the wrong slice.
    micros = (moment - _EPOCH) // timedelta(microseconds=1)
    return micros // (spec.slice_seconds * 1_000_000)
