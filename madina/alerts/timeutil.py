"""Event-time helpers shared by the alert state machines.

Alert state lives in changelogged tables and is replayed after a crash, so every timestamp is
held as a tz-aware UTC ``datetime`` in memory and as an ISO-8601 string in the stored dict.
Naive datetimes are refused rather than guessed at: a silently assumed zone would shift episode
boundaries and therefore alert ids.
"""

from __future__ import annotations

from datetime import UTC, datetime


def require_utc(moment: datetime, field: str = "time") -> datetime:
    """Return ``moment`` converted to UTC; raise ``ValueError`` if it carries no zone."""
    if moment.tzinfo is UTC:
        return moment
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{field} must be timezone-aware (got naive {moment.isoformat()})")
    return moment.astimezone(UTC)


def time_to_text(moment: datetime | None) -> str | None:
    """Canonical, fixed-precision ISO text so equal instants always serialise identically."""
    if moment is None:
        return None
    # A state write formats every time its episodes hold, mostly the same few instants (the
    # entity's latest event times), and an aware datetime's isoformat costs ~20x a dict lookup.
    # Equal aware datetimes are the same instant, hence the same text; a naive one never matches.
    text = _texts.get(moment)
    if text is None:
        text = require_utc(moment).isoformat(timespec="microseconds")
        if len(_texts) >= _TEXTS_KEPT:
            _texts.clear()
        _texts[moment] = text
    return text


_TEXTS_KEPT = 4096
_texts: dict[datetime, str] = {}


def time_from_text(text: str | None) -> datetime | None:
    """Inverse of :func:`time_to_text`."""
    if text is None:
        return None
    return require_utc(datetime.fromisoformat(text))
