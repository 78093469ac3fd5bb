"""Create the operations store: alerts, alert_history, actions, silences.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Types are spelled out here rather than imported from ``schema.py``: a migration is a frozen
record of what the database looked like then, and must not change when the models do.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Timestamp = sa.DateTime(timezone=True)
SequenceNumber = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.String(128), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("domain", sa.String(64), nullable=False),
        sa.Column("category", sa.String(128), nullable=False),
        sa.Column("rule_id", sa.String(256), nullable=False),
        sa.Column("source_id", sa.String(256), nullable=False),
        sa.Column("severity", sa.SmallInteger, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("city_id", sa.String(64), nullable=False),
        sa.Column("district_id", sa.String(128), nullable=False),
        sa.Column("group_key", sa.String(512), nullable=False),
        sa.Column("acknowledged_by", sa.String(256), nullable=False),
        sa.Column("assignee", sa.String(256), nullable=False),
        sa.Column("raise_time", Timestamp, nullable=False),
        sa.Column("acknowledge_time", Timestamp),
        sa.Column("clear_time", Timestamp),
        sa.Column("updated_time", Timestamp, nullable=False),
        sa.Column("time_to_acknowledge_s", sa.Float),
        sa.Column("time_to_clear_s", sa.Float),
        sa.Column("last_change_seq", SequenceNumber, nullable=False),
        sa.Column("document", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("alert_id", name="pk_alerts"),
        sa.UniqueConstraint("last_change_seq", name="uq_alerts_last_change_seq"),
    )
    for column in ("active", "status", "domain", "district_id", "severity"):
        op.create_index(f"ix_alerts_{column}_last_change_seq", "alerts", [column, "last_change_seq"])
    op.create_index("ix_alerts_updated_time", "alerts", ["updated_time"])
    op.create_index("ix_alerts_group_key", "alerts", ["group_key"])

    op.create_table(
        "alert_history",
        sa.Column("change_seq", SequenceNumber, nullable=False, autoincrement=False),
        sa.Column("alert_id", sa.String(128), nullable=False),
        sa.Column("cause", sa.String(32), nullable=False),
        sa.Column("revision", sa.Integer),
        sa.Column("action_id", sa.String(128)),
        sa.Column("occurred_time", Timestamp, nullable=False),
        sa.Column("recorded_time", Timestamp, nullable=False),
        sa.Column("action", sa.JSON),
        sa.Column("snapshot", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("change_seq", name="pk_alert_history"),
    )
    op.create_index("ix_alert_history_alert_id_change_seq", "alert_history", ["alert_id", "change_seq"])

    op.create_table(
        "actions",
        sa.Column("action_id", sa.String(128), nullable=False),
        sa.Column("alert_id", sa.String(128), nullable=False),
        sa.Column("action_type", sa.String(32), nullable=False),
        sa.Column("action_time", Timestamp, nullable=False),
        sa.Column("change_seq", SequenceNumber),
        sa.Column("document", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("action_id", name="pk_actions"),
    )
    op.create_index("ix_actions_alert_id", "actions", ["alert_id"])

    op.create_table(
        "silences",
        sa.Column("silence_id", sa.String(64), nullable=False),
        sa.Column("matchers", sa.JSON, nullable=False),
        sa.Column("starts_at", Timestamp, nullable=False),
        sa.Column("ends_at", Timestamp, nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("comment", sa.String(2048), nullable=False),
        sa.Column("created_time", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("silence_id", name="pk_silences"),
    )
    op.create_index("ix_silences_ends_at", "silences", ["ends_at"])


def downgrade() -> None:
    op.drop_table("silences")
    op.drop_table("actions")
    op.drop_table("alert_history")
    op.drop_table("alerts")
