"""The operations center's rules as pure Python: alert lifecycle, grouping, silences and filters.

Nothing here imports SQLAlchemy, Kafka, protobuf or HTTP; everything takes and returns the
plain objects of :mod:`.model`, so the rules are tested without a database or broker.
"""

from services.operations.domain.filters import AlertFilter
from services.operations.domain.grouping import GroupSummary, group_key, summarize_groups
from services.operations.domain.lifecycle import apply_action, apply_event, open_alert
from services.operations.domain.model import (
    EVENT_CAUSE,
    ActionType,
    AlertAction,
    AlertDetail,
    AlertEvent,
    AlertPage,
    AlertState,
    AlertStatus,
    AlertView,
    Change,
    Comment,
    District,
    GeoPoint,
    Severity,
    SourceRef,
    status_of,
)
from services.operations.domain.silences import Matcher, MatchOp, Silence, is_silenced, with_silences

__all__ = [
    "EVENT_CAUSE",
    "ActionType",
    "AlertAction",
    "AlertDetail",
    "AlertEvent",
    "AlertFilter",
    "AlertPage",
    "AlertState",
    "AlertStatus",
    "AlertView",
    "Change",
    "Comment",
    "District",
    "GeoPoint",
    "GroupSummary",
    "MatchOp",
    "Matcher",
    "Severity",
    "Silence",
    "SourceRef",
    "apply_action",
    "apply_event",
    "group_key",
    "is_silenced",
    "open_alert",
    "status_of",
    "summarize_groups",
    "with_silences",
]
