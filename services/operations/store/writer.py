"""One batch of alert events and actions applied to the rows it touches, then written in bulk.

:class:`BatchWriter` is the store's write path (:meth:`AlertStore.apply_batch` opens the
transaction and hands it one): it loads the views and action ids a batch touches, runs the
lifecycle rules of :mod:`services.operations.domain.lifecycle` in memory, keeps actions whose alert
is not known yet until its first event, and flushes history, actions and current views in a few
bulk statements. ``change_seq`` continues from the newest stored one, so it is gap-free in commit
order under the store's single-writer lock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any, TypeVar

from sqlalchemy import Connection, bindparam, func, insert, select, update

from services.operations.domain.lifecycle import apply_action, apply_event
from services.operations.domain.model import EVENT_CAUSE, AlertAction, AlertEvent, AlertView, Change, Record
from services.operations.store.documents import (
    Document,
    action_from_document,
    action_to_document,
    view_from_document,
    view_to_document,
)
from services.operations.store.schema import actions, alert_history, alerts

# Keeps IN (...) lists well under every driver's bound-parameter limit.
_LOOKUP_CHUNK = 500
T = TypeVar("T")


@dataclass
class PendingAction:
    action: AlertAction
    row: dict[str, Any] | None
    """The row this batch will insert, or ``None`` when the action is already stored."""


@dataclass
class BatchWriter:
    """Applies one batch in memory against the rows it touches, then writes them in bulk."""

    connection: Connection
    recorded_time: datetime
    views: dict[str, AlertView] = field(default_factory=dict)
    stored_alert_ids: set[str] = field(default_factory=set)
    seen_action_ids: set[str] = field(default_factory=set)
    pending: dict[str, list[PendingAction]] = field(default_factory=lambda: defaultdict(list))
    changes: list[Change] = field(default_factory=list)
    history_rows: list[dict[str, Any]] = field(default_factory=list)
    action_rows: list[dict[str, Any]] = field(default_factory=list)
    released_stored_actions: list[dict[str, Any]] = field(default_factory=list)
    alert_documents: dict[str, tuple[int, Document]] = field(default_factory=dict)
    next_seq: int = 0

    def load(self, batch: Sequence[Record]) -> None:
        alert_ids = {record.alert_id for record in batch}
        action_ids = {record.action_id for record in batch if isinstance(record, AlertAction)}
        for chunk in chunks(alert_ids):
            for alert_id, document in self.connection.execute(
                select(alerts.c.alert_id, alerts.c.document).where(alerts.c.alert_id.in_(chunk))
            ):
                self.views[alert_id] = view_from_document(document)
        self.stored_alert_ids = set(self.views)
        for chunk in chunks(action_ids):
            self.seen_action_ids.update(
                self.connection.execute(
                    select(actions.c.action_id).where(actions.c.action_id.in_(chunk))
                ).scalars()
            )
        new_event_alert_ids = {r.alert_id for r in batch if isinstance(r, AlertEvent)} - self.stored_alert_ids
        for chunk in chunks(new_event_alert_ids):
            waiting = self.connection.execute(
                select(actions.c.document).where(
                    actions.c.alert_id.in_(chunk), actions.c.change_seq.is_(None)
                )
            ).scalars()
            for document in waiting:
                action = action_from_document(document)
                self.pending[action.alert_id].append(PendingAction(action, row=None))
        self.next_seq = latest_seq(self.connection) + 1

    def apply_event(self, event: AlertEvent) -> None:
        current = self.views.get(event.alert_id)
        updated = apply_event(current, event)
        if updated is None:
            return
        self._record(updated, EVENT_CAUSE, event.event_time, revision=event.revision)
        if current is None:
            self._release_pending(event.alert_id)

    def apply_action(self, action: AlertAction) -> None:
        if action.action_id in self.seen_action_ids:
            return
        self.seen_action_ids.add(action.action_id)
        row = _action_row(action)
        self.action_rows.append(row)
        current = self.views.get(action.alert_id)
        if current is None:
            self.pending[action.alert_id].append(PendingAction(action, row))
            return
        row["change_seq"] = self._record_action(current, action)

    def _release_pending(self, alert_id: str) -> None:
        waiting = self.pending.pop(alert_id, [])
        for item in sorted(waiting, key=lambda item: (item.action.action_time, item.action.action_id)):
            seq = self._record_action(self.views[alert_id], item.action)
            if item.row is not None:
                item.row["change_seq"] = seq
            else:
                self.released_stored_actions.append({"b_action_id": item.action.action_id, "change_seq": seq})

    def _record_action(self, current: AlertView, action: AlertAction) -> int:
        # Every distinct action is recorded, even one that changes nothing (a second
        # acknowledgement): the history is the audit trail of who did what.
        return self._record(apply_action(current, action), action.cause, action.action_time, action=action)

    def _record(
        self,
        view: AlertView,
        cause: str,
        occurred_time: datetime,
        *,
        revision: int | None = None,
        action: AlertAction | None = None,
    ) -> int:
        seq = self.next_seq
        self.next_seq += 1
        document = view_to_document(view)
        self.views[view.alert_id] = view
        self.alert_documents[view.alert_id] = (seq, document)
        self.history_rows.append(
            {
                "change_seq": seq,
                "alert_id": view.alert_id,
                "cause": cause,
                "revision": revision,
                "action_id": None if action is None else action.action_id,
                "occurred_time": occurred_time,
                "recorded_time": self.recorded_time,
                "action": None if action is None else action_to_document(action),
                "snapshot": document,
            }
        )
        self.changes.append(
            Change(seq=seq, cause=cause, alert=view, occurred_time=occurred_time, action=action)
        )
        return seq

    def flush(self) -> None:
        if self.history_rows:
            self.connection.execute(insert(alert_history), self.history_rows)
        if self.action_rows:
            self.connection.execute(insert(actions), self.action_rows)
        if self.released_stored_actions:
            self.connection.execute(
                update(actions).where(actions.c.action_id == bindparam("b_action_id")),
                self.released_stored_actions,
            )
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for alert_id, (seq, document) in self.alert_documents.items():
            row = _alert_row(self.views[alert_id], seq, document)
            if alert_id in self.stored_alert_ids:
                row["b_alert_id"] = row.pop("alert_id")
                updates.append(row)
            else:
                inserts.append(row)
        if inserts:
            self.connection.execute(insert(alerts), inserts)
        if updates:
            self.connection.execute(
                update(alerts).where(alerts.c.alert_id == bindparam("b_alert_id")), updates
            )


def _alert_row(view: AlertView, seq: int, document: Document) -> dict[str, Any]:
    event = view.latest
    to_acknowledge = view.time_to_acknowledge
    to_clear = view.time_to_clear
    return {
        "alert_id": view.alert_id,
        "revision": view.revision,
        "domain": event.domain,
        "category": event.category,
        "rule_id": event.rule_id,
        "source_id": event.source.entity_id,
        "severity": int(event.severity),
        "status": view.status.name,
        "active": view.active,
        "city_id": event.district.city_id,
        "district_id": event.district.district_id,
        "group_key": view.group_key,
        "acknowledged_by": view.acknowledged_by,
        "assignee": view.assignee,
        "raise_time": view.raise_time,
        "acknowledge_time": view.acknowledge_time,
        "clear_time": view.clear_time,
        "updated_time": view.updated_time,
        "time_to_acknowledge_s": None if to_acknowledge is None else to_acknowledge.total_seconds(),
        "time_to_clear_s": None if to_clear is None else to_clear.total_seconds(),
        "last_change_seq": seq,
        "document": document,
    }


def _action_row(action: AlertAction) -> dict[str, Any]:
    return {
        "action_id": action.action_id,
        "alert_id": action.alert_id,
        "action_type": action.action_type.name,
        "action_time": action.action_time,
        "change_seq": None,
        "document": action_to_document(action),
    }


def latest_seq(connection: Connection) -> int:
    return connection.execute(select(func.coalesce(func.max(alert_history.c.change_seq), 0))).scalar_one()




def chunks(values: Iterable[str]) -> Iterator[tuple[str, ...]]:
    return batched(sorted(values), _LOOKUP_CHUNK)


def batched(items: Iterable[T], size: int) -> Iterator[tuple[T, ...]]:
    # itertools.batched arrives in Python 3.12.
    iterator = iter(items)
    while chunk := tuple(islice(iterator, size)):
        yield chunk
