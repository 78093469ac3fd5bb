"""A record the contract let through but the store refuses is dead-lettered; it never stalls ingest."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import DataError, OperationalError

from madina.bus import ALERTS, ConsumedEvent
from services.operations.api.ingest import AlertIngest
from tests.unit.operations.factories import event


class FlakyStore:
    """Refuses any batch holding ``poison``; is unavailable for the first ``outages`` calls."""

    def __init__(self, poison: str, outages: int = 0) -> None:
        self.poison, self.outages, self.applied = poison, outages, []  # type: ignore[var-annotated]

    def apply_batch(self, records: list[Any]) -> list[str]:
        if self.outages:
            self.outages -= 1
            raise OperationalError("SELECT 1", {}, Exception("connection refused"))
        if any(record.alert_id == self.poison for record in records):
            raise DataError("INSERT", {}, Exception("value out of range for the column"))
        self.applied += [record.alert_id for record in records]
        return [record.alert_id for record in records]


class Recorder:
    def __init__(self) -> None:
        self.dead: list[tuple[bytes | None, str]] = []
        self.published: list[Any] = []

    async def send_dead_letter(self, spec: Any, *, key: bytes | None, reason: str, **_: Any) -> None:
        self.dead.append((key, reason))

    async def publish(self, changes: list[Any]) -> None:
        self.published += changes


def _ingest(store: FlakyStore, recorder: Recorder) -> AlertIngest:
    return AlertIngest("127.0.0.1:1", store, recorder, recorder)  # type: ignore[arg-type]


def _consumed(alert_id: str, offset: int) -> ConsumedEvent:
    record = event(alert_id=alert_id)
    return ConsumedEvent(ALERTS, alert_id, record, [], 0, offset, 0, alert_id.encode(), b"raw")


async def test_a_record_the_store_refuses_is_dead_lettered_and_the_rest_of_its_batch_applies() -> None:
    store, recorder = FlakyStore(poison="bad"), Recorder()
    batch = [_consumed("good-1", 0), _consumed("bad", 1), _consumed("good-2", 2)]
    await _ingest(store, recorder)._handle(batch)
    assert store.applied == ["good-1", "good-2"]
    assert [key for key, _ in recorder.dead] == [b"bad"]
    assert "store refused the record" in recorder.dead[0][1]
    assert recorder.published == ["good-1", "good-2"]


async def test_an_unavailable_store_is_waited_for_and_nothing_is_dead_lettered() -> None:
    store, recorder = FlakyStore(poison="none", outages=2), Recorder()
    await _ingest(store, recorder)._handle([_consumed("good", 0)])
    assert store.applied == ["good"] and recorder.dead == []
