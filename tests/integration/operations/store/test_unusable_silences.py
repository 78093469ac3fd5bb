"""Silences stored before RE2, with patterns it refuses, on SQLite and PostgreSQL.

Reading them back must not fail (not the silence list, not the alerts they would apply to); at
start-up the store disables them with the reason, keeps the rows and logs a warning; a silence
that is fine keeps muting.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import insert, select

from services.operations.store import AlertStore
from services.operations.store.schema import silences
from tests.unit.operations.factories import event

BACKREFERENCE = r"(an)\1.*"  # Python's re took it; RE2 has no backreferences
TOO_LONG = "a" * 300


def _store_as_before_re2(store: AlertStore, silence_id: str, pattern: str, now) -> None:  # type: ignore[no-untyped-def]
    """A row written by the service before RE2, when any pattern Python's re took was stored."""
    with store.engine.begin() as connection:
        connection.execute(insert(silences).values(
            silence_id=silence_id, matchers=[{"name": "district", "op": "=~", "value": pattern}],
            starts_at=now - timedelta(minutes=5), ends_at=now + timedelta(hours=1),
            created_by="amina", comment="maintenance", created_time=now - timedelta(minutes=5),
        ))


def test_silences_re2_refuses_read_back_disabled_are_recorded_and_mute_nothing(
    store: AlertStore, clock, caplog: pytest.LogCaptureFixture  # type: ignore[no-untyped-def]
) -> None:
    store.apply_batch([event(alert_id="anan", district_id="ananfa"), event(alert_id="maarif", district_id="maarif",
                                                                        source_id="s2")])
    _store_as_before_re2(store, "old-backreference", BACKREFERENCE, clock.now)
    _store_as_before_re2(store, "old-long", TOO_LONG, clock.now)
    working = store.create_silence(['district="maarif"'], ends_at=clock.now + timedelta(hours=1),
                                   created_by="omar", comment="roadworks")

    # Read-time fallback, before start-up has disabled anything: no read fails, nothing extra is muted.
    assert {a.alert_id: a.silenced for a in store.list_alerts().alerts} == {"anan": False, "maarif": True}
    listed = {s.silence_id: s for s in store.list_silences()}
    assert listed["old-backreference"].disabled_reason is not None
    assert not listed["old-backreference"].is_active(clock.now)
    assert listed[working.silence_id].is_active(clock.now)

    with caplog.at_level(logging.WARNING, logger="services.operations.store.silences"):
        disabled = store.disable_unusable_silences()
    assert sorted(s.silence_id for s in disabled) == ["old-backreference", "old-long"]
    assert sum("silence disabled" in record.getMessage() for record in caplog.records) == 2
    assert store.disable_unusable_silences() == []  # done once

    with store.engine.connect() as connection:
        reasons = dict(connection.execute(select(silences.c.silence_id, silences.c.disabled_reason)).all())
    assert "RE2" in reasons["old-backreference"] and BACKREFERENCE[:4] in reasons["old-backreference"]
    assert "at most 256 characters" in reasons["old-long"]
    assert reasons[working.silence_id] is None

    kept = store.get_silence("old-backreference")
    assert kept is not None and kept.matchers[0].value == BACKREFERENCE and kept.state(clock.now) == "disabled"
    assert {a.alert_id: a.silenced for a in store.list_alerts().alerts} == {"anan": False, "maarif": True}
    detail = store.get("anan")
    assert detail is not None and not detail.alert.silenced
    assert store.expire_silence("old-long") is not None
    assert len(store.list_silences(include_expired=True)) == 3
