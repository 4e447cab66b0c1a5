"""Forwards (each ticket's record in the tools behind [[forward]]) and applied hook deliveries.

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# SQLite needs INTEGER for rowid aliasing (autoincrement); elsewhere BIGINT.
BigID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Timestamps are naive UTC (router.schema.UTCDateTime over sa.DateTime).
    op.create_table(
        "forwards",
        sa.Column("id", BigID, autoincrement=True, nullable=False),
        sa.Column("ticket_id", BigID, nullable=False),
        sa.Column("target", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("external_key", sa.String(length=200), nullable=True),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_forwards_ticket_id_tickets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forwards")),
        sa.UniqueConstraint("ticket_id", "target", name=op.f("uq_forwards_ticket_id_target")),
    )
    op.create_index(
        op.f("ix_forwards_target_external_key"), "forwards", ["target", "external_key"]
    )
    op.create_table(
        "hook_deliveries",
        sa.Column("target", sa.String(length=100), nullable=False),
        sa.Column("delivery_key", sa.String(length=200), nullable=False),
        sa.Column("ticket_id", BigID, nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_hook_deliveries_ticket_id_tickets")
        ),
        sa.PrimaryKeyConstraint("target", "delivery_key", name=op.f("pk_hook_deliveries")),
    )


def downgrade() -> None:
    op.drop_table("hook_deliveries")
    op.drop_index(op.f("ix_forwards_target_external_key"), table_name="forwards")
    op.drop_table("forwards")
