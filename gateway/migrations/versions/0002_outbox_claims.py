"""Outbox claims: a claim token that fences done/failed, the operator's requeue time, and an
index for listing rows by status.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (nullable, no default) works on SQLite without a table rebuild.
    op.add_column("outbox", sa.Column("claim_token", sa.String(length=32), nullable=True))
    op.add_column("outbox", sa.Column("requeued_at", sa.DateTime(), nullable=True))
    op.create_index(op.f("ix_outbox_status_id"), "outbox", ["status", "id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_outbox_status_id"), table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("requeued_at")
        batch.drop_column("claim_token")
