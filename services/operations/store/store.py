"""``AlertStore``: the operations center's current alerts, their full history, and silences.

Every write goes through :meth:`AlertStore.apply_batch`: one transaction per batch, holding the
single-writer lock, so ingest is fast and ``change_seq`` is gap-free in commit order. The store
takes domain records (:mod:`services.operations.domain.model`); turning consumed messages into
them, and refusing the ones that break the contract, is :mod:`.mapping`'s job before that. The
lifecycle itself is :mod:`services.operations.domain.lifecycle`; :mod:`.writer` loads the views a
batch touches, runs the rules, and writes the results back. Silences are :mod:`.silences`, the
dashboard's counts :mod:`.statistics`.

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
    store.apply_batch([record_from_message(message) for message in consumed_messages])
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import URL, Engine, Select, false, select, true

from services.operations.domain.filters import AlertFilter
from services.operations.domain.grouping import GroupSummary, summarize_groups
from services.operations.domain.model import (
    EVENT_CAUSE,
    AlertAction,
    AlertDetail,
    AlertEvent,
    AlertPage,
    Change,
    Record,
)
from services.operations.domain.silences import Silence, with_silences
from services.operations.store.documents import action_from_document, view_from_document
from services.operations.store.engine import DEFAULT_DATABASE_URL, make_engine, write_transaction
from services.operations.store.schema import alert_history, alerts
from services.operations.store.silences import SilenceStore
from services.operations.store.statistics import AlertStatistics
from services.operations.store.writer import BatchWriter, batched, latest_seq

MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50
REBUILD_BATCH_SIZE = 1000
_PAGE_TOKEN_PREFIX = "v1:"


def utc_now() -> datetime:
    return datetime.now(UTC)


class AlertStore(SilenceStore, AlertStatistics):
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

    def apply_event(self, event: AlertEvent) -> Change | None:
        """Apply one AlertEvent; ``None`` when it is a duplicate or older than the stored revision."""
        return next((change for change in self.apply_batch([event]) if change.cause == EVENT_CAUSE), None)

    def apply_action(self, action: AlertAction) -> Change | None:
        """Apply one AlertAction; ``None`` for a seen action id, or while its alert is still unknown."""
        changes = self.apply_batch([action])
        return changes[0] if changes else None

    def apply_batch(self, records: Iterable[Record]) -> list[Change]:
        """Apply events and actions in the given order in one transaction; the changes they made.

        A batch that fails part-way writes nothing. The result also holds the changes of waiting
        actions that an alert's first event released.
        """
        batch = list(records)
        for record in batch:
            if not isinstance(record, AlertEvent | AlertAction):
                raise TypeError(f"the store applies alert events and actions, not {type(record).__name__}")
        if not batch:
            return []
        now = self._clock()
        with write_transaction(self._engine) as connection:
            writer = BatchWriter(connection, recorded_time=now)
            writer.load(batch)
            for record in batch:
                if isinstance(record, AlertEvent):
                    writer.apply_event(record)
                else:
                    writer.apply_action(record)
            writer.flush()
            active_silences = self._active_silences(connection, now)
        return [_with_silences(change, active_silences, now) for change in writer.changes]

    def rebuild_from(self, records: Iterable[Record], batch_size: int = REBUILD_BATCH_SIZE) -> int:
        """Replay a recorded stream (e.g. both topics from the beginning) in batches; changes made."""
        applied = 0
        for chunk in batched(records, batch_size):
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
            return latest_seq(connection)

    def groups(self, *, include_cleared: bool = False) -> list[GroupSummary]:
        """Correlated groups, worst first; only groups with an active alert unless ``include_cleared``."""
        query = select(alerts.c.document)
        if not include_cleared:
            query = query.where(alerts.c.active == true())
        with self._engine.connect() as connection:
            documents = connection.execute(query).scalars().all()
        return summarize_groups(view_from_document(document) for document in documents)

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
