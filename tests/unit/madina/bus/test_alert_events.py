"""The alert outbox: which staged transitions a state may forget, and which a new owner must publish."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta, timezone

from google.protobuf.timestamp_pb2 import Timestamp

from madina.bus.alert_events import AlertLedger, AlertOutbox, timestamp
from madina_proto.alerts.v1 import alerts_pb2


def event(alert_id: str, revision: int) -> alerts_pb2.AlertEvent:
    return alerts_pb2.AlertEvent(
        alert_id=alert_id, revision=revision, domain="environment", message=f"{alert_id} r{revision}"
    )


def test_staged_events_survive_a_json_round_trip_and_are_republished_when_the_topic_lacks_them() -> None:
    stored: dict[str, str] = {}
    AlertOutbox.stage(stored, event("a", 1))
    AlertOutbox.stage(stored, event("a", 2))
    AlertOutbox.stage(stored, event("b", 1))
    restored = json.loads(json.dumps(stored))  # what a faust changelog carries

    ledger = AlertLedger("environment")
    ledger.record("a", 1)  # the first revision of "a" reached the topic before the crash
    missing = AlertOutbox(ledger).unpublished(restored)

    assert [(e.alert_id, e.revision) for e in missing] == [("a", 2), ("b", 1)]
    assert missing[0].message == "a r2"


def test_unpublished_orders_revisions_of_one_alert_oldest_first() -> None:
    stored: dict[str, str] = {}
    for revision in (3, 1, 2):
        AlertOutbox.stage(stored, event("a", revision))
    missing = AlertOutbox(AlertLedger("environment")).unpublished(stored)
    assert [e.revision for e in missing] == [1, 2, 3]


def test_prune_forgets_only_acknowledged_entries() -> None:
    outbox = AlertOutbox(AlertLedger("environment"))
    stored: dict[str, str] = {}
    for alert_id, revision in (("a", 1), ("a", 2), ("b", 1)):
        AlertOutbox.stage(stored, event(alert_id, revision))

    outbox.confirm("a", 1)
    outbox.prune(stored)
    assert sorted(stored) == ["a#2", "b#1"]

    outbox.confirm("a", 2)
    outbox.confirm("b", 1)
    outbox.prune(stored)
    assert stored == {}


def test_what_the_ledger_read_back_from_the_topic_counts_as_acknowledged() -> None:
    ledger = AlertLedger("environment")
    stored: dict[str, str] = {}
    AlertOutbox.stage(stored, event("a", 1))
    AlertOutbox.stage(stored, event("a", 2))
    ledger.record("a", 1)  # as AlertLedger.load does for records on alerts.v1
    outbox = AlertOutbox(ledger)

    outbox.confirm_loaded()
    outbox.prune(stored)

    assert list(stored) == ["a#2"]


def test_alert_ids_containing_the_separator_are_parsed_from_the_right() -> None:
    outbox = AlertOutbox(AlertLedger("environment"))
    stored: dict[str, str] = {}
    AlertOutbox.stage(stored, event("env#station#rule", 4))
    outbox.confirm("env#station#rule", 4)
    outbox.prune(stored)
    assert stored == {}


def test_timestamp_is_what_from_datetime_makes_for_any_datetime() -> None:
    def from_datetime(moment: datetime) -> Timestamp:
        stamp = Timestamp()
        stamp.FromDatetime(moment)
        return stamp

    draw = random.Random(7)
    first, last = datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
    moments = [first, last, datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=UTC), datetime(1970, 1, 1, tzinfo=UTC)]
    moments += [first + timedelta(microseconds=draw.randrange(int((last - first) / timedelta(microseconds=1))))
                 for _ in range(2000)]
    moments += [moment.astimezone(timezone(timedelta(hours=5, minutes=30))) for moment in moments[5:20]]
    moments += [moment.replace(tzinfo=None) for moment in moments[5:20]]  # naive: FromDatetime takes it as UTC
    for moment in moments:
        assert timestamp(moment) == from_datetime(moment), moment
