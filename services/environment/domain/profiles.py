"""Threshold profiles: named, versioned sets of rules loaded from YAML, each citing its source.

Thresholds are data, not code: the built-in file ``services/environment/data/profiles.yaml``
carries the WHO 2021 guidelines, the EU directives and the water and noise rules, and an
operator adds a local profile by passing another file to :func:`load_profiles`. Every rule
names the standard, document, URL and year it comes from so an alert can cite it.

A deployment picks its profiles by selector (``"who-2021"`` for the newest version,
``"who-2021@1"`` for a pinned one) and :func:`select_rules` merges them, typically one air
profile plus the water and noise profiles.

Rule semantics:

* ``comparison`` is ``above`` (value > threshold), ``below`` (value < threshold), ``outside``
  (value outside ``[low, high]``) or ``any_positive`` (value > 0, e.g. E. coli).
* ``levels`` map thresholds to severities; the highest level whose condition holds is the
  breached one.
* ``clear_level`` (``clear_range`` for ``outside``) is the hysteresis level the value must get
  back to, by default 10 % inside the mildest level; ``clear_after`` is how long it must stay
  there.
* ``sustained_for`` makes a level count only once its condition has held at every evaluation
  for that long (EU alert thresholds "over three consecutive hours").
* ``window`` is the averaging period; ``0`` means the instantaneous (newest) value.
* ``min_coverage`` is the fraction of the window that must hold data before the rule is judged.
* ``update_interval`` / ``update_min_change`` throttle UPDATED transitions of a long breach
  (default: at most one per 15 minutes of event time; ``null`` disables them).
* ``min_hourly_coverage`` (windows of 2 h or more, whole hours) is the fraction of the window's
  clock hours that must hold a valid hourly value before the rule is judged: 0.75 is the EU and
  EPA rule (18 of 24 hours, 6 of 8; Directive 2008/50/EC Annex XI A). Below it the window is
  *insufficient data*: the rule is not judged at all, so nothing is raised and an open episode
  is neither escalated nor cleared (its clear hold does not advance) until coverage returns.
  Set in ``defaults`` it applies to the profile's multi-hour rules and is ignored by the others.
* ``allowed_exceedances`` (1 h and 24 h ``above`` rules) is the number of times per calendar year
  the mildest level (the limit value) may be exceeded, counted on valid hourly or daily means in
  the station's local calendar (see :mod:`.compliance`); ``allowance_warning_at`` (default 0.8)
  is the fraction of that allowance whose use raises a WARNING before the MAJOR breach.

A profile may also list ``annual_limits`` (``id``, ``measurand``, ``limit``, optional
``min_coverage`` of the year's hours, default 0.9, ``source`` and ``note``): limit values on the
calendar-year mean, reported beside the station's annual means, never alerted in real time.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from madina.alerts import EpisodePolicy, Severity
from madina.alerts.episode import DEFAULT_UPDATE_INTERVAL
from madina.yamlfile import parse_yaml
from services.environment.domain.durations import parse_duration
from services.environment.domain.measurands import MEASURANDS
from services.environment.domain.windows import WindowSpec

BUILTIN_PROFILES_PATH = Path(__file__).resolve().parent.parent / "data" / "profiles.yaml"

# Default hysteresis: the value must come back 10 % inside the mildest level before clearing.
DEFAULT_CLEAR_MARGIN = 0.10
DEFAULT_CLEAR_AFTER = timedelta(minutes=30)
DEFAULT_ALLOWANCE_WARNING_AT = 0.8
# Directive 2008/50/EC Annex XI A: an annual mean needs 90 % of the year's one-hour values.
DEFAULT_ANNUAL_MIN_COVERAGE = 0.9


class ProfileError(ValueError):
    """A profile file is malformed; the message names the file, profile, rule and field."""


class Comparison(StrEnum):
    ABOVE = "above"
    BELOW = "below"
    OUTSIDE = "outside"
    ANY_POSITIVE = "any_positive"


@dataclass(frozen=True)
class Citation:
    """Where a threshold comes from."""

    standard: str
    document: str
    url: str
    year: int

    def text(self) -> str:
        """One line suitable for an alert's ``standard_reference``."""
        return f"{self.standard} ({self.year}), {self.document}, {self.url}"


@dataclass(frozen=True)
class Level:
    """One severity step of a rule: a threshold for above/below, a range for outside."""

    severity: Severity
    name: str = ""
    threshold: float | None = None
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class Rule:
    """One threshold rule; ``id`` is ``<profile>/<rule>`` and stable across profile versions."""

    id: str
    measurand: str
    window: timedelta
    comparison: Comparison
    levels: tuple[Level, ...]
    """Mildest first."""
    clear_level: float | None
    clear_range: tuple[float, float] | None
    clear_after: timedelta
    sustained_for: timedelta
    min_coverage: float
    update_interval: timedelta | None
    update_min_change: float
    source: Citation
    note: str = ""
    min_hourly_coverage: float = 0.0
    """Fraction of the window's clock hours that must hold a valid hourly value (0 = not checked)."""
    allowed_exceedances: int | None = None
    """Exceedances of the limit value (the mildest level) allowed per calendar year, if counted."""
    allowance_warning_at: float = DEFAULT_ALLOWANCE_WARNING_AT
    """Fraction of ``allowed_exceedances`` used at which the WARNING is raised."""

    @property
    def window_hours(self) -> int:
        """The window in whole hours, or 0 when it is not a whole number of hours."""
        seconds = int(self.window.total_seconds())
        return seconds // 3600 if seconds > 0 and seconds % 3600 == 0 else 0

    @property
    def limit_value(self) -> float | None:
        """The threshold of the mildest level: what an exceedance is counted against."""
        return self.levels[0].threshold

    @property
    def window_spec(self) -> WindowSpec | None:
        """The rolling window this rule reads, or ``None`` for an instantaneous rule."""
        if self.window <= timedelta(0):
            return None
        return WindowSpec.of(self.measurand, self.window)

    @property
    def episode_policy(self) -> EpisodePolicy:
        return EpisodePolicy(
            clear_after=self.clear_after,
            update_interval=self.update_interval,
            update_min_change=self.update_min_change,
        )

    def holds(self, level: Level, value: float) -> bool:
        """Whether ``value`` meets ``level``'s breach condition."""
        if self.comparison is Comparison.ANY_POSITIVE:
            return value > 0
        if self.comparison is Comparison.ABOVE:
            assert level.threshold is not None
            return value > level.threshold
        if self.comparison is Comparison.BELOW:
            assert level.threshold is not None
            return value < level.threshold
        assert level.low is not None and level.high is not None
        return value < level.low or value > level.high

    def crossed_threshold(self, level: Level, value: float) -> float:
        """The threshold ``value`` crossed at ``level``; for ranges, the nearer bound."""
        if self.comparison is Comparison.ANY_POSITIVE:
            return 0.0
        if self.comparison is Comparison.OUTSIDE:
            assert level.low is not None and level.high is not None
            return level.low if value < level.low else level.high
        assert level.threshold is not None
        return level.threshold

    def is_clear(self, value: float) -> bool:
        """Whether ``value`` is back at or inside the clear level (hysteresis)."""
        if self.comparison is Comparison.OUTSIDE:
            assert self.clear_range is not None
            return self.clear_range[0] <= value <= self.clear_range[1]
        assert self.clear_level is not None
        if self.comparison is Comparison.BELOW:
            return value >= self.clear_level
        return value <= self.clear_level


@dataclass(frozen=True)
class AnnualLimit:
    """A limit value on the calendar-year mean of one measurand; ``id`` is ``<profile>/<limit>``."""

    id: str
    measurand: str
    limit: float
    min_coverage: float
    source: Citation
    note: str = ""


@dataclass(frozen=True)
class Profile:
    name: str
    version: int
    title: str
    rules: tuple[Rule, ...]
    source_file: str = ""
    annual_limits: tuple[AnnualLimit, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"


def load_profiles(paths: Sequence[Path] = (), *, include_builtin: bool = True) -> dict[str, Profile]:
    """Load the built-in profiles plus operator files, keyed ``name@version``.

    Raises :class:`ProfileError` on malformed data or on a name and version defined twice.
    """
    files = ([BUILTIN_PROFILES_PATH] if include_builtin else []) + [Path(p) for p in paths]
    profiles: dict[str, Profile] = {}
    for file in files:
        for profile in _load_file(file):
            if profile.key in profiles:
                raise ProfileError(
                    f"{file}: profile {profile.name!r} version {profile.version} is already defined "
                    f"in {profiles[profile.key].source_file}"
                )
            profiles[profile.key] = profile
    return profiles


def resolve_profile(profiles: Mapping[str, Profile], selector: str) -> Profile:
    """``"name@version"`` exactly, or ``"name"`` for its highest version."""
    if "@" in selector:
        if selector not in profiles:
            raise KeyError(f"unknown profile {selector!r}; known: {', '.join(sorted(profiles))}")
        return profiles[selector]
    versions = [p for p in profiles.values() if p.name == selector]
    if not versions:
        raise KeyError(f"unknown profile {selector!r}; known: {', '.join(sorted(profiles))}")
    return max(versions, key=lambda p: p.version)


def select_rules(profiles: Mapping[str, Profile], selectors: Iterable[str]) -> tuple[Rule, ...]:
    """Rules of the selected profiles, in selection then file order; duplicate rule ids are an error."""
    rules: dict[str, Rule] = {}
    for selector in selectors:
        for rule in resolve_profile(profiles, selector).rules:
            if rule.id in rules:
                raise ProfileError(f"rule {rule.id!r} is selected twice (profile selector {selector!r})")
            rules[rule.id] = rule
    return tuple(rules.values())


def select_annual_limits(profiles: Mapping[str, Profile], selectors: Iterable[str]) -> tuple[AnnualLimit, ...]:
    """Annual limit values of the selected profiles, in selection then file order."""
    limits: dict[str, AnnualLimit] = {}
    for selector in selectors:
        for limit in resolve_profile(profiles, selector).annual_limits:
            if limit.id in limits:
                raise ProfileError(f"annual limit {limit.id!r} is selected twice (profile selector {selector!r})")
            limits[limit.id] = limit
    return tuple(limits.values())


class _Where:
    """Builds error messages that point at the offending place in the file."""

    def __init__(self, file: Path, profile: str = "?", rule: str | None = None) -> None:
        self.file, self.profile, self.rule = file, profile, rule

    def error(self, field: str, problem: str) -> ProfileError:
        place = f"{self.file}: profile {self.profile!r}"
        if self.rule is not None:
            place += f" rule {self.rule!r}"
        return ProfileError(f"{place} field {field!r}: {problem}")


_PROFILE_FIELDS = {"name", "version", "title", "source", "defaults", "rules", "annual_limits"}
_RULE_FIELDS = {
    "id",
    "measurand",
    "window",
    "comparison",
    "levels",
    "clear_level",
    "clear_range",
    "clear_after",
    "sustained_for",
    "min_coverage",
    "update_interval",
    "update_min_change",
    "source",
    "note",
    "min_hourly_coverage",
    "allowed_exceedances",
    "allowance_warning_at",
}
_DEFAULT_FIELDS = {
    "clear_after",
    "sustained_for",
    "min_coverage",
    "update_interval",
    "update_min_change",
    "min_hourly_coverage",
    "allowance_warning_at",
}
_ANNUAL_FIELDS = {"id", "measurand", "limit", "min_coverage", "source", "note"}
_CITATION_FIELDS = {"standard", "document", "url", "year"}
_LEVEL_FIELDS = {"severity", "name", "threshold", "low", "high"}


def _load_file(file: Path) -> list[Profile]:
    try:
        document = parse_yaml(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ProfileError(f"{file}: cannot read profiles: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("profiles"), list):
        raise ProfileError(f"{file}: expected a mapping with a 'profiles' list")
    return [_parse_profile(file, raw, index) for index, raw in enumerate(document["profiles"])]


def _parse_profile(file: Path, raw: Any, index: int) -> Profile:
    where = _Where(file, f"#{index}")
    if not isinstance(raw, dict):
        raise where.error(f"profiles[{index}]", "expected a mapping")
    where.profile = str(raw.get("name", where.profile))
    _reject_unknown(where, raw, _PROFILE_FIELDS, "")
    name = _text(where, raw, "name")
    version = raw.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise where.error("version", f"expected a positive integer, got {version!r}")
    source = _citation(where, raw.get("source"), "source")
    defaults = raw.get("defaults", {})
    if not isinstance(defaults, dict):
        raise where.error("defaults", "expected a mapping")
    _reject_unknown(where, defaults, _DEFAULT_FIELDS, "defaults.")
    rules_raw = raw.get("rules")
    if not isinstance(rules_raw, list) or not rules_raw:
        raise where.error("rules", "expected a non-empty list")
    rules: list[Rule] = []
    for rule_raw in rules_raw:
        rule = _parse_rule(_Where(file, name), name, rule_raw, defaults, source)
        if any(existing.id == rule.id for existing in rules):
            raise _Where(file, name, rule.id).error("id", "duplicate rule id in profile")
        rules.append(rule)
    return Profile(
        name=name,
        version=version,
        title=str(raw.get("title", name)),
        rules=tuple(rules),
        source_file=str(file),
        annual_limits=_annual_limits(file, name, raw.get("annual_limits", []), source),
    )


def _annual_limits(file: Path, profile: str, raw: Any, profile_source: Citation | None) -> tuple[AnnualLimit, ...]:
    where = _Where(file, profile)
    if not isinstance(raw, list):
        raise where.error("annual_limits", "expected a list")
    limits: list[AnnualLimit] = []
    for item in raw:
        if not isinstance(item, dict):
            raise where.error("annual_limits[]", "expected a mapping")
        where.rule = str(item.get("id", "?"))
        _reject_unknown(where, item, _ANNUAL_FIELDS, "")
        local_id = _text(where, item, "id")
        measurand = _text(where, item, "measurand")
        if measurand not in MEASURANDS:
            raise where.error("measurand", f"unknown measurand {measurand!r}")
        limit = _optional_number(where, item, "limit", "")
        if limit is None or limit <= 0:
            raise where.error("limit", f"expected a positive number, got {item.get('limit')!r}")
        coverage = _fraction(where, {"min_coverage": DEFAULT_ANNUAL_MIN_COVERAGE, **item}, "min_coverage", upper=1.0)
        source = _citation(where, item["source"], "source") if "source" in item else profile_source
        if source is None:
            raise where.error("source", "every annual limit must cite a source (on the limit or its profile)")
        note = str(item.get("note", "")).strip()
        annual = AnnualLimit(f"{profile}/{local_id}", measurand, limit, coverage, source, note)
        if any(existing.id == annual.id for existing in limits):
            raise where.error("id", "duplicate annual limit id in profile")
        limits.append(annual)
    return tuple(limits)


def _parse_rule(
    where: _Where, profile: str, raw: Any, defaults: Mapping[str, Any], profile_source: Citation | None
) -> Rule:
    if not isinstance(raw, dict):
        raise where.error("rules[]", "expected a mapping")
    where.rule = str(raw.get("id", "?"))
    _reject_unknown(where, raw, _RULE_FIELDS, "")
    local_id = _text(where, raw, "id")
    if "/" in local_id:
        raise where.error("id", "must not contain '/'; the profile name is prefixed automatically")
    measurand = _text(where, raw, "measurand")
    if measurand not in MEASURANDS:
        raise where.error("measurand", f"unknown measurand {measurand!r} (known: {', '.join(MEASURANDS)})")
    try:
        comparison = Comparison(_text(where, raw, "comparison"))
    except ValueError:
        known = ", ".join(c.value for c in Comparison)
        problem = f"unknown comparison {raw['comparison']!r} (expected {known})"
        raise where.error("comparison", problem) from None
    window = _duration(where, raw, "window", None)
    settings = {**defaults, **raw}
    clear_after = _duration(where, settings, "clear_after", DEFAULT_CLEAR_AFTER)
    sustained_for = _duration(where, settings, "sustained_for", timedelta(0))
    update_interval: timedelta | None = DEFAULT_UPDATE_INTERVAL
    if "update_interval" in settings:
        if settings["update_interval"] is None:
            update_interval = None
        else:
            update_interval = _duration(where, settings, "update_interval", None)
    min_coverage = _fraction(where, settings, "min_coverage", upper=1.0)
    update_min_change = _fraction(where, settings, "update_min_change", upper=None)
    source = _citation(where, raw["source"], "source") if "source" in raw else profile_source
    if source is None:
        raise where.error("source", "every rule must cite a source (on the rule or its profile)")
    levels = _levels(where, raw.get("levels"), comparison)
    clear_level, clear_range = _clear(where, raw, comparison, levels)
    min_hourly_coverage = _fraction(where, settings, "min_hourly_coverage", upper=1.0)
    seconds = int(window.total_seconds())
    if seconds < 7200 or seconds % 3600:
        if "min_hourly_coverage" in raw and min_hourly_coverage > 0:
            raise where.error("min_hourly_coverage", "needs a window of whole hours, at least 2h")
        min_hourly_coverage = 0.0
    allowed = raw.get("allowed_exceedances")
    if allowed is not None:
        if isinstance(allowed, bool) or not isinstance(allowed, int) or allowed < 0:
            raise where.error("allowed_exceedances", f"expected a whole number at least 0, got {allowed!r}")
        if comparison is not Comparison.ABOVE or seconds not in (3600, 86400):
            raise where.error("allowed_exceedances", "counted only for 'above' rules over a 1h or 24h window")
    warning_at = _fraction(where, {"allowance_warning_at": DEFAULT_ALLOWANCE_WARNING_AT, **settings},
                           "allowance_warning_at", upper=1.0)
    return Rule(
        id=f"{profile}/{local_id}",
        measurand=measurand,
        window=window,
        comparison=comparison,
        levels=levels,
        clear_level=clear_level,
        clear_range=clear_range,
        clear_after=clear_after,
        sustained_for=sustained_for,
        min_coverage=min_coverage,
        update_interval=update_interval,
        update_min_change=update_min_change,
        source=source,
        note=str(raw.get("note", "")).strip(),
        min_hourly_coverage=min_hourly_coverage,
        allowed_exceedances=allowed,
        allowance_warning_at=warning_at,
    )


def _levels(where: _Where, raw: Any, comparison: Comparison) -> tuple[Level, ...]:
    if not isinstance(raw, list) or not raw:
        raise where.error("levels", "expected a non-empty list")
    levels: list[Level] = []
    for index, item in enumerate(raw):
        field = f"levels[{index}]"
        if not isinstance(item, dict):
            raise where.error(field, "expected a mapping")
        _reject_unknown(where, item, _LEVEL_FIELDS, f"{field}.")
        try:
            severity = Severity.parse(str(item.get("severity", "")))
        except ValueError as exc:
            raise where.error(f"{field}.severity", str(exc)) from None
        level = Level(
            severity=severity,
            name=str(item.get("name", "")),
            threshold=_optional_number(where, item, "threshold", field),
            low=_optional_number(where, item, "low", field),
            high=_optional_number(where, item, "high", field),
        )
        if comparison in (Comparison.ABOVE, Comparison.BELOW) and level.threshold is None:
            raise where.error(f"{field}.threshold", f"required for comparison {comparison.value!r}")
        if comparison is Comparison.OUTSIDE and (
            level.low is None or level.high is None or level.low >= level.high
        ):
            raise where.error(f"{field}.low/high", "'outside' needs low < high")
        if comparison is Comparison.ANY_POSITIVE and (level.threshold, level.low, level.high) != (None,) * 3:
            raise where.error(field, "'any_positive' levels take no threshold")
        levels.append(level)
    for index, (milder, worse) in enumerate(itertools.pairwise(levels), start=1):
        field = f"levels[{index}]"
        if worse.severity <= milder.severity:
            raise where.error(f"{field}.severity", "levels must be listed mildest first with rising severity")
        if comparison is Comparison.ABOVE and worse.threshold <= milder.threshold:  # type: ignore[operator]
            raise where.error(f"{field}.threshold", "must rise with severity for 'above'")
        if comparison is Comparison.BELOW and worse.threshold >= milder.threshold:  # type: ignore[operator]
            raise where.error(f"{field}.threshold", "must fall with severity for 'below'")
        if comparison is Comparison.OUTSIDE and not (
            worse.low <= milder.low and worse.high >= milder.high  # type: ignore[operator]
        ):
            raise where.error(f"{field}.low/high", "a worse level's range must contain the milder one's")
        if comparison is Comparison.ANY_POSITIVE:
            raise where.error("levels", "'any_positive' takes exactly one level")
    return tuple(levels)


def _clear(
    where: _Where, raw: Mapping[str, Any], comparison: Comparison, levels: tuple[Level, ...]
) -> tuple[float | None, tuple[float, float] | None]:
    mildest = levels[0]
    if comparison is Comparison.OUTSIDE:
        assert mildest.low is not None and mildest.high is not None
        if "clear_range" not in raw:
            margin = (mildest.high - mildest.low) * DEFAULT_CLEAR_MARGIN / 2
            return None, (mildest.low + margin, mildest.high - margin)
        bounds = raw["clear_range"]
        if (
            not isinstance(bounds, list)
            or len(bounds) != 2
            or not all(isinstance(b, int | float) and not isinstance(b, bool) for b in bounds)
            or not mildest.low <= bounds[0] <= bounds[1] <= mildest.high
        ):
            raise where.error("clear_range", f"expected [low, high] inside [{mildest.low}, {mildest.high}]")
        return None, (float(bounds[0]), float(bounds[1]))
    if "clear_range" in raw:
        raise where.error("clear_range", "only 'outside' rules take a clear_range; use clear_level")
    if comparison is Comparison.ANY_POSITIVE:
        default = 0.0
    else:
        assert mildest.threshold is not None
        factor = 1 - DEFAULT_CLEAR_MARGIN if comparison is Comparison.ABOVE else 1 + DEFAULT_CLEAR_MARGIN
        default = mildest.threshold * factor
    clear_level = _optional_number(where, raw, "clear_level", "")
    if clear_level is None:
        return default, None
    limit = 0.0 if comparison is Comparison.ANY_POSITIVE else mildest.threshold
    assert limit is not None
    if comparison is Comparison.BELOW and clear_level < limit:
        raise where.error("clear_level", f"must be at or above the mildest threshold {limit} for 'below'")
    if comparison is not Comparison.BELOW and clear_level > limit:
        raise where.error("clear_level", f"must be at or below the mildest threshold {limit}")
    return clear_level, None


def _citation(where: _Where, raw: Any, field: str) -> Citation | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise where.error(field, "expected a mapping with standard, document, url, year")
    _reject_unknown(where, raw, _CITATION_FIELDS, f"{field}.")
    year = raw.get("year")
    if isinstance(year, bool) or not isinstance(year, int) or not 1900 <= year <= 2100:
        raise where.error(f"{field}.year", f"expected a year, got {year!r}")
    url = _text(where, raw, "url", f"{field}.")
    if not url.startswith(("https://", "http://")):
        raise where.error(f"{field}.url", f"expected an http(s) URL, got {url!r}")
    return Citation(
        standard=_text(where, raw, "standard", f"{field}."),
        document=_text(where, raw, "document", f"{field}."),
        url=url,
        year=year,
    )


def _text(where: _Where, raw: Mapping[str, Any], key: str, prefix: str = "") -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise where.error(f"{prefix}{key}", f"expected non-empty text, got {value!r}")
    return value.strip()


def _duration(where: _Where, raw: Mapping[str, Any], key: str, default: timedelta | None) -> timedelta:
    if key not in raw:
        if default is None:
            raise where.error(key, "is required")
        return default
    try:
        return parse_duration(raw[key])
    except ValueError as exc:
        raise where.error(key, str(exc)) from None


def _fraction(where: _Where, raw: Mapping[str, Any], key: str, upper: float | None) -> float:
    value = raw.get(key, 0.0)
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if not numeric or value < 0 or (upper is not None and value > upper):
        bounds = f"between 0 and {upper:g}" if upper is not None else "at least 0"
        raise where.error(key, f"expected a fraction {bounds}, got {value!r}")
    return float(value)


def _optional_number(where: _Where, raw: Mapping[str, Any], key: str, prefix: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        name = f"{prefix}.{key}" if prefix else key
        raise where.error(name, f"expected a number, got {value!r}")
    return float(value)


def _reject_unknown(where: _Where, raw: Mapping[str, Any], allowed: set[str], prefix: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise where.error(f"{prefix}{unknown[0]}", f"unknown field (allowed: {', '.join(sorted(allowed))})")
