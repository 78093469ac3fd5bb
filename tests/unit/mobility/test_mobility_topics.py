"""The mobility topics' lifetimes: what each keeps, and for how long."""

from __future__ import annotations

from madina.bus.topics import DAY_MS
from services.mobility.topics import RIDERSHIP, RIDERSHIP_KEPT_DAYS, RIDERSHIP_VALIDATIONS, TICKET_VALIDATIONS


def test_ridership_totals_keep_each_hours_final_count_and_drop_old_hours() -> None:
    # One key per route, stop and hour: compaction alone would keep every hour forever.
    assert RIDERSHIP.topic_config() == {"cleanup.policy": "compact,delete",
                                        "retention.ms": str(RIDERSHIP_KEPT_DAYS * DAY_MS)}
    assert RIDERSHIP_KEPT_DAYS >= 31  # a month of hours to compare with the next one


def test_rekeyed_validations_live_as_long_as_the_validations_they_come_from() -> None:
    assert RIDERSHIP_VALIDATIONS.cleanup_policy == "delete"
    assert RIDERSHIP_VALIDATIONS.retention_ms == TICKET_VALIDATIONS.retention_ms
