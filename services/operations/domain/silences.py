"""Silences, as in Alertmanager: mute matching alerts for a time window without losing them.

A silence is a set of matchers, all of which must hold, plus a window ``[starts_at, ends_at)``,
an author and a reason. A silenced alert is still stored, listed and recorded; it is only
flagged, so nothing is lost if the silence was too broad.

Matchers follow Alertmanager's semantics so operators can reuse what they know:

* operators ``=``, ``!=``, ``=~``, ``!~``; regular expressions are fully anchored
  (``district=~"ain-.*"`` does not match ``"x-ain-sebaa"``);
* a name that is neither a field nor a label reads as the empty string, so ``team!="roads"``
  matches alerts without a ``team`` label and ``team=""`` selects exactly those;
* severity is matched by lower-case name (``severity=~"major|critical"``).

Names are the fields in :data:`FIELD_NAMES` and otherwise labels; fields win over a label of the
same name, which stays reachable as ``labels.<name>``.

Regular expressions are RE2 (Alertmanager's dialect too), matched in time linear in the value, so
no silence an operator writes can stall the service: with Python's backtracking ``re``, seven
``(.*)`` groups took a five-alert listing from 36 ms to 1.5 s and a nested quantifier takes
minutes per alert. Backreferences and lookaround, which RE2 does not have, are refused when the
silence is created, as are patterns over :data:`MAX_PATTERN_CHARS`. A pattern is compiled once
however many times its silence is read back.

A silence stored before RE2 may hold a pattern RE2 refuses. Read back
(:meth:`Matcher.from_storage`), such a matcher matches nothing, so its silence mutes nothing
rather than failing every read; the store marks it disabled with the reason at start-up and keeps
it for the record. Failing open (muting more) would hide alerts an operator never meant to hide.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

import re2

from madina.alerts.timeutil import require_utc
from services.operations.domain.model import AlertView


class MatchOp(StrEnum):
    """How a matcher compares a value."""

    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"


_FIELDS: dict[str, Callable[[AlertView], str]] = {
    "alert_id": lambda alert: alert.alert_id,
    "domain": lambda alert: alert.latest.domain,
    "category": lambda alert: alert.latest.category,
    "rule_id": lambda alert: alert.latest.rule_id,
    "source_domain": lambda alert: alert.latest.source.domain,
    "source_kind": lambda alert: alert.latest.source.kind,
    "source_id": lambda alert: alert.latest.source.entity_id,
    "city": lambda alert: alert.latest.district.city_id,
    "district": lambda alert: alert.latest.district.district_id,
    "severity": lambda alert: alert.severity.name.lower(),
    "group_key": lambda alert: alert.group_key,
}
FIELD_NAMES = frozenset(_FIELDS)
_LABEL_PREFIX = "labels."
# Longest operators first, so "=~" is not read as "=" followed by a value starting with "~".
_MATCHER_TEXT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")
MAX_PATTERN_CHARS = 256
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a refused pattern is the operator's 422, not a line on stderr
_RE2_OPTIONS.never_capture = True  # only whether it matches counts


@lru_cache(maxsize=4096)
def compile_pattern(pattern: str) -> Any:
    """``pattern`` compiled by RE2, or ValueError saying why not (RE2 syntax, length)."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ValueError(f"a regular expression may have at most {MAX_PATTERN_CHARS} characters")
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error:
        raise ValueError(
            "not a regular expression RE2 accepts (no backreferences or lookaround)"
        ) from None


@dataclass(frozen=True)
class Matcher:
    """One condition of a silence, e.g. ``Matcher("district", MatchOp.REGEX, "ain-.*")``."""

    name: str
    op: MatchOp
    value: str
    _pattern: Any = field(init=False, repr=False, compare=False, default=None)
    unusable: str | None = field(init=False, compare=False, default=None)
    """Why this stored matcher cannot be evaluated (then it matches nothing); ``None`` normally."""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a matcher needs a name")
        object.__setattr__(self, "op", MatchOp(self.op))
        if self.op in (MatchOp.REGEX, MatchOp.NOT_REGEX):
            object.__setattr__(self, "_pattern", compile_pattern(self.value))

    @classmethod
    def from_storage(cls, name: str, op: str, value: str) -> Matcher:
        """A matcher read back from the store: one whose pattern no longer compiles is kept, unusable."""
        try:
            return cls(name, MatchOp(op), value)
        except ValueError as error:
            matcher = object.__new__(cls)
            for attribute, content in (("name", name), ("op", op), ("value", value), ("_pattern", None),
                                       ("unusable", f"{name}{op}{value[:64]!r}: {error}")):
                object.__setattr__(matcher, attribute, content)
            return matcher

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """Read Alertmanager's text form: ``name=value``, ``name=~"regex"``; quotes are optional."""
        found = _MATCHER_TEXT.match(text)
        if found is None:
            raise ValueError(f"not a matcher: {text!r} (expected name, one of = != =~ !~, value)")
        name, op, value = found.groups()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        return cls(name, MatchOp(op), value)

    def matches(self, alert: AlertView) -> bool:
        if self.unusable is not None:
            return False
        actual = field_value(alert, self.name)
        match self.op:
            case MatchOp.EQUAL:
                return actual == self.value
            case MatchOp.NOT_EQUAL:
                return actual != self.value
            case MatchOp.REGEX:
                assert self._pattern is not None
                return self._pattern.fullmatch(actual) is not None
            case MatchOp.NOT_REGEX:
                assert self._pattern is not None
                return self._pattern.fullmatch(actual) is None
        raise AssertionError(f"unhandled operator {self.op!r}")

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{self.op}"{escaped}"'


def field_value(alert: AlertView, name: str) -> str:
    """What a matcher called ``name`` sees on ``alert``; absent names read as ``""``."""
    getter = _FIELDS.get(name)
    if getter is not None:
        return getter(alert)
    if name.startswith(_LABEL_PREFIX):
        name = name[len(_LABEL_PREFIX) :]
    return alert.latest.labels.get(name, "")


@dataclass(frozen=True)
class Silence:
    """Mutes every alert all ``matchers`` match while ``starts_at <= now < ends_at``."""

    silence_id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    created_time: datetime | None = None
    disabled_reason: str | None = None
    """Set when the silence can no longer be evaluated (see :meth:`Matcher.from_storage`): it mutes nothing."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "matchers", tuple(self.matchers))
        if self.disabled_reason is None:
            unusable = [matcher.unusable for matcher in self.matchers if matcher.unusable is not None]
            if unusable:
                object.__setattr__(self, "disabled_reason", "unusable matcher " + "; ".join(unusable))
        if not self.matchers:
            # Alertmanager refuses these too: an empty silence would mute the whole city.
            raise ValueError("a silence needs at least one matcher")
        object.__setattr__(self, "starts_at", require_utc(self.starts_at, "starts_at"))
        object.__setattr__(self, "ends_at", require_utc(self.ends_at, "ends_at"))
        if self.ends_at < self.starts_at:
            raise ValueError("a silence must not end before it starts")
        if not self.created_by.strip():
            raise ValueError("a silence needs its author (created_by)")
        if not self.comment.strip():
            raise ValueError("a silence needs a comment saying why")

    def is_active(self, at: datetime) -> bool:
        return self.disabled_reason is None and self.starts_at <= at < self.ends_at

    def state(self, at: datetime) -> str:
        """``"pending"``, ``"active"`` or ``"expired"`` at ``at``, as Alertmanager names them (or ``"disabled"``)."""
        if self.disabled_reason is not None:
            return "disabled"
        if at < self.starts_at:
            return "pending"
        return "active" if at < self.ends_at else "expired"

    def matches(self, alert: AlertView, at: datetime) -> bool:
        return self.is_active(at) and all(matcher.matches(alert) for matcher in self.matchers)

    def expired(self, at: datetime) -> Silence:
        """This silence ended at ``at`` (a pending one never starts); unchanged if already over."""
        if self.ends_at <= at:
            return self
        return replace(self, starts_at=min(self.starts_at, at), ends_at=at)


def is_silenced(alert: AlertView, silences: Iterable[Silence], at: datetime) -> bool:
    return any(silence.matches(alert, at) for silence in silences)


def with_silences(alert: AlertView, silences: Iterable[Silence], at: datetime) -> AlertView:
    """``alert`` with ``silenced`` evaluated against ``silences`` at ``at``."""
    silenced = is_silenced(alert, silences, at)
    return alert if alert.silenced == silenced else replace(alert, silenced=silenced)


def silenced_by(alert: AlertView, silences: Iterable[Silence], at: datetime) -> list[Silence]:
    """The silences muting ``alert`` at ``at``, for "why is this silenced?" answers."""
    return [silence for silence in silences if silence.matches(alert, at)]
