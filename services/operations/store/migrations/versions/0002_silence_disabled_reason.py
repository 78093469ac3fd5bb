"""Silences can be disabled with a recorded reason (a stored pattern RE2 cannot compile).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30

Silences stored before matchers moved to RE2 may hold patterns RE2 refuses (backreferences,
lookaround, over 256 characters). The service keeps such a row, for the record, and marks it
disabled at start-up (``SilenceStore.disable_unusable_silences``) instead of failing to read it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("silences") as batch:
        batch.add_column(sa.Column("disabled_reason", sa.String(512), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("silences") as batch:
        batch.drop_column("disabled_reason")
