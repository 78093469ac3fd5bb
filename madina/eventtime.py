"""Which event times a domain accepts: the one rule its ingest APIs and its processor share.

A reading is judged against the clock of whoever judges it, not only against the entity's newest
reading: one observation dated year 9000 would otherwise move a station's (or a container's)
clock there, and every real reading after it would be "late" for good. So an event time must lie
within ``max_future_skew`` ahead of now (device clocks drift, a little) and ``max_age`` behind it
(older data no longer moves any window or alert worth having). The API refuses what falls outside
with a 422 and the reason; the processor dead-letters it with the same reason; neither accepts
what the other would drop on this ground. (Lateness against an entity's newest reading, which only
the processor knows, stays in each domain.) Pure: no I/O, no clock of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

DEFAULT_MAX_FUTURE_SKEW = timedelta(minutes=5)
DEFAULT_MAX_AGE = timedelta(days=7)


@dataclass(frozen=True)
class EventTimeBounds:
    """How far ahead of and behind the judge's clock an event time may be."""

    max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW
    max_age: timedelta = DEFAULT_MAX_AGE


def event_time_problem(moment: datetime, now: datetime, bounds: EventTimeBounds = EventTimeBounds()) -> str | None:
    """Why ``moment`` is not acceptable at ``now`` (both tz-aware), or ``None`` when it is."""
    if moment > now + bounds.max_future_skew:
        return (f"{moment.isoformat()} is in the future: more than {bounds.max_future_skew} "
                f"ahead of {now.isoformat()}")
    if moment < now - bounds.max_age:
        return f"{moment.isoformat()} is too old: more than {bounds.max_age} before {now.isoformat()}"
    return None
