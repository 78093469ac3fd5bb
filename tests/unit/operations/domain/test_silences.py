"""Behaviour of Alertmanager-style silences (services.operations.domain.silences)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.operations.domain import Matcher, MatchOp, Severity, Silence, is_silenced, with_silences
from tests.unit.operations.factories import T0, minutes, raised


def silence(*matchers: str, starts_at=T0, ends_at=None) -> Silence:
    return Silence(
        silence_id="s1",
        matchers=tuple(Matcher.parse(text) for text in matchers),
        starts_at=starts_at,
        ends_at=ends_at or T0 + timedelta(hours=2),
        created_by="amina",
        comment="maintenance on the Anfa station",
    )


def test_silence_matches_by_regex_within_window():
    mute = silence('district=~"an.*"', "domain=environment")
    alert = raised(district_id="anfa")
    assert mute.matches(alert, minutes(30))
    assert not mute.matches(alert, T0 - timedelta(seconds=1))
    assert not mute.matches(alert, T0 + timedelta(hours=2))


def test_regex_is_anchored_like_alertmanager():
    assert not silence("district=~nfa").matches(raised(district_id="anfa"), minutes(1))
    assert silence("district=~.nfa").matches(raised(district_id="anfa"), minutes(1))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rule_id=who-2021/pm25-24h", True),
        ("rule_id!=who-2021/pm25-24h", False),
        ('category!~"data-.*"', True),
        ('source_id=~"cas-air-.*"', True),
        ("severity=major", True),
        ('severity=~"critical"', False),
        ("city=casablanca", True),
    ],
)
def test_each_operator_and_field(text, expected):
    assert silence(text).matches(raised(), minutes(1)) is expected


def test_all_matchers_must_match():
    assert not silence("domain=environment", "district=maarif").matches(raised(), minutes(1))


def test_labels_are_matchable_and_absent_labels_read_empty():
    alert = raised(labels={"team": "air"})
    assert silence("team=air").matches(alert, minutes(1))
    assert silence("labels.team=~a.r").matches(alert, minutes(1))
    assert silence('owner=""').matches(alert, minutes(1))
    assert silence("owner!=roads").matches(alert, minutes(1))


def test_fields_win_over_a_label_of_the_same_name():
    alert = raised(labels={"domain": "mislabelled"})
    assert silence("domain=environment").matches(alert, minutes(1))
    assert silence("labels.domain=mislabelled").matches(alert, minutes(1))


def test_silenced_flag_reflects_silences_at_evaluation_time():
    alert = raised(severity=Severity.CRITICAL)
    mute = silence("severity=critical", starts_at=minutes(10), ends_at=minutes(20))
    assert not with_silences(alert, [mute], minutes(5)).silenced
    assert with_silences(alert, [mute], minutes(15)).silenced
    assert not is_silenced(alert, [mute], minutes(20))


def test_expiring_ends_the_window_now_and_a_pending_silence_never_starts():
    active = silence("domain=environment").expired(minutes(30))
    assert active.ends_at == minutes(30) and active.state(minutes(30)) == "expired"
    pending = silence("domain=environment", starts_at=minutes(60), ends_at=minutes(90)).expired(minutes(30))
    assert pending.starts_at == pending.ends_at == minutes(30)
    assert not pending.matches(raised(), minutes(30))


def test_parse_accepts_quotes_and_escapes_and_round_trips():
    matcher = Matcher.parse(r'message=~"say \"hi\""')
    assert (matcher.name, matcher.op, matcher.value) == ("message", MatchOp.REGEX, 'say "hi"')
    assert Matcher.parse(str(matcher)) == matcher


@pytest.mark.parametrize("text", ["", "=x", "district", "district=~([", "1bad=x"])
def test_malformed_matchers_are_rejected(text):
    with pytest.raises(ValueError):
        Matcher.parse(text)


def test_silence_without_matchers_author_or_reason_is_rejected():
    with pytest.raises(ValueError, match="matcher"):
        Silence("s", (), T0, minutes(5), "amina", "why")
    with pytest.raises(ValueError, match="author"):
        Silence("s", (Matcher.parse("domain=x"),), T0, minutes(5), " ", "why")
    with pytest.raises(ValueError, match="comment"):
        Silence("s", (Matcher.parse("domain=x"),), T0, minutes(5), "amina", "")
    with pytest.raises(ValueError, match="end"):
        Silence("s", (Matcher.parse("domain=x"),), minutes(5), T0, "amina", "why")
