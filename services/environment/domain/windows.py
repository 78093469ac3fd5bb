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

**Determinism.** A mean must come out bit-identical whether the state stayed in memory or went
through JSON in between (a crash-replay must re-create the same alerts), and a JSON round trip
can change the order of the slice dict. So slice sums are added with ``math.fsum``, which is
exactly rounded and hence order-free; see :class:`_Window` for how that stays cheap per sample.
Slice indices are integer microseconds since the epoch over integer slice lengths.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import partial
from typing import Any

from madina.alerts.timeutil import require_utc, time_from_text, time_to_text

SLICES_PER_WINDOW = 60
DEFAULT_ALLOWED_LATENESS = timedelta(minutes=10)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def late_reason(
    observe_time: datetime, newest: datetime | None, allowed_lateness: timedelta = DEFAULT_ALLOWED_LATENESS
) -> str | None:
    """Why a sample dated ``observe_time`` is refused as late behind a station's ``newest`` event time, or ``None``.

    The one lateness rule: the windows apply it to every sample, and the ingest API applies it
    against the status feed's newest observation, so a reading the processor would drop is
    refused to its sender instead of vanishing.
    """
    if newest is None or observe_time >= newest - allowed_lateness:
        return None
    return f"late: {observe_time.isoformat()} is more than {allowed_lateness} behind {newest.isoformat()}"


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
        self._max_micros = 0
        self._windows: dict[WindowSpec, _Window] = {spec: _Window(spec) for spec in sorted(set(specs))}
        self._by_measurand: dict[str, tuple[_Window, ...]] = {}
        self._latest: dict[str, tuple[datetime, float]] = {}
        self._index_measurands()

    @property
    def specs(self) -> tuple[WindowSpec, ...]:
        return tuple(self._windows)

    def track(self, specs: Iterable[WindowSpec]) -> None:
        """Keep exactly ``specs``: new windows start empty, dropped ones are forgotten."""
        wanted = sorted(set(specs))
        if list(self._windows) == wanted:
            return
        kept: dict[WindowSpec, _Window] = {}
        for spec in wanted:
            window = self._windows.get(spec)
            if window is None:
                window = _Window(spec)
                if self.max_event_time is not None:
                    window.advance(self._max_micros)
            kept[spec] = window
        self._windows = kept
        self._index_measurands()

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
            return late_reason(moment, newest, allowed_lateness)
        latest = self._latest
        for measurand, value in values.items():
            previous = latest.get(measurand)
            if previous is None or moment >= previous[0]:
                latest[measurand] = (moment, float(value))
        micros = epoch_micros(moment)
        if newest is None or moment > newest:
            self.max_event_time = moment
            self._max_micros = micros
            for window in self._windows.values():
                if micros // window.slice_micros != window.newest:
                    window.advance(micros)
        # The per-sample hot path, so the bucket update is written out here rather than per window.
        by_measurand = self._by_measurand
        for measurand, sample in values.items():
            group = by_measurand.get(measurand)
            if group is None or sample is None:
                continue
            contribution = 10.0 ** (sample / 10.0) if measurand in ENERGETIC_MEASURANDS else float(sample)
            for window in group:
                index = micros // window.slice_micros
                newest_index = window.newest
                assert newest_index is not None  # every window advanced when max_event_time was set
                if index <= newest_index - window.slice_count:
                    continue
                bucket = window.slices.get(index)
                if bucket is None:
                    window.slices[index] = [contribution, 1]
                    if window.oldest is None or index < window.oldest:
                        window.oldest = index
                else:
                    bucket[0] += contribution
                    bucket[1] += 1
                if index != newest_index:
                    window.closed = None
                window.cached = None
        return None

    def mean(self, spec: WindowSpec) -> WindowMean | None:
        """Mean of ``spec`` at the newest event time; ``None`` when the window holds no sample."""
        stats = self._window(spec).stats()
        if stats is None:
            return None
        assert self.max_event_time is not None
        mean, count, coverage = stats
        return WindowMean(
            measurand=spec.measurand,
            window=spec.window,
            end_time=self.max_event_time,
            mean=mean,
            sample_count=count,
            coverage=coverage,
        )

    def value(self, spec: WindowSpec, min_coverage: float = 0.0) -> float | None:
        """Just the number :meth:`mean` would give, or ``None`` if empty or covering < ``min_coverage``.

        The evaluator asks this for every rule after every observation, so it skips building a
        :class:`WindowMean`.
        """
        return self._window(spec).value(min_coverage)

    def reader(self, spec: WindowSpec, min_coverage: float = 0.0) -> Callable[[], float | None]:
        """A function giving :meth:`value` of ``spec``, for callers asking after every sample.

        It skips looking the window up on each call, and stays valid until the next :meth:`track`.
        """
        return partial(self._window(spec).value, min_coverage)

    def latest(self, measurand: str) -> tuple[datetime, float] | None:
        """Newest ``(observe_time, value)`` of ``measurand``, by event time not arrival."""
        return self._latest.get(measurand)

    def copy(self) -> StationWindows:
        twin = StationWindows()
        twin.max_event_time = self.max_event_time
        twin._max_micros = self._max_micros
        twin._windows = {spec: window.copy() for spec, window in self._windows.items()}
        twin._latest = dict(self._latest)
        twin._index_measurands()
        return twin

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_event_time": time_to_text(self.max_event_time),
            "windows": {
                spec.key: [[index, *bucket] for index, bucket in sorted(window.slices.items())]
                for spec, window in self._windows.items()
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
        if windows.max_event_time is not None:
            windows._max_micros = epoch_micros(windows.max_event_time)
        restored: dict[WindowSpec, _Window] = {}
        for key, rows in data.get("windows", {}).items():
            window = _Window(WindowSpec.from_key(key))
            # Rows are [int, float, int] as written by to_dict; JSON keeps those types, so no conversion.
            slices = {index: [total, count] for index, total, count in rows}
            if windows.max_event_time is not None:
                window.advance(windows._max_micros)
            newest = window.newest
            if slices and newest is not None:
                lowest = newest - window.slice_count
                if not lowest < min(slices) <= max(slices) <= newest:
                    # Only a hand-made state can hold these; the mean has always ignored them.
                    slices = {i: b for i, b in slices.items() if lowest < i <= newest}
            window.slices = slices
            window.oldest = min(slices) if slices else None
            restored[window.spec] = window
        windows._windows = {spec: restored[spec] for spec in sorted(restored)}
        for measurand, (moment, value) in data.get("latest", {}).items():
            when = time_from_text(moment)
            assert when is not None
            windows._latest[measurand] = (when, float(value))
        windows._index_measurands()
        return windows

    def _window(self, spec: WindowSpec) -> _Window:
        window = self._windows.get(spec)
        if window is None:
            raise KeyError(f"window {spec.key} is not tracked")
        return window

    def _index_measurands(self) -> None:
        grouped: dict[str, list[_Window]] = {}
        for window in self._windows.values():
            grouped.setdefault(window.spec.measurand, []).append(window)
        self._by_measurand = {measurand: tuple(group) for measurand, group in grouped.items()}


class _Window:
    """The slices of one :class:`WindowSpec`, with its mean cached between changes.

    Invariant: ``slices`` holds only slices inside the window ending at the newest event time
    (indices in ``(newest - slice_count, newest]``), so the mean needs no range filter.

    The sum is ``math.fsum`` of every slice but the newest, plus the newest slice. ``fsum`` is
    exactly rounded and so independent of dict order, which a JSON round trip of the state may
    change; keeping it cached means only the newest slice, which nearly every sample lands in,
    is added per observation, and the ``fsum`` reruns only when an older slice changes (a late
    sample, or the newest slice moving on). The result is a function of the slices alone, so a
    replay from restored state gives the very same bits.
    """

    __slots__ = ("cached", "closed", "energetic", "newest", "oldest", "slice_count", "slice_micros", "slices", "spec")

    def __init__(self, spec: WindowSpec) -> None:
        self.spec = spec
        self.slice_micros = spec.slice_seconds * 1_000_000
        self.slice_count = spec.slice_count
        self.energetic = averaging_for(spec.measurand) is Averaging.ENERGETIC
        self.slices: dict[int, list[float]] = {}
        self.newest: int | None = None
        self.oldest: int | None = None
        self.closed: tuple[float, int] | None = None
        self.cached: tuple[float, int, float] | None = None

    def copy(self) -> _Window:
        twin = _Window.__new__(_Window)
        twin.spec = self.spec
        twin.slice_micros = self.slice_micros
        twin.slice_count = self.slice_count
        twin.energetic = self.energetic
        twin.slices = {index: [bucket[0], bucket[1]] for index, bucket in self.slices.items()}
        twin.newest = self.newest
        twin.oldest = self.oldest
        twin.closed = self.closed
        twin.cached = self.cached
        return twin

    def advance(self, max_micros: int) -> None:
        """Move the window's end to the slice holding ``max_micros``, dropping slices that fell out."""
        newest = max_micros // self.slice_micros
        if newest == self.newest:
            return
        self.newest = newest
        self.closed = None
        self.cached = None
        slices = self.slices
        cutoff = newest - self.slice_count
        oldest = self.oldest
        if oldest is None or oldest > cutoff:
            return
        if cutoff - oldest < len(slices):
            for index in range(oldest, cutoff + 1):
                slices.pop(index, None)
        else:
            for index in [index for index in slices if index <= cutoff]:
                del slices[index]
        if not slices:
            self.oldest = None
        elif cutoff + 1 in slices:
            self.oldest = cutoff + 1
        else:
            self.oldest = min(slices)

    def value(self, min_coverage: float) -> float | None:
        stats = self.cached or self.stats()
        if stats is None or stats[2] < min_coverage:
            return None
        return stats[0]

    def stats(self) -> tuple[float, int, float] | None:
        """``(mean, sample_count, coverage)``, or ``None`` when the window holds no sample."""
        if self.cached is not None:
            return self.cached
        slices = self.slices
        if not slices or self.newest is None:
            return None
        closed = self.closed
        if closed is None:
            newest = self.newest
            older = [bucket for index, bucket in slices.items() if index != newest]
            counts = [int(bucket[1]) for bucket in older]
            closed = self.closed = (math.fsum([bucket[0] for bucket in older]), sum(counts))
        total, count = closed
        current = slices.get(self.newest)
        if current is not None:
            total += current[0]
            count += int(current[1])
        mean = total / count
        if self.energetic:
            mean = 10.0 * math.log10(mean)
        self.cached = (mean, count, len(slices) / self.slice_count)
        return self.cached


def epoch_micros(moment: datetime) -> int:
    """Integer microseconds since the epoch, so no float rounding can put a sample in the wrong slice."""
    return (moment - _EPOCH) // _MICROSECOND


_MICROSECOND = timedelta(microseconds=1)
