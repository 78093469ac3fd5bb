"""The operations center's tables, as SQLAlchemy Core metadata.

The migrations under ``migrations/versions`` create exactly this schema; a test compares the two.
Each alert's full view lives in the ``document`` JSON column, the source of truth when reading;
the scalar columns next to it are copies kept for filtering, ordering and KPIs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    TypeDecorator,
)

from madina.alerts.timeutil import require_utc

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
VERSION_TABLE = "operations_alembic_version"
"""Alembic's bookkeeping table, named per service so services may share a database."""

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that is tz-aware UTC in Python on every dialect.

    SQLite has no time zone type: values are stored as naive UTC text, whose lexical order is
    time order, and come back with UTC attached. Naive input is refused, never guessed.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = require_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite makes an INTEGER PRIMARY KEY the rowid, the fastest key it has; BIGINT would not be.
SequenceNumber = BigInteger().with_variant(Integer(), "sqlite")

alerts = Table(
    "alerts",
    metadata,
    Column("alert_id", String(128), primary_key=True),
    Column("revision", Integer, nullable=False),
    Column("domain", String(64), nullable=False),
    Column("category", String(128), nullable=False),
    Column("rule_id", String(256), nullable=False),
    Column("source_id", String(256), nullable=False),
    Column("severity", SmallInteger, nullable=False),
    Column("status", String(32), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("city_id", String(64), nullable=False),
    Column("district_id", String(128), nullable=False),
    Column("group_key", String(512), nullable=False),
    Column("acknowledged_by", String(256), nullable=False),
    Column("assignee", String(256), nullable=False),
    Column("raise_time", UtcDateTime, nullable=False),
    Column("acknowledge_time", UtcDateTime),
    Column("clear_time", UtcDateTime),
    Column("updated_time", UtcDateTime, nullable=False),
    Column("time_to_acknowledge_s", Float),
    Column("time_to_clear_s", Float),
    Column("last_change_seq", SequenceNumber, nullable=False, unique=True),
    Column("document", JSON, nullable=False),
)
# Lists are newest-change first and paged by last_change_seq, so each filter column leads an
# index that ends in it: the database walks the index in order and stops at the page size.
Index(None, alerts.c.active, alerts.c.last_change_seq)
Index(None, alerts.c.status, alerts.c.last_change_seq)
Index(None, alerts.c.domain, alerts.c.last_change_seq)
Index(None, alerts.c.district_id, alerts.c.last_change_seq)
Index(None, alerts.c.severity, alerts.c.last_change_seq)
Index(None, alerts.c.updated_time)
Index(None, alerts.c.group_key)

alert_history = Table(
    "alert_history",
    metadata,
    # Assigned by the store under its writer lock, never by the database, so commit order and
    # sequence order agree and a streaming client resuming after seq N misses nothing.
    Column("change_seq", SequenceNumber, primary_key=True, autoincrement=False),
    Column("alert_id", String(128), nullable=False),
    Column("cause", String(32), nullable=False),
    Column("revision", Integer),
    Column("action_id", String(128)),
    Column("occurred_time", UtcDateTime, nullable=False),
    Column("recorded_time", UtcDateTime, nullable=False),
    Column("action", JSON),
    Column("snapshot", JSON, nullable=False),
)
Index(None, alert_history.c.alert_id, alert_history.c.change_seq)

actions = Table(
    "actions",
    metadata,
    Column("action_id", String(128), primary_key=True),
    Column("alert_id", String(128), nullable=False),
    Column("action_type", String(32), nullable=False),
    Column("action_time", UtcDateTime, nullable=False),
    # NULL while the action waits for its alert's first event (the two topics are not ordered
    # against each other); the history row that applied it otherwise.
    Column("change_seq", SequenceNumber),
    Column("document", JSON, nullable=False),
)
Index(None, actions.c.alert_id)

silences = Table(
    "silences",
    metadata,
    Column("silence_id", String(64), primary_key=True),
    Column("matchers", JSON, nullable=False),
    Column("starts_at", UtcDateTime, nullable=False),
    Column("ends_at", UtcDateTime, nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("comment", String(2048), nullable=False),
    Column("created_time", UtcDateTime, nullable=False),
    # Set when a stored matcher can no longer be used (a pattern RE2 refuses): the silence is
    # kept for the record but mutes nothing.
    Column("disabled_reason", String(512)),
)
Index(None, silences.c.ends_at)
