"""``AlertStore``: the operations center's current alerts, their full history, and silences.

Every write goes through :meth:`AlertStore.apply_batch`: one transaction per batch, holding the
single-writer lock, so ingest is fast and ``change_seq`` is gap-free in commit order. The
lifecycle itself is :mod:`services.operations.domain.lifecycle`; this module only loads the
views a batch touches, runs the rules, and writes the results back.

What the store adds to the domain rules:

* **Idempotency.** An event whose revision is not above the stored one, and an action whose
  action id was seen before, return no change and write nothing. Replaying the topics into an
  empty store, in the same order, reproduces it exactly.
* **Actions that arrive before their alert.** ``alerts.v1`` and ``alerts.actions.v1`` are
  separate topics, so a rebuild may read an acknowledgement before the alert it acknowledges.
  Such actions are kept (``actions.change_seq`` is NULL) and applied, oldest first, right after
  the alert's first event.
* **Silences are evaluated when read**, with the store's clock, so creating or expiring a
  silence takes effect at once without rewriting alerts.

Run a store::

    from services.operations.store import AlertStore, migrate
    migrate("sqlite:///./data/operations.db")
    store = AlertStore("sqlite:///./data/operations.db")
    store.apply_batch(consumed_messages)
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Any, TypeVar

from sqlalchemy import (
    URL,
    Connection,
    Engine,
    Select,
    bindparam,
    delete,
    false,
    func,
    insert,
    select,
    true,
    update,
)

from services.operations.domain.filters import AlertFilter
from services.operations.domain.grouping import GroupSummary, summarize_groups
from services.operations.domain.lifecycle import apply_action, apply_event
from services.operations.domain.model import (
    EVENT_CAUSE,
    AlertAction,
    AlertDetail,
    AlertEvent,
    AlertPage,
    AlertStatus,
    AlertView,
    Change,
    Severity,
)
from services.operations.domain.silences import Matcher, Silence, with_silences
from services.operations.store.documents import (
    Document,
    action_from_document,
    action_to_document,
    matchers_from_document,
    matchers_to_document,
    view_from_document,
    view_to_document,
)
from services.operations.store.engine import DEFAULT_DATABASE_URL, make_engine, write_transaction
from services.operations.store.mapping import Message, Record, record_from_message
from services.operations.store.schema import actions, alert_history, alerts, silences

MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50
REBUILD_BATCH_SIZE = 1000
# Keeps IN (...) lists well under every driver's bound-parameter limit.
_LOOKUP_CHUNK = 500
_PAGE_TOKEN_PREFIX = "v1:"
T = TypeVar("T")


def utc_now() -> datetime:
    return datetime.now(UTC)


class AlertStore:
    """Current alerts, history and silences in one SQL database (SQLite or PostgreSQL).

    Thread-safe: each call uses its own pooled connection. Methods block, so async callers run
    them in a thread pool. ``clock`` decides "now" for silences and recorded times.
    """

    def __init__(
        self,
        database: str | URL | Engine = DEFAULT_DATABASE_URL,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._owns_engine = not isinstance(database, Engine)
        self._engine = database if isinstance(database, Engine) else make_engine(database)
        self._clock = clock

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        """Release pooled connections (only when the store created the engine)."""
        if self._owns_engine:
            self._engine.dispose()

    def __enter__(self) -> AlertStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- writes -------------------------------------------------------------------------------

    def apply_event(self, event: Message | AlertEvent) -> Change | None:
        """Apply one AlertEvent; ``None`` when it is a duplicate or older than the stored revision."""
        return next((change for change in self.apply_batch([event]) if change.cause == EVENT_CAUSE), None)

    def apply_action(self, action: Message | AlertAction) -> Change | None:
        """Apply one AlertAction; ``None`` for a seen action id, or while its alert is still unknown."""
        changes = self.apply_batch([action])
        return changes[0] if changes else None

    def apply_batch(self, records: Iterable[Message | Record]) -> list[Change]:
        """Apply events and actions in the given order in one transaction; the changes they made.

        Every record is validated first, so a malformed one (:class:`InvalidRecord`) fails the
        batch before anything is written. The result also holds the changes of waiting actions
        that an alert's first event released.
        """
        batch = [record_from_message(record) for record in records]
        if not batch:
            return []
        now = self._clock()
        with write_transaction(self._engine) as connection:
            writer = _BatchWriter(connection, recorded_time=now)
            writer.load(batch)
            for record in batch:
                if isinstance(record, AlertEvent):
                    writer.apply_event(record)
                else:
                    writer.apply_action(record)
            writer.flush()
            active_silences = self._active_silences(connection, now)
        return [_with_silences(change, active_silences, now) for change in writer.changes]

    def rebuild_from(self, records: Iterable[Message | Record], batch_size: int = REBUILD_BATCH_SIZE) -> int:
        """Replay a recorded stream (e.g. both topics from the beginning) in batches; changes made."""
        applied = 0
        for chunk in _batched(records, batch_size):
            applied += len(self.apply_batch(chunk))
        return applied

    # -- reads --------------------------------------------------------------------------------

    def get(self, alert_id: str) -> AlertDetail | None:
        """One alert with its history, oldest change first; ``None`` if unknown."""
        now = self._clock()
        with self._engine.connect() as connection:
            document = connection.execute(
                select(alerts.c.document).where(alerts.c.alert_id == alert_id)
            ).scalar_one_or_none()
            if document is None:
                return None
            rows = connection.execute(
                _history_query()
                .where(alert_history.c.alert_id == alert_id)
                .order_by(alert_history.c.change_seq)
            ).all()
            active_silences = self._active_silences(connection, now)
        alert = with_silences(view_from_document(document), active_silences, now)
        history = tuple(_with_silences(_change_from_row(row), active_silences, now) for row in rows)
        return AlertDetail(alert=alert, history=history)

    def list_alerts(
        self,
        alert_filter: AlertFilter | None = None,
        *,
        limit: int = DEFAULT_PAGE_SIZE,
        page_token: str = "",
    ) -> AlertPage:
        """Alerts matching ``alert_filter``, most recently changed first, ``limit`` (1..500) per page.

        Pages are keyed on the last change, not offsets, so paging stays cheap and never repeats
        an alert; an alert that changes while a client pages moves to the front (the change
        feed reports it).
        """
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE_SIZE} (got {limit})")
        query = _filtered(select(alerts.c.document, alerts.c.last_change_seq), alert_filter or AlertFilter())
        if page_token:
            query = query.where(alerts.c.last_change_seq < decode_page_token(page_token))
        query = query.order_by(alerts.c.last_change_seq.desc()).limit(limit + 1)
        now = self._clock()
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
            active_silences = self._active_silences(connection, now)
        page = rows[:limit]
        views = tuple(with_silences(view_from_document(row.document), active_silences, now) for row in page)
        next_token = encode_page_token(page[-1].last_change_seq) if len(rows) > limit else ""
        return AlertPage(alerts=views, next_page_token=next_token)

    def changes_since(self, cursor: int | str, limit: int = MAX_PAGE_SIZE) -> list[Change]:
        """Changes after ``cursor`` (a ``Change.seq`` or ``Change.cursor``), oldest first.

        Streaming clients resume with the last cursor they saw and filter with
        :meth:`AlertFilter.matches`. ``0`` starts from the beginning; to start "from now" (the
        contracts' empty cursor), take :meth:`latest_seq` first.
        """
        after = _parse_cursor(cursor)
        now = self._clock()
        with self._engine.connect() as connection:
            rows = connection.execute(
                _history_query()
                .where(alert_history.c.change_seq > after)
                .order_by(alert_history.c.change_seq)
                .limit(limit)
            ).all()
            active_silences = self._active_silences(connection, now)
        return [_with_silences(_change_from_row(row), active_silences, now) for row in rows]

    def latest_seq(self) -> int:
        """The newest change's seq (0 when empty): the cursor that means "from now on"."""
        with self._engine.connect() as connection:
            return _latest_seq(connection)

    def groups(self, *, include_cleared: bool = False) -> list[GroupSummary]:
        """Correlated groups, worst first; only groups with an active alert unless ``include_cleared``."""
        query = select(alerts.c.document)
        if not include_cleared:
            query = query.where(alerts.c.active == true())
        with self._engine.connect() as connection:
            documents = connection.execute(query).scalars().all()
        return summarize_groups(view_from_document(document) for document in documents)

    def dashboard_counts(self) -> dict[str, Any]:
        """Active and unacknowledged alerts per domain and severity, and the median time to acknowledge.

        What an operator needs now, next to :meth:`kpis`' totals and means: a median is not dragged
        by one slow acknowledgement. Domains whose alerts all cleared still appear ("all clear").
        """
        with self._engine.connect() as connection:
            counts = connection.execute(
                select(alerts.c.domain, alerts.c.severity, alerts.c.status, func.count())
                .where(alerts.c.active == true())
                .group_by(alerts.c.domain, alerts.c.severity, alerts.c.status)
            ).all()
            # Domains whose alerts all cleared still get a card ("all clear").
            domains = connection.execute(select(alerts.c.domain).distinct()).scalars().all()
            acknowledged = alerts.c.time_to_acknowledge_s.is_not(None)
            total = connection.execute(select(func.count()).where(acknowledged)).scalar_one()
            middle: list[float] = []
            if total:
                # Median without percentile_cont, which SQLite lacks: the one or two middle rows.
                middle = list(connection.execute(
                    select(alerts.c.time_to_acknowledge_s).where(acknowledged)
                    .order_by(alerts.c.time_to_acknowledge_s).offset((total - 1) // 2).limit(2 - total % 2)
                ).scalars())
        by_domain: dict[str, dict[str, Any]] = {
            domain: {"active": 0, "unacknowledged": 0, "by_severity": {}} for domain in domains
        }
        for domain, severity, status, count in counts:
            entry = by_domain.setdefault(domain, {"active": 0, "unacknowledged": 0, "by_severity": {}})
            entry["active"] += count
            if status == AlertStatus.ACTIVE_UNACKNOWLEDGED.name:
                entry["unacknowledged"] += count
            name = Severity(severity).name.lower()
            entry["by_severity"][name] = entry["by_severity"].get(name, 0) + count
        return {
            "by_domain": dict(sorted(by_domain.items())),
            "median_time_to_acknowledge_s": sum(middle) / len(middle) if middle else None,
        }

    def kpis(self) -> dict[str, Any]:
        """Counts per status, domain and severity, and mean time to acknowledge and to clear."""
        with self._engine.connect() as connection:
            counts = connection.execute(
                select(
                    alerts.c.domain, alerts.c.severity, alerts.c.status, alerts.c.active, func.count()
                ).group_by(alerts.c.domain, alerts.c.severity, alerts.c.status, alerts.c.active)
            ).all()
            means = connection.execute(
                select(func.avg(alerts.c.time_to_acknowledge_s), func.avg(alerts.c.time_to_clear_s))
            ).one()
        by_status: dict[str, int] = defaultdict(int)
        by_domain: dict[str, dict[str, int]] = defaultdict(lambda: {"total": 0, "active": 0})
        by_severity: dict[str, dict[str, int]] = defaultdict(lambda: {"total": 0, "active": 0})
        total = active = 0
        for domain, severity, status, is_active, count in counts:
            total += count
            by_status[status] += count
            by_domain[domain]["total"] += count
            by_severity[Severity(severity).name]["total"] += count
            if is_active:
                active += count
                by_domain[domain]["active"] += count
                by_severity[Severity(severity).name]["active"] += count
        return {
            "total": total,
            "active": active,
            "by_status": dict(by_status),
            "by_domain": dict(by_domain),
            "by_severity": dict(by_severity),
            "mean_time_to_acknowledge_s": None if means[0] is None else float(means[0]),
            "mean_time_to_clear_s": None if means[1] is None else float(means[1]),
        }

    # -- silences -----------------------------------------------------------------------------

    def create_silence(
        self,
        matchers: Sequence[Matcher | str],
        *,
        ends_at: datetime,
        created_by: str,
        comment: str,
        starts_at: datetime | None = None,
    ) -> Silence:
        """Record a silence (matchers as :class:`Matcher` or text like ``'district=~"ain-.*"'``)."""
        now = self._clock()
        silence = Silence(
            silence_id=uuid.uuid4().hex,
            matchers=tuple(
                matcher if isinstance(matcher, Matcher) else Matcher.parse(matcher) for matcher in matchers
            ),
            starts_at=starts_at or now,
            ends_at=ends_at,
            created_by=created_by,
            comment=comment,
            created_time=now,
        )
        with self._engine.begin() as connection:
            connection.execute(insert(silences).values(_silence_row(silence)))
        return silence

    def get_silence(self, silence_id: str) -> Silence | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                select(silences).where(silences.c.silence_id == silence_id)
            ).one_or_none()
        return None if row is None else _silence_from_row(row)

    def list_silences(self, *, include_expired: bool = False) -> list[Silence]:
        """Pending and active silences (and expired ones if asked), newest start first."""
        query = select(silences).order_by(silences.c.starts_at.desc(), silences.c.silence_id)
        if not include_expired:
            query = query.where(silences.c.ends_at > self._clock())
        with self._engine.connect() as connection:
            return [_silence_from_row(row) for row in connection.execute(query)]

    def expire_silence(self, silence_id: str) -> Silence | None:
        """End a silence now, keeping it for the record (Alertmanager's "expire"); ``None`` if unknown."""
        with self._engine.begin() as connection:
            row = connection.execute(
                select(silences).where(silences.c.silence_id == silence_id)
            ).one_or_none()
            if row is None:
                return None
            silence = _silence_from_row(row).expired(self._clock())
            connection.execute(
                update(silences)
                .where(silences.c.silence_id == silence_id)
                .values(starts_at=silence.starts_at, ends_at=silence.ends_at)
            )
        return silence

    def delete_silence(self, silence_id: str) -> bool:
        """Forget a silence entirely; whether it existed."""
        with self._engine.begin() as connection:
            deleted = connection.execute(delete(silences).where(silences.c.silence_id == silence_id))
        return deleted.rowcount > 0

    def _active_silences(self, connection: Connection, now: datetime) -> list[Silence]:
        rows = connection.execute(
            select(silences).where(silences.c.starts_at <= now, silences.c.ends_at > now)
        ).all()
        return [_silence_from_row(row) for row in rows]


@dataclass
class _PendingAction:
    action: AlertAction
    row: dict[str, Any] | None
    """The row this batch will insert, or ``None`` when the action is already stored."""


@dataclass
class _BatchWriter:
    """Applies one batch in memory against the rows it touches, then writes them in bulk."""

    connection: Connection
    recorded_time: datetime
    views: dict[str, AlertView] = field(default_factory=dict)
    stored_alert_ids: set[str] = field(default_factory=set)
    seen_action_ids: set[str] = field(default_factory=set)
    pending: dict[str, list[_PendingAction]] = field(default_factory=lambda: defaultdict(list))
    changes: list[Change] = field(default_factory=list)
    history_rows: list[dict[str, Any]] = field(default_factory=list)
    action_rows: list[dict[str, Any]] = field(default_factory=list)
    released_stored_actions: list[dict[str, Any]] = field(default_factory=list)
    alert_documents: dict[str, tuple[int, Document]] = field(default_factory=dict)
    next_seq: int = 0

    def load(self, batch: Sequence[Record]) -> None:
        alert_ids = {record.alert_id for record in batch}
        action_ids = {record.action_id for record in batch if isinstance(record, AlertAction)}
        for chunk in _chunks(alert_ids):
            for alert_id, document in self.connection.execute(
                select(alerts.c.alert_id, alerts.c.document).where(alerts.c.alert_id.in_(chunk))
            ):
                self.views[alert_id] = view_from_document(document)
        self.stored_alert_ids = set(self.views)
        for chunk in _chunks(action_ids):
            self.seen_action_ids.update(
                self.connection.execute(
                    select(actions.c.action_id).where(actions.c.action_id.in_(chunk))
                ).scalars()
            )
        new_event_alert_ids = {r.alert_id for r in batch if isinstance(r, AlertEvent)} - self.stored_alert_ids
        for chunk in _chunks(new_event_alert_ids):
            waiting = self.connection.execute(
                select(actions.c.document).where(
                    actions.c.alert_id.in_(chunk), actions.c.change_seq.is_(None)
                )
            ).scalars()
            for document in waiting:
                action = action_from_document(document)
                self.pending[action.alert_id].append(_PendingAction(action, row=None))
        self.next_seq = _latest_seq(self.connection) + 1

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
            self.pending[action.alert_id].append(_PendingAction(action, row))
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


def _history_query() -> Select[Any]:
    return select(
        alert_history.c.change_seq,
        alert_history.c.cause,
        alert_history.c.occurred_time,
        alert_history.c.action,
        alert_history.c.snapshot,
    )


def _change_from_row(row: Any) -> Change:
    return Change(
        seq=row.change_seq,
        cause=row.cause,
        alert=view_from_document(row.snapshot),
        occurred_time=row.occurred_time,
        action=None if row.action is None else action_from_document(row.action),
    )


def _with_silences(change: Change, active_silences: Sequence[Silence], now: datetime) -> Change:
    alert = with_silences(change.alert, active_silences, now)
    return (
        change
        if alert is change.alert
        else Change(
            seq=change.seq,
            cause=change.cause,
            alert=alert,
            occurred_time=change.occurred_time,
            action=change.action,
        )
    )


def _filtered(query: Select[Any], alert_filter: AlertFilter) -> Select[Any]:
    if alert_filter.state == "active":
        query = query.where(alerts.c.active == true())
    elif alert_filter.state == "cleared":
        query = query.where(alerts.c.active == false())
    if alert_filter.status is not None:
        query = query.where(alerts.c.status == alert_filter.status.name)
    if alert_filter.domains:
        query = query.where(alerts.c.domain.in_(alert_filter.domains))
    if alert_filter.min_severity is not None:
        query = query.where(alerts.c.severity >= int(alert_filter.min_severity))
    if alert_filter.district_ids:
        query = query.where(alerts.c.district_id.in_(alert_filter.district_ids))
    if alert_filter.since is not None:
        query = query.where(alerts.c.updated_time >= alert_filter.since)
    return query


def _latest_seq(connection: Connection) -> int:
    return connection.execute(select(func.coalesce(func.max(alert_history.c.change_seq), 0))).scalar_one()


def _silence_row(silence: Silence) -> dict[str, Any]:
    return {
        "silence_id": silence.silence_id,
        "matchers": matchers_to_document(silence.matchers),
        "starts_at": silence.starts_at,
        "ends_at": silence.ends_at,
        "created_by": silence.created_by,
        "comment": silence.comment,
        "created_time": silence.created_time,
    }


def _silence_from_row(row: Any) -> Silence:
    return Silence(
        silence_id=row.silence_id,
        matchers=matchers_from_document(row.matchers),
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        created_by=row.created_by,
        comment=row.comment,
        created_time=row.created_time,
    )


def encode_page_token(last_change_seq: int) -> str:
    raw = f"{_PAGE_TOKEN_PREFIX}{last_change_seq}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str) -> int:
    """The position a page token stands for; ``ValueError`` for a token this store did not issue."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        if not raw.startswith(_PAGE_TOKEN_PREFIX):
            raise ValueError
        return int(raw[len(_PAGE_TOKEN_PREFIX) :])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValueError(f"invalid page token {token!r}") from None


def _parse_cursor(cursor: int | str) -> int:
    if isinstance(cursor, int):
        return cursor
    try:
        return int(cursor)
    except ValueError:
        raise ValueError(f"invalid cursor {cursor!r}") from None


def _chunks(values: Iterable[str]) -> Iterator[tuple[str, ...]]:
    return _batched(sorted(values), _LOOKUP_CHUNK)


def _batched(items: Iterable[T], size: int) -> Iterator[tuple[T, ...]]:
    # itertools.batched arrives in Python 3.12.
    iterator = iter(items)
    while chunk := tuple(islice(iterator, size)):
        yield chunk
