"""Energy from cumulative counters: per-interval deltas robust to resets and gaps, split by hour.

A controller reports a cumulative counter (``energy_wh``), not the energy of an interval, so the
energy between two reports is their difference. Three things break the naive difference:

* **Reset.** A controller replaced or rebooted restarts its counter near zero: the new value is
  smaller than the last. The energy since the reset is then the new value itself; what was used
  between the last report and the reset is unknown and not invented (counted as ``reset``).
* **Implausible step.** A jump larger than the lamp could draw over the interval
  (``implausible_factor`` x rated power x time) is a swapped or corrupted meter; the step is
  dropped and the new value becomes the reference.
* **Gap.** After hours of silence the difference is the energy of the whole silence. It is
  spread over the hours it covers in proportion to time (the counter cannot say more).

:func:`split_by_hour` does the spreading; both live here so the circuit evaluator, the PV site
evaluator and the test oracle use the same arithmetic.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

HOUR_S = 3600


class DeltaKind(StrEnum):
    NORMAL = "normal"
    RESET = "reset"
    IMPLAUSIBLE = "implausible"
    FIRST = "first"


class CounterDelta(NamedTuple):
    energy_wh: float
    kind: DeltaKind


def counter_delta(
    previous_wh: float | None, current_wh: float, interval_s: float, max_power_w: float, implausible_factor: float
) -> CounterDelta:
    """Energy since the previous reading of a cumulative counter, in Wh (see the module docstring)."""
    if previous_wh is None:
        return CounterDelta(0.0, DeltaKind.FIRST)
    delta = current_wh - previous_wh
    # One Wh of slack: counters are rounded, and a zero-length interval must still accept 0.
    ceiling = max_power_w * implausible_factor * max(interval_s, 0.0) / HOUR_S + 1.0
    if delta < 0:
        if current_wh > ceiling:
            return CounterDelta(0.0, DeltaKind.IMPLAUSIBLE)
        return CounterDelta(current_wh, DeltaKind.RESET)
    if delta > ceiling:
        return CounterDelta(0.0, DeltaKind.IMPLAUSIBLE)
    return CounterDelta(delta, DeltaKind.NORMAL)


def hour_start(posix_s: float) -> int:
    """Start of the UTC hour containing ``posix_s``, as integer POSIX seconds."""
    return int(posix_s // HOUR_S) * HOUR_S


def split_by_hour(start_s: float, end_s: float, amount: float) -> list[tuple[int, float]]:
    """``amount`` spread over ``[start_s, end_s)`` in proportion to time, as (hour start, share).

    A zero-length interval puts everything in the hour of ``end_s``.
    """
    first = hour_start(start_s)
    last = hour_start(end_s) if end_s > start_s else first
    if end_s <= start_s or first == hour_start(end_s - 1e-9):
        return [(hour_start(end_s), amount)]
    span = end_s - start_s
    shares: list[tuple[int, float]] = []
    hour = first
    while hour <= last:
        low = max(start_s, hour)
        high = min(end_s, hour + HOUR_S)
        if high > low:
            shares.append((hour, amount * (high - low) / span))
        hour += HOUR_S
    return shares
