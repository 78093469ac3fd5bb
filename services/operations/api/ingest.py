"""From ``alerts.v1`` and ``alerts.actions.v1`` into the store, and from the store to watchers.

:class:`AlertIngest` is the consumer group member (group ``madina-operations``): each polled
batch is decoded, checked against the contract (a bad record goes to the topic's ``.dlq`` with
the reason, the good ones around it flow), applied in one store transaction off the event loop,
and its changes handed to the :class:`~services.operations.api.hub.ChangeHub`. A store that is
unavailable is waited for; a batch the store refuses for any other reason is applied again one
record at a time, and the record it refuses is dead-lettered too, so no record the contract let
through can stall the consumer. Offsets are
committed only after that, and the store ignores what it has already applied, so a crash replays
without doubling anything.

:func:`rebuild_store` replays both topics from the beginning into an empty store: the store is a
projection of the topics, and this is how a lost or new database is rebuilt::

    python -m services.operations.api.rebuild     # uses MADINA_DATABASE_URL, which must be empty
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from madina.bus import ALERT_ACTIONS, ALERTS, ConsumedEvent, EventConsumer, EventProducer
from madina.bus.reader import read_topics
from services.operations.api.hub import ChangeHub
from services.operations.store import AlertStore, Record, record_from_message

log = logging.getLogger(__name__)

ALERT_TOPICS = (ALERTS, ALERT_ACTIONS)
RETRY_DELAYS_S = (0.2, 0.5, 1.0, 2.0, 5.0)
# What "the store is unavailable" looks like; any other error is about the records.
STORE_UNAVAILABLE = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)


class AlertIngest:
    """Consumes the alert topics into ``store`` and fans the changes out through ``hub``."""

    def __init__(
        self, bootstrap: str, store: AlertStore, hub: ChangeHub, producer: EventProducer, *,
        group_id: str = "madina-operations", max_records: int = 2000,
    ) -> None:
        self.store = store
        self.hub = hub
        self._producer = producer
        self.applied_batches = 0
        self.consumer = EventConsumer(
            bootstrap, ALERT_TOPICS, group_id=group_id, handler=self._handle, producer=producer,
            parse=record_from_message, max_records=max_records,
        )

    @property
    def ready(self) -> asyncio.Event:
        return self.consumer.ready

    async def run(self) -> None:
        await self.consumer.run()

    def stop(self) -> None:
        self.consumer.stop()

    async def _handle(self, events: list[ConsumedEvent]) -> None:
        records: list[Record] = [event.record for event in events]
        try:
            changes = await self._apply(records)
        except Exception:
            # apply_batch is one transaction, so nothing of the batch was written.
            log.exception("the store refused a batch; applying its records one by one", extra={
                "records": len(records)})
            changes = []
            for event, record in zip(events, records, strict=True):
                try:
                    changes += await self._apply([record])
                except Exception as error:
                    await self._producer.send_dead_letter(
                        event.spec, key=event.raw_key, value=event.raw_value, headers=event.headers,
                        reason=f"store refused the record: {error!r}", partition=event.partition,
                        offset=event.offset,
                    )
        self.applied_batches += 1
        await self.hub.publish(changes)

    async def _apply(self, records: list[Record]) -> list[Any]:
        attempt = 0
        while True:
            try:
                return await asyncio.to_thread(self.store.apply_batch, records)
            except STORE_UNAVAILABLE:
                # Offsets are not committed until this returns, so waiting loses nothing.
                delay = RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S) - 1)]
                log.exception("store unavailable; retrying the batch", extra={"retry_in_s": delay})
                attempt += 1
                await asyncio.sleep(delay)


async def rebuild_store(bootstrap: str, store: AlertStore | str) -> int:
    """Replay both alert topics from the beginning into an empty store; returns the changes made."""
    owned = isinstance(store, str)
    target = AlertStore(store) if isinstance(store, str) else store
    try:
        if await asyncio.to_thread(target.latest_seq) != 0:
            raise ValueError("rebuild needs an empty store; replaying into a used one mixes histories")
        records = await read_topics(bootstrap, ALERT_TOPICS, record_from_message)
        changes = await asyncio.to_thread(target.rebuild_from, records)
        log.info("store rebuilt from topics", extra={"records": len(records), "changes": changes})
        return changes
    finally:
        if owned:
            target.close()
