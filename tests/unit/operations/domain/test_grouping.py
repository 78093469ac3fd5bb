"""Behaviour of alert correlation (services.operations.domain.grouping)."""

from __future__ import annotations

from services.operations.domain import AlertState, Severity, apply_event, group_key, summarize_groups
from tests.unit.operations.factories import event, minutes, raised


def test_same_rule_in_same_district_shares_a_group():
    first = event(alert_id="a", source_id="s1")
    second = event(alert_id="b", source_id="s2")
    assert group_key(first) == group_key(second)


def test_different_district_or_rule_or_domain_splits_groups():
    base = group_key(event())
    assert group_key(event(district_id="ain-sebaa")) != base
    assert group_key(event(rule_id="who-2021/no2-24h")) != base
    assert group_key(event(domain="lighting")) != base


def test_circuit_label_groups_lamps_across_districts():
    north = event(
        alert_id="a", domain="lighting", rule_id="lamp-out", district_id="anfa", labels={"circuit": "C12"}
    )
    south = event(
        alert_id="b", domain="lighting", rule_id="lamp-out", district_id="maarif", labels={"circuit": "C12"}
    )
    assert group_key(north) == group_key(south) == "lighting:lamp-out:circuit=C12"


def test_group_label_wins_over_circuit():
    assert group_key(event(labels={"circuit": "C12", "group": "feeder-3"})).endswith(":group=feeder-3")


def test_circuit_and_district_with_the_same_name_stay_apart():
    by_circuit = group_key(event(labels={"circuit": "anfa"}))
    by_district = group_key(event(district_id="anfa"))
    assert by_circuit != by_district


def test_group_summary_counts_active_and_takes_max_active_severity():
    major = raised(alert_id="a", source_id="s1", severity=Severity.MAJOR)
    critical = raised(alert_id="b", source_id="s2", severity=Severity.CRITICAL)
    cleared_critical = apply_event(
        raised(alert_id="c", source_id="s3", severity=Severity.CRITICAL),
        event(alert_id="c", source_id="s3", revision=2, state=AlertState.CLEARED, at=minutes(30)),
    )
    assert cleared_critical is not None
    other = raised(alert_id="d", district_id="maarif", severity=Severity.WARNING)

    summaries = summarize_groups([major, cleared_critical, other, critical])

    assert [s.group_key for s in summaries] == [major.group_key, other.group_key]
    anfa = summaries[0]
    assert (anfa.active_count, anfa.total_count) == (2, 3)
    assert anfa.max_active_severity is Severity.CRITICAL
    assert anfa.last_updated_time == minutes(30)


def test_group_whose_alerts_all_cleared_has_no_active_severity():
    cleared = apply_event(raised(), event(revision=2, state=AlertState.CLEARED))
    assert cleared is not None
    (summary,) = summarize_groups([cleared])
    assert summary.active_count == 0 and summary.max_active_severity is None
