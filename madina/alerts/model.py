"""The vocabulary every domain's alerts share: severities, lifecycle states, transitions, ids.

Numeric values match ``proto/madina/alerts/v1/alerts.proto`` (``SEVERITY_*`` and
``ALERT_STATE_*``; zero is the proto's ``*_UNSPECIFIED`` and has no member here), so mapping to
the wire is ``int(member)``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from enum import IntEnum
from typing import Any

from madina.alerts.timeutil import require_utc, time_from_text, time_to_text


class Severity(IntEnum):
    """How bad a breach is. Ordered, so ``max()`` and ``>`` mean "worse"."""

    INFO = 1
    WARNING = 2
    MINOR = 3
    MAJOR = 4
    CRITICAL = 5

    @classmethod
    def parse(cls, text: str) -> Severity:
        """Case-insensitive lookup by name, as written in data files (``"major"``)."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(member.name.lower() for member in cls)
            raise ValueError(f"unknown severity {text!r} (expected one of {names})") from None


class AlertState(IntEnum):
    """What a transition does to its alert."""

    RAISED = 1
    """A new episode began; first transition of an alert id (revision 1)."""
    UPDATED = 2
    """Still breaching at or below the episode's peak severity; carries a fresher value."""
    ESCALATED = 3
    """Severity rose above the episode's previous peak."""
    CLEARED = 4
    """The episode ended; the alert id is never used again."""


def alert_id(domain: str, source_id: str, rule_id: str, episode_start_time: datetime) -> str:
    """Deterministic id of one episode of one rule on one source.

    Derived, not random, so a replay after a crash re-creates the very same ids and consumers
    can deduplicate on ``(alert_id, revision)``. The unit separator keeps ``("a-b", "c")`` and
    ``("a", "b-c")`` apart.
    """
    start = time_to_text(episode_start_time)
    material = "\x1f".join((domain, source_id, rule_id, start or ""))
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class AlertDetails:
    """What a domain says about an alert beyond its episode: the rest of the ``AlertEvent``.

    Each field is the ``AlertEvent`` field of the same name (``city_id`` and ``district_id`` are
    its ``district``, ``source_kind`` its ``source.kind``). ``labels`` are the domain's own extras
    (a route, a circuit, a container, a year), published as the event's labels as they are, so
    operators can group and silence on them.
    """

    category: str = ""
    source_kind: str = ""
    unit: str = ""
    standard_reference: str = ""
    city_id: str = ""
    district_id: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)

    def refine(self, labels: Mapping[str, str] | None = None, /, **fields: str) -> AlertDetails:
        """A copy with ``fields`` replaced and ``labels`` added to (or overriding) the labels."""
        return replace(self, **fields, labels={**self.labels, **(labels or {})})

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "labels": dict(self.labels)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertDetails:
        return cls(**{**data, "labels": dict(data.get("labels", {}))})


@dataclass(frozen=True)
class AlertTransition:
    """One change in an alert's life, ready to be mapped onto an ``AlertEvent`` message.

    ``severity`` is the episode's peak and ``threshold`` the threshold of that peak level (see
    :mod:`madina.alerts.episode` for why severity never falls within an episode).
    ``observed_value`` is the value from the evaluation that produced this transition.
    """

    alert_id: str
    domain: str
    source_id: str
    rule_id: str
    state: AlertState
    severity: Severity
    observed_value: float
    threshold: float
    raise_time: datetime
    clear_time: datetime | None
    event_time: datetime
    revision: int
    message: str
    details: AlertDetails = field(default_factory=AlertDetails)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form; enums are written by name so stored data stays readable."""
        return {
            "alert_id": self.alert_id,
            "domain": self.domain,
            "source_id": self.source_id,
            "rule_id": self.rule_id,
            "state": self.state.name,
            "severity": self.severity.name,
            "observed_value": self.observed_value,
            "threshold": self.threshold,
            "raise_time": time_to_text(self.raise_time),
            "clear_time": time_to_text(self.clear_time),
            "event_time": time_to_text(self.event_time),
            "revision": self.revision,
            "message": self.message,
            "details": self.details.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertTransition:
        raise_time = time_from_text(data["raise_time"])
        event_time = time_from_text(data["event_time"])
        assert raise_time is not None and event_time is not None
        return cls(
            alert_id=data["alert_id"],
            domain=data["domain"],
            source_id=data["source_id"],
            rule_id=data["rule_id"],
            state=AlertState[data["state"]],
            severity=Severity[data["severity"]],
            observed_value=float(data["observed_value"]),
            threshold=float(data["threshold"]),
            raise_time=require_utc(raise_time),
            clear_time=time_from_text(data.get("clear_time")),
            event_time=event_time,
            revision=int(data["revision"]),
            message=data["message"],
            details=AlertDetails.from_dict(data.get("details", {})),
        )
