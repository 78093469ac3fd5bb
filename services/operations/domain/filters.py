"""Which alerts a reader wants: the filters of ListAlerts, WatchAlerts and the REST list.

The store turns an :class:`AlertFilter` into SQL; streaming transports call
:meth:`AlertFilter.matches` on each change. Both read the same fields, so a list and a watch
with the same filter agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from madina.alerts.timeutil import require_utc
from services.operations.domain.model import AlertStatus, AlertView, Severity

ActivityFilter = Literal["active", "cleared", "any"]


@dataclass(frozen=True)
class AlertFilter:
    """Unset (empty, ``None``, ``"any"``) fields match everything; set fields must all match.

    ``domains`` and ``district_ids`` match any of their values and are kept as tuples.
    """

    state: ActivityFilter = "any"
    status: AlertStatus | None = None
    domains: Sequence[str] = ()
    min_severity: Severity | None = None
    district_ids: Sequence[str] = ()
    since: datetime | None = None
    """Only alerts changed at or after this time."""

    def __post_init__(self) -> None:
        if self.state not in get_args(ActivityFilter):
            raise ValueError(f"state must be one of {get_args(ActivityFilter)} (got {self.state!r})")
        object.__setattr__(self, "domains", _strings(self.domains))
        object.__setattr__(self, "district_ids", _strings(self.district_ids))
        if self.status is not None:
            object.__setattr__(self, "status", AlertStatus(self.status))
        if self.min_severity is not None:
            object.__setattr__(self, "min_severity", Severity(self.min_severity))
        if self.since is not None:
            object.__setattr__(self, "since", require_utc(self.since, "since"))

    def matches(self, alert: AlertView) -> bool:
        if self.state == "active" and not alert.active:
            return False
        if self.state == "cleared" and alert.active:
            return False
        if self.status is not None and alert.status is not self.status:
            return False
        if self.domains and alert.latest.domain not in self.domains:
            return False
        if self.min_severity is not None and alert.severity < self.min_severity:
            return False
        if self.district_ids and alert.latest.district.district_id not in self.district_ids:
            return False
        return self.since is None or alert.updated_time >= self.since


def _strings(values: Iterable[str] | str) -> tuple[str, ...]:
    # A bare string is one value, not an iterable of characters.
    if isinstance(values, str):
        return (values,) if values else ()
    return tuple(value for value in values if value)
