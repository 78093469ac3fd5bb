"""Plain objects of the operations center: alert events and operator actions as they arrive, the
current view of an alert, and the changes the store records.

Severity and AlertState come from :mod:`madina.alerts.model` so every service shares one
vocabulary; the enums defined here are the operations center's own and, like those, carry the
proto's numbers (zero, ``*_UNSPECIFIED``, has no member), so mapping to the wire is ``int(member)``.
Every timestamp is a tz-aware UTC ``datetime``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum

from madina.alerts.model import AlertState, Severity
from madina.alerts.timeutil import require_utc

__all__ = [
    "EVENT_CAUSE",
    "ActionType",
    "AlertAction",
    "AlertDetail",
    "AlertEvent",
    "AlertPage",
    "AlertState",
    "AlertStatus",
    "AlertView",
    "Change",
    "Comment",
    "District",
    "GeoPoint",
    "Record",
    "Severity",
    "SourceRef",
    "status_of",
]

EVENT_CAUSE = "event"
"""``Change.cause`` of a change made by an AlertEvent; actions use their type's lower-case name."""


class ActionType(IntEnum):
    """What an operator or partner did to an alert."""

    ACKNOWLEDGE = 1
    ASSIGN = 2
    COMMENT = 3
    RESOLVE = 4


class AlertStatus(IntEnum):
    """Lifecycle status as operators see it: active or cleared, crossed with acknowledged or not."""

    ACTIVE_UNACKNOWLEDGED = 1
    ACTIVE_ACKNOWLEDGED = 2
    CLEARED_UNACKNOWLEDGED = 3
    CLEARED_ACKNOWLEDGED = 4


def status_of(active: bool, acknowledged: bool) -> AlertStatus:
    """The operator-visible status for an alert's two independent facts."""
    if active:
        return AlertStatus.ACTIVE_ACKNOWLEDGED if acknowledged else AlertStatus.ACTIVE_UNACKNOWLEDGED
    return AlertStatus.CLEARED_ACKNOWLEDGED if acknowledged else AlertStatus.CLEARED_UNACKNOWLEDGED


@dataclass(frozen=True)
class SourceRef:
    """The entity an alert is about."""

    domain: str = ""
    kind: str = ""
    entity_id: str = ""


@dataclass(frozen=True)
class District:
    """Where the source is; ``district_id`` is unique within ``city_id``."""

    city_id: str = ""
    district_id: str = ""
    display_name: str = ""


@dataclass(frozen=True)
class GeoPoint:
    """A WGS 84 position in decimal degrees."""

    latitude_deg: float
    longitude_deg: float


@dataclass(frozen=True)
class AlertEvent:
    """One transition of one alert episode, as published on ``alerts.v1``."""

    alert_id: str
    revision: int
    domain: str
    category: str
    rule_id: str
    source: SourceRef
    severity: Severity
    state: AlertState
    raise_time: datetime
    event_time: datetime
    observed_value: float = 0.0
    threshold_value: float = 0.0
    unit: str = ""
    clear_time: datetime | None = None
    message: str = ""
    district: District = District()
    location: GeoPoint | None = None
    standard_reference: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.alert_id:
            raise ValueError("alert_id must not be empty")
        if self.revision < 1:
            raise ValueError(f"revision starts at 1 (got {self.revision})")
        object.__setattr__(self, "severity", Severity(self.severity))
        object.__setattr__(self, "state", AlertState(self.state))
        object.__setattr__(self, "raise_time", require_utc(self.raise_time, "raise_time"))
        object.__setattr__(self, "event_time", require_utc(self.event_time, "event_time"))
        if self.clear_time is not None:
            object.__setattr__(self, "clear_time", require_utc(self.clear_time, "clear_time"))


@dataclass(frozen=True)
class AlertAction:
    """A command on an alert, as published on ``alerts.actions.v1``; the audit trail."""

    action_id: str
    alert_id: str
    action_type: ActionType
    actor: str
    action_time: datetime
    assignee: str = ""
    text: str = ""

    def __post_init__(self) -> None:
        if not self.action_id:
            raise ValueError("action_id must not be empty")
        if not self.alert_id:
            raise ValueError("alert_id must not be empty")
        object.__setattr__(self, "action_type", ActionType(self.action_type))
        object.__setattr__(self, "action_time", require_utc(self.action_time, "action_time"))

    @property
    def cause(self) -> str:
        """Short name for ``Change.cause``: ``"acknowledge"``, ``"assign"``, ..."""
        return self.action_type.name.lower()


Record = AlertEvent | AlertAction
"""What the store applies: an event from ``alerts.v1`` or an action from ``alerts.actions.v1``."""


@dataclass(frozen=True)
class Comment:
    """A note an operator added to an alert."""

    actor: str
    text: str
    time: datetime


@dataclass(frozen=True)
class AlertView:
    """The current state of one alert in the operations center.

    ``latest`` is the newest event from the source. ``cleared`` and ``clear_time`` say whether
    the alert is over, by its source or by an operator (then ``resolved_by`` names them).
    ``silenced`` is not stored: it depends on the silences in force when someone looks, so
    readers set it at read time.
    """

    latest: AlertEvent
    group_key: str
    updated_time: datetime
    cleared: bool = False
    clear_time: datetime | None = None
    resolved_by: str = ""
    acknowledged_by: str = ""
    acknowledge_time: datetime | None = None
    assignee: str = ""
    comments: tuple[Comment, ...] = ()
    silenced: bool = False

    @property
    def alert_id(self) -> str:
        return self.latest.alert_id

    @property
    def revision(self) -> int:
        return self.latest.revision

    @property
    def severity(self) -> Severity:
        return self.latest.severity

    @property
    def raise_time(self) -> datetime:
        return self.latest.raise_time

    @property
    def active(self) -> bool:
        return not self.cleared

    @property
    def acknowledged(self) -> bool:
        return self.acknowledge_time is not None

    @property
    def resolved_manually(self) -> bool:
        return bool(self.resolved_by)

    @property
    def status(self) -> AlertStatus:
        return status_of(self.active, self.acknowledged)

    @property
    def time_to_acknowledge(self) -> timedelta | None:
        """From the episode's raise time to the first acknowledgement; ``None`` until acknowledged."""
        return _elapsed(self.raise_time, self.acknowledge_time)

    @property
    def time_to_clear(self) -> timedelta | None:
        """From the episode's raise time to its clear (by source or by hand); ``None`` while active."""
        return _elapsed(self.raise_time, self.clear_time)


def _elapsed(start: datetime, end: datetime | None) -> timedelta | None:
    if end is None:
        return None
    # Raise times are sensor event time and acknowledgements are operator wall-clock time; a
    # skewed sensor clock must not produce a negative KPI.
    return max(end - start, timedelta(0))


@dataclass(frozen=True)
class Change:
    """One recorded change to one alert: the event or action that caused it and the alert after it.

    ``seq`` is global and strictly increasing across all alerts, so it is the resume cursor for
    streaming clients; ``cursor`` is the same value as the opaque string the contracts carry.
    """

    seq: int
    cause: str
    alert: AlertView
    occurred_time: datetime
    action: AlertAction | None = None

    @property
    def alert_id(self) -> str:
        return self.alert.alert_id

    @property
    def cursor(self) -> str:
        return str(self.seq)


@dataclass(frozen=True)
class AlertDetail:
    """One alert with its history, oldest change first."""

    alert: AlertView
    history: tuple[Change, ...]


@dataclass(frozen=True)
class AlertPage:
    """A page of alerts, most recently changed first; ``next_page_token`` is empty on the last page."""

    alerts: tuple[AlertView, ...]
    next_page_token: str = ""
