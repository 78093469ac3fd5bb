"""The replay command's transport side without a broker: AlertEvents read back, and the report's shape."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from madina.alerts import AlertDetails, AlertState, AlertTransition, Severity
from madina.bus.alert_events import to_alert_event
from madina.contract import InvalidRecord
from services.environment.domain.raised import AlertRevision
from services.environment.domain.replay import Episode, compare_runs
from services.environment.replay_command import (
    ReplayReport,
    alert_revision,
    local_rule_id,
    report_json,
    report_table,
)

RAISED = datetime(2026, 11, 2, 9, tzinfo=UTC)


def cleared_transition() -> AlertTransition:
    return AlertTransition(
        alert_id="a1", domain="environment", source_id="cas-air-anfa", rule_id="eu-2008-50/pm10-24h",
        state=AlertState.CLEARED, severity=Severity.MAJOR, observed_value=41.0, threshold=50.0,
        raise_time=RAISED, clear_time=RAISED + timedelta(hours=5), event_time=RAISED + timedelta(hours=6),
        revision=4, message="cleared", details=AlertDetails(category="air-quality", source_kind="air"),
    )


def test_an_alert_event_reads_back_as_the_revision_that_was_published() -> None:
    assert alert_revision(to_alert_event(cleared_transition())) == AlertRevision(
        alert_id="a1", revision=4, domain="environment", category="air-quality", station_id="cas-air-anfa",
        rule_id="eu-2008-50/pm10-24h", state=AlertState.CLEARED, severity=Severity.MAJOR, raise_time=RAISED,
        clear_time=RAISED + timedelta(hours=5), event_time=RAISED + timedelta(hours=6),
    )


def test_an_open_alert_reads_back_without_clear_time_and_one_without_state_is_refused() -> None:
    event = to_alert_event(cleared_transition())
    event.ClearField("clear_time")
    assert alert_revision(event).clear_time is None
    event.state = 0  # type: ignore[assignment]
    with pytest.raises(InvalidRecord, match="state or severity unspecified"):
        alert_revision(event)


def test_the_report_names_the_raised_side_in_its_keys_and_columns() -> None:
    raised = Episode("a1", "cas-air-anfa", "eu-2008-50/pm10-24h", RAISED, RAISED + timedelta(hours=5),
                     timedelta(hours=5), Severity.MAJOR)
    proposed = Episode("b1", "cas-air-anfa", "city-2027/pm10-24h", RAISED + timedelta(days=2),
                       RAISED + timedelta(days=2, hours=1), timedelta(hours=1), Severity.MAJOR)
    report = ReplayReport(compare_runs([raised], [proposed], local_rule_id), 96, ("eu-2008-50",), ("city-2027",),
                          RAISED, RAISED + timedelta(days=7), "raised")

    reported = report_json(report)

    assert reported["against"] == "raised" and reported["profiles_raised"] == ["eu-2008-50"]
    assert [e["alert_id"] for e in reported["only_raised"]] == ["a1"]
    assert reported["per_station_rule"] == [{
        "station_id": "cas-air-anfa", "rule": "pm10-24h", "raised": 1, "proposed": 1, "unchanged": 0,
        "changed": 0, "only_raised": 1, "only_proposed": 1}]
    table = report_table(report)
    assert "only raised: 1   only proposed: 1" in table
    assert "only raised    cas-air-anfa  eu-2008-50/pm10-24h" in table
