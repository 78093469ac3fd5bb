"""Silences in the store: created, listed, expired and deleted by operators, evaluated when read.

A silence never rewrites an alert: readers apply the silences in force at the moment they look
(:meth:`SilenceStore._active_silences`, with the store's clock), so creating or expiring one takes
effect at once. :class:`SilenceStore` is a part of :class:`~services.operations.store.AlertStore`.

A stored silence whose matchers can no longer be evaluated (a pattern from before RE2) reads back
as disabled and mutes nothing; :meth:`SilenceStore.disable_unusable_silences`, run at start-up,
records why on the row, which is kept, and logs a warning, so the operator learns of it once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update

from services.operations.domain.silences import Matcher, Silence
from services.operations.store.documents import matchers_from_document, matchers_to_document
from services.operations.store.schema import silences

log = logging.getLogger(__name__)
MAX_REASON_CHARS = 512  # the column's size


class SilenceStore:
    """The silence half of the store; the store provides the engine and the clock."""

    _engine: Engine
    _clock: Callable[[], datetime]

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

    def disable_unusable_silences(self) -> list[Silence]:
        """Mark every silence whose matchers cannot be evaluated as disabled, with the reason.

        The rows stay (who muted what, and why, is part of the record); each one disabled here is
        logged as a warning. Returns those newly disabled; a second run finds none.
        """
        disabled: list[Silence] = []
        with self._engine.begin() as connection:
            rows = connection.execute(select(silences).where(silences.c.disabled_reason.is_(None))).all()
            for row in rows:
                silence = _silence_from_row(row)
                if silence.disabled_reason is None:
                    continue
                reason = silence.disabled_reason[:MAX_REASON_CHARS]
                connection.execute(
                    update(silences).where(silences.c.silence_id == silence.silence_id).values(disabled_reason=reason)
                )
                log.warning("silence disabled: its matchers cannot be evaluated", extra={
                    "silence_id": silence.silence_id, "created_by": silence.created_by, "reason": reason})
                disabled.append(silence)
        return disabled

    def _active_silences(self, connection: Connection, now: datetime) -> list[Silence]:
        rows = connection.execute(
            select(silences).where(
                silences.c.starts_at <= now, silences.c.ends_at > now, silences.c.disabled_reason.is_(None)
            )
        ).all()
        return [silence for silence in map(_silence_from_row, rows) if silence.disabled_reason is None]


def _silence_row(silence: Silence) -> dict[str, Any]:
    return {
        "silence_id": silence.silence_id,
        "matchers": matchers_to_document(silence.matchers),
        "starts_at": silence.starts_at,
        "ends_at": silence.ends_at,
        "created_by": silence.created_by,
        "comment": silence.comment,
        "created_time": silence.created_time,
        "disabled_reason": silence.disabled_reason,
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
        disabled_reason=row.disabled_reason,
    )
