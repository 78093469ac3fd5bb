"""Behaviour of the operations store (services.operations.store) on SQLite and PostgreSQL.

Records go in as domain records, as the ingest consumer's parse step hands them over (the
mapping from protobuf is tested on its own).
"""

from __future__ import annotations

import random
import time
from datetime import timedelta
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select

from services.operations.domain import (
    ActionType,
    AlertAction,
    AlertEvent,
    AlertFilter,
    AlertState,
    AlertStatus,
    Severity,
)
from services.operations.store import (
    AlertStore,
    event_to_message,
    migrate,
)
from services.operations.store.schema import VERSION_TABLE, actions, alert_history, alerts, metadata
from tests.unit.operations.factories import action, event, minutes


def raise_(alert_id: str = "alert-1", **fields: Any) -> AlertEvent:
    return event(alert_id=alert_id, **fields)


def transition(alert_id: str, revision: int, state: AlertState, **fields: Any) -> AlertEvent:
    return event(revision=revision, state=state, alert_id=alert_id, **fields)


def act(
    action_type: ActionType, at_minute: float, alert_id: str = "alert-1", **fields: Any
) -> AlertAction:
    return action(action_type, minutes(at_minute), alert_id=alert_id, **fields)


def test_migrate_is_idempotent_and_creates_exactly_the_schema(store_url):
    migrate(store_url)
    migrate(store_url)
    with AlertStore(store_url) as store, store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        assert context.get_current_revision() == "0002"
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_same_event_delivered_twice_changes_nothing(store):
    first = store.apply_event(raise_())
    assert first is not None and first.cause == "event"
    assert store.apply_event(raise_()) is None
    assert store.apply_batch([raise_(), raise_()]) == []
    detail = store.get("alert-1")
    assert detail is not None and len(detail.history) == 1
    assert store.latest_seq() == first.seq


def test_older_revision_does_not_overwrite_newer(store):
    store.apply_batch([raise_(), transition("alert-1", 3, AlertState.ESCALATED, severity=Severity.CRITICAL)])
    assert store.apply_event(transition("alert-1", 2, AlertState.CLEARED)) is None
    detail = store.get("alert-1")
    assert detail is not None
    assert detail.alert.revision == 3 and detail.alert.active
    assert detail.alert.severity is Severity.CRITICAL


def test_ack_then_clear_gives_cleared_acknowledged(store):
    store.apply_event(raise_())
    acknowledged = store.apply_action(act(ActionType.ACKNOWLEDGE, 4, actor="amina"))
    assert acknowledged is not None and acknowledged.cause == "acknowledge"
    assert acknowledged.alert.status is AlertStatus.ACTIVE_ACKNOWLEDGED
    cleared = store.apply_event(transition("alert-1", 2, AlertState.CLEARED))
    assert cleared is not None
    assert cleared.alert.status is AlertStatus.CLEARED_ACKNOWLEDGED
    detail = store.get("alert-1")
    assert detail is not None and detail.alert.status is AlertStatus.CLEARED_ACKNOWLEDGED
    assert [change.cause for change in detail.history] == ["event", "acknowledge", "event"]


def test_time_to_acknowledge_recorded(store):
    store.apply_batch(
        [
            raise_("a"),
            raise_("b", source_id="s2"),
            act(ActionType.ACKNOWLEDGE, 6, alert_id="a"),
            act(ActionType.ACKNOWLEDGE, 10, alert_id="b"),
            transition("a", 2, AlertState.CLEARED, at=minutes(30)),
        ]
    )
    detail = store.get("a")
    assert detail is not None
    assert detail.alert.acknowledge_time == minutes(6)
    assert detail.alert.time_to_acknowledge == timedelta(minutes=6)
    assert detail.alert.time_to_clear == timedelta(minutes=30)
    kpis = store.kpis()
    assert kpis["mean_time_to_acknowledge_s"] == pytest.approx(8 * 60)
    assert kpis["mean_time_to_clear_s"] == pytest.approx(30 * 60)


def test_action_with_a_seen_action_id_is_applied_once(store):
    store.apply_event(raise_())
    comment = act(ActionType.COMMENT, 2, text="crew on the way", action_id="c-1")
    assert store.apply_action(comment) is not None
    assert store.apply_action(comment) is None
    assert store.apply_batch([comment, comment]) == []
    detail = store.get("alert-1")
    assert detail is not None and len(detail.alert.comments) == 1


def test_second_acknowledgement_is_audited_but_keeps_the_first(store):
    store.apply_event(raise_())
    store.apply_action(act(ActionType.ACKNOWLEDGE, 3, actor="amina"))
    second = store.apply_action(act(ActionType.ACKNOWLEDGE, 8, actor="youssef"))
    assert second is not None and second.action is not None and second.action.actor == "youssef"
    assert second.alert.acknowledged_by == "amina"


def test_action_before_its_alert_waits_and_applies_when_the_alert_arrives(store):
    assert store.apply_action(act(ActionType.ACKNOWLEDGE, 5, alert_id="late")) is None
    assert store.get("late") is None
    changes = store.apply_batch(
        [act(ActionType.ASSIGN, 7, alert_id="late", assignee="roads-team"), raise_("late")]
    )
    assert [change.cause for change in changes] == ["event", "acknowledge", "assign"]
    detail = store.get("late")
    assert detail is not None
    assert detail.alert.acknowledged_by == "amina" and detail.alert.assignee == "roads-team"
    assert store.apply_event(raise_("late")) is None


def test_source_update_after_manual_resolve_is_recorded_but_does_not_reopen(store):
    store.apply_event(raise_())
    store.apply_action(act(ActionType.RESOLVE, 15, actor="youssef"))
    later = store.apply_event(transition("alert-1", 2, AlertState.ESCALATED, severity=Severity.CRITICAL))
    assert later is not None
    detail = store.get("alert-1")
    assert detail is not None
    assert detail.alert.status is AlertStatus.CLEARED_UNACKNOWLEDGED
    assert detail.alert.resolved_by == "youssef" and detail.alert.clear_time == minutes(15)
    assert detail.alert.latest.revision == 2
    assert [change.cause for change in detail.history] == ["event", "resolve", "event"]


def test_a_batch_that_fails_part_way_writes_nothing(store, monkeypatch):
    from services.operations.store import writer

    def refuse_b(current, record):
        if record.alert_id == "b":
            raise ValueError("refused")
        return writer_apply_event(current, record)

    writer_apply_event = writer.apply_event
    monkeypatch.setattr(writer, "apply_event", refuse_b)
    with pytest.raises(ValueError, match="refused"):
        store.apply_batch([raise_("a"), raise_("b")])
    assert store.get("a") is None and store.latest_seq() == 0


def test_the_store_takes_domain_records_not_wire_messages(store):
    with pytest.raises(TypeError):
        store.apply_batch([raise_("a"), event_to_message(raise_("b"))])
    assert store.latest_seq() == 0


def test_rebuild_from_topic_order_reproduces_store(store, store_url_factory, clock):
    stream = _realistic_stream(alert_count=60, seed=7)
    for start in range(0, len(stream), 37):
        store.apply_batch(stream[start : start + 37])
    for record in stream[:50]:
        store.apply_batch([record])

    with AlertStore(rebuilt_url := store_url_factory(), clock=clock) as rebuilt:
        migrate(rebuilt_url)
        rebuilt.rebuild_from(stream, batch_size=250)
        assert _dump(rebuilt) == _dump(store)
        assert rebuilt.kpis() == store.kpis()


def test_list_filters_by_state_status_domain_severity_district_and_since(store):
    store.apply_batch(
        [
            raise_("env-major", severity=Severity.MAJOR),
            raise_("env-critical", source_id="s2", severity=Severity.CRITICAL, district_id="maarif"),
            raise_(
                "mob-warning", domain="mobility", rule_id="delay", severity=Severity.WARNING, at=minutes(20)
            ),
            raise_("lit-minor", domain="lighting", rule_id="lamp-out", severity=Severity.MINOR),
            transition(
                "lit-minor",
                2,
                AlertState.CLEARED,
                domain="lighting",
                rule_id="lamp-out",
                severity=Severity.MINOR,
            ),
            act(ActionType.ACKNOWLEDGE, 2, alert_id="env-major"),
        ]
    )

    def ids(**criteria: Any) -> set[str]:
        page = store.list_alerts(AlertFilter(**criteria))
        return {alert.alert_id for alert in page.alerts}

    assert ids() == {"env-major", "env-critical", "mob-warning", "lit-minor"}
    assert ids(state="active") == {"env-major", "env-critical", "mob-warning"}
    assert ids(state="cleared") == {"lit-minor"}
    assert ids(status=AlertStatus.ACTIVE_ACKNOWLEDGED) == {"env-major"}
    assert ids(status=AlertStatus.ACTIVE_UNACKNOWLEDGED) == {"env-critical", "mob-warning"}
    assert ids(domains=["environment", "mobility"]) == {"env-major", "env-critical", "mob-warning"}
    assert ids(min_severity=Severity.MAJOR) == {"env-major", "env-critical"}
    assert ids(district_ids=["maarif"]) == {"env-critical"}
    assert ids(since=minutes(10)) == {"mob-warning", "lit-minor"}
    assert ids(state="active", domains=["environment"], min_severity=Severity.CRITICAL) == {"env-critical"}


def test_list_pages_newest_change_first_without_repeats(store):
    store.apply_batch([raise_(f"a{n:02d}", source_id=f"s{n}") for n in range(23)])
    store.apply_action(act(ActionType.COMMENT, 5, alert_id="a03", text="bumped"))

    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = store.list_alerts(limit=10, page_token=token)
        seen.extend(alert.alert_id for alert in page.alerts)
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert pages == 3
    assert seen[0] == "a03" and seen[1:3] == ["a22", "a21"]
    assert sorted(seen) == sorted(f"a{n:02d}" for n in range(23))


def test_list_rejects_bad_page_tokens_and_sizes(store):
    with pytest.raises(ValueError, match="page token"):
        store.list_alerts(page_token="not-a-token")
    with pytest.raises(ValueError, match="limit"):
        store.list_alerts(limit=501)


def test_changes_since_cursor_resumes_without_gaps(store):
    store.apply_batch(_realistic_stream(alert_count=8, seed=3))
    everything = store.changes_since(0, limit=10_000)
    assert [change.seq for change in everything] == list(range(1, len(everything) + 1))

    resumed = []
    cursor = "0"
    while batch := store.changes_since(cursor, limit=7):
        resumed.extend(batch)
        cursor = batch[-1].cursor
    assert resumed == everything

    now = store.latest_seq()
    assert store.changes_since(now) == []
    store.apply_event(raise_("fresh"))
    (fresh,) = store.changes_since(now)
    assert fresh.alert_id == "fresh" and fresh.seq == now + 1


def test_silence_matches_by_regex_within_window(store, clock):
    store.apply_batch(
        [raise_("anfa", district_id="anfa"), raise_("maarif", source_id="s2", district_id="maarif")]
    )
    silence = store.create_silence(
        ['district=~"an.*"', "domain=environment"],
        starts_at=clock.now + timedelta(minutes=10),
        ends_at=clock.now + timedelta(hours=1),
        created_by="amina",
        comment="station maintenance",
    )

    def silenced() -> dict[str, bool]:
        return {alert.alert_id: alert.silenced for alert in store.list_alerts().alerts}

    assert silenced() == {"anfa": False, "maarif": False}
    clock.advance(timedelta(minutes=15))
    assert silenced() == {"anfa": True, "maarif": False}
    detail = store.get("anfa")
    assert detail is not None and detail.alert.silenced
    assert store.list_silences() == [silence]

    store.expire_silence(silence.silence_id)
    assert silenced() == {"anfa": False, "maarif": False}
    assert store.list_silences() == []
    assert [s.silence_id for s in store.list_silences(include_expired=True)] == [silence.silence_id]
    assert store.delete_silence(silence.silence_id)
    assert store.get_silence(silence.silence_id) is None
    assert not store.delete_silence(silence.silence_id)


def test_applied_changes_carry_the_silenced_flag(store, clock):
    store.create_silence(
        ["severity=critical"], ends_at=clock.now + timedelta(hours=1), created_by="a", comment="b"
    )
    (change,) = store.apply_batch([raise_("loud", severity=Severity.CRITICAL)])
    assert change.alert.silenced
    assert store.changes_since(0)[0].alert.silenced


def test_groups_summarise_correlated_active_alerts(store):
    store.apply_batch(
        [
            raise_(
                "l1",
                domain="lighting",
                rule_id="lamp-out",
                labels={"circuit": "C12"},
                severity=Severity.MINOR,
            ),
            raise_(
                "l2", domain="lighting", rule_id="lamp-out", labels={"circuit": "C12"}, district_id="maarif"
            ),
            raise_("l3", domain="lighting", rule_id="lamp-out", labels={"circuit": "C12"}, source_id="s3"),
            transition(
                "l3", 2, AlertState.CLEARED, domain="lighting", rule_id="lamp-out", labels={"circuit": "C12"}
            ),
            raise_("air", severity=Severity.WARNING),
        ]
    )
    groups = store.groups()
    assert [(g.group_key, g.active_count, g.max_active_severity) for g in groups] == [
        ("lighting:lamp-out:circuit=C12", 2, Severity.MAJOR),
        ("environment:who-2021/pm25-24h:district=casablanca/anfa", 1, Severity.WARNING),
    ]
    circuit = store.groups(include_cleared=True)[0]
    assert circuit.total_count == 3


def test_kpis_count_per_status_domain_and_severity(store):
    store.apply_batch(
        [
            raise_("a", severity=Severity.CRITICAL),
            raise_("b", source_id="s2", domain="mobility", rule_id="delay"),
            transition("b", 2, AlertState.CLEARED, source_id="s2", domain="mobility", rule_id="delay"),
            act(ActionType.ACKNOWLEDGE, 1, alert_id="a"),
        ]
    )
    kpis = store.kpis()
    assert kpis["total"] == 2 and kpis["active"] == 1
    assert kpis["by_status"] == {"ACTIVE_ACKNOWLEDGED": 1, "CLEARED_UNACKNOWLEDGED": 1}
    assert kpis["by_domain"] == {
        "environment": {"total": 1, "active": 1},
        "mobility": {"total": 1, "active": 0},
    }
    assert kpis["by_severity"] == {"CRITICAL": {"total": 1, "active": 1}, "MAJOR": {"total": 1, "active": 0}}


def test_empty_store_reads_cleanly(store):
    assert store.get("nope") is None
    assert store.list_alerts().alerts == ()
    assert store.changes_since(0) == [] and store.latest_seq() == 0
    assert store.groups() == [] and store.kpis()["total"] == 0
    assert store.apply_batch([]) == []


def test_apply_batch_of_1000_events_is_fast(store):
    stream = [raise_(f"bench-{n}", source_id=f"s{n}") for n in range(1000)]
    started = time.perf_counter()
    changes = store.apply_batch(stream)
    elapsed = time.perf_counter() - started
    assert len(changes) == 1000
    print(f"\napply_batch: 1000 new alerts in {elapsed * 1000:.0f} ms ({1000 / elapsed:,.0f} events/s)")
    # A loose bound that only catches a per-row round trip or a missing transaction.
    assert elapsed < 5


def _realistic_stream(alert_count: int, seed: int) -> list[AlertEvent | AlertAction]:
    """Interleaved topics as a consumer sees them: episodes, redeliveries, and actions that run
    ahead of their alert's first event."""
    rng = random.Random(seed)
    stream: list[Any] = []
    for n in range(alert_count):
        alert_id = f"alert-{n}"
        fields = {"source_id": f"s{n}", "district_id": rng.choice(["anfa", "maarif", "sidi-belyout"])}
        revisions = rng.randint(1, 4)
        episode: list[Any] = [raise_(alert_id, **fields)]
        for revision in range(2, revisions + 1):
            state = AlertState.CLEARED if revision == revisions and rng.random() < 0.5 else AlertState.UPDATED
            episode.append(transition(alert_id, revision, state, **fields))
        operator: list[Any] = []
        if rng.random() < 0.6:
            operator.append(act(ActionType.ACKNOWLEDGE, rng.randint(1, 30), alert_id=alert_id))
        if rng.random() < 0.3:
            operator.append(act(ActionType.COMMENT, rng.randint(1, 30), alert_id=alert_id, text="looking"))
        if rng.random() < 0.1:
            operator.append(act(ActionType.RESOLVE, 31, alert_id=alert_id))
        for record in operator:
            # Actions sit on another topic: some are read before their alert's events.
            episode.insert(rng.randint(0, len(episode)), record)
        stream.extend(episode)
        if rng.random() < 0.2:
            stream.append(rng.choice(episode))
    return stream


def _dump(store: AlertStore) -> dict[str, Any]:
    with store.engine.connect() as connection:
        return {
            table.name: [
                {key: value for key, value in row._mapping.items() if key != "recorded_time"}
                for row in connection.execute(select(table).order_by(*table.primary_key.columns))
            ]
            for table in (alerts, alert_history, actions)
        }


def test_replay_stream_has_early_actions_and_redeliveries():
    stream = _realistic_stream(alert_count=60, seed=7)
    first_seen: dict[str, str] = {}
    for record in stream:
        first_seen.setdefault(record.alert_id, type(record).__name__)
    assert "AlertAction" in first_seen.values()
    assert len(stream) > len({repr(r) for r in stream})
