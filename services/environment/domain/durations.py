"""Duration text as written in the environment data files: ``"24h"``, ``"10m"``, ``"1h30m"``, ``90``."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+(?:\.\d+)?)(d|h|m|s)")
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(value: object) -> timedelta:
    """Parse ``"1h30m"``-style text, or a bare number of seconds; raise ``ValueError`` otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '10m' or '24h', got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"duration must not be negative, got {value!r}")
        return timedelta(seconds=value)
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        if text == "0":
            return timedelta(0)
        parts = _PART.findall(text)
        if parts and "".join(number + unit for number, unit in parts) == text:
            return timedelta(seconds=sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts))
    raise ValueError(f"expected a duration such as '10m' or '24h', got {value!r}")


def format_duration(span: timedelta) -> str:
    """Compact inverse of :func:`parse_duration` for messages: ``"24h"``, ``"10m"``, ``"1h30m"``."""
    seconds = int(span.total_seconds())
    if seconds == 0:
        return "0s"
    hours, remainder = divmod(seconds, 3600)
    minutes, seconds = divmod(remainder, 60)
    parts = ((hours, "h"), (minutes, "m"), (seconds, "s"))
    return "".join(f"{count}{unit}" for count, unit in parts if count)
