"""Silence regexes cannot freeze the service: RE2, compiled once, refused when RE2 cannot run them."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from services.operations.domain import Matcher, MatchOp, Silence, is_silenced
from services.operations.domain.silences import MAX_PATTERN_CHARS
from tests.unit.operations.factories import T0, minutes, raised

# Measured on the 2-core CI machine with Python's backtracking ``re`` (fullmatch of one value):
# seven ``(.*)`` then ``x`` against 40 characters: ~1 s; ``(a*)*b`` against 26 ``a``: ~5 s, doubling
# with each further ``a``. RE2 takes ~0.03 ms for either. The bound below is generous on purpose.
PER_ALERT_BOUND_S = 0.050
PATHOLOGICAL = {
    "seven greedy groups": ("(.*)" * 7 + "x", "y" * 40),
    "nested quantifier": ("(a*)*b", "a" * 30),
    "alternation under a quantifier": ("(a|aa)+$x", "a" * 30),
}


def _silence(*matchers: Matcher) -> Silence:
    return Silence(
        silence_id="s1", matchers=matchers, starts_at=T0, ends_at=T0 + timedelta(hours=2),
        created_by="amina", comment="regex stress",
    )


@pytest.mark.parametrize("name", list(PATHOLOGICAL))
def test_pathological_silence_patterns_evaluate_within_a_bounded_time_per_alert(name: str) -> None:
    pattern, value = PATHOLOGICAL[name]
    mutes = [_silence(Matcher("labels.circuit", MatchOp.REGEX, pattern)),
             _silence(Matcher("labels.circuit", MatchOp.NOT_REGEX, pattern), Matcher("domain", MatchOp.EQUAL, "x"))]
    alerts = [raised(alert_id=f"alert-{n}", labels={"circuit": value}) for n in range(5)]
    started = time.perf_counter()
    for alert in alerts:
        is_silenced(alert, mutes, minutes(5))
    assert (time.perf_counter() - started) / len(alerts) < PER_ALERT_BOUND_S


@pytest.mark.parametrize("pattern", [r"(a)\1", "a(?=b)", "(?<!x)y", "a++"])
def test_pattern_re2_cannot_run_is_refused_when_the_matcher_is_made(pattern: str) -> None:
    with pytest.raises(ValueError, match="RE2"):
        Matcher("district", MatchOp.REGEX, pattern)


def test_overlong_pattern_is_refused() -> None:
    with pytest.raises(ValueError, match=str(MAX_PATTERN_CHARS)):
        Matcher("district", MatchOp.REGEX, "a" * (MAX_PATTERN_CHARS + 1))
    Matcher("district", MatchOp.EQUAL, "a" * (MAX_PATTERN_CHARS + 1))  # only patterns are bounded


def test_a_pattern_is_compiled_once_however_often_its_silence_is_read_back() -> None:
    first = Matcher("district", MatchOp.REGEX, "ain-.*")
    again = Matcher("district", MatchOp.REGEX, "ain-.*")
    assert first._pattern is again._pattern


def test_re2_keeps_alertmanager_anchoring_and_classes() -> None:
    alert = raised(district_id="ain-sebaa")
    assert _silence(Matcher("district", MatchOp.REGEX, r"ain-\w+")).matches(alert, minutes(1))
    assert not _silence(Matcher("district", MatchOp.REGEX, "sebaa")).matches(alert, minutes(1))


@pytest.mark.parametrize("op", [MatchOp.REGEX, MatchOp.NOT_REGEX])
def test_a_stored_pattern_re2_refuses_reads_back_as_a_silence_that_mutes_nothing(op: MatchOp) -> None:
    stored = Matcher.from_storage("district", str(op), r"(a)\1")
    assert stored.unusable is not None and "RE2" in stored.unusable
    assert not stored.matches(raised(district_id="aa"))
    silence = _silence(stored)
    assert silence.disabled_reason is not None and silence.state(minutes(1)) == "disabled"
    assert not is_silenced(raised(district_id="anything"), [silence], minutes(1))


def test_a_stored_matcher_that_compiles_reads_back_as_it_was_made() -> None:
    assert Matcher.from_storage("district", "=~", "ain-.*") == Matcher("district", MatchOp.REGEX, "ain-.*")
    assert Matcher.from_storage("district", "=~", "ain-.*").unusable is None
