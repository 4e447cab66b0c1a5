"""Quarantine (what could not become a contact, kept raw) and undeliverable addresses.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# SQLite needs INTEGER for rowid aliasing (autoincrement); elsewhere BIGINT.
BigID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Timestamps are naive UTC (router.schema.UTCDateTime over sa.DateTime).
    op.create_table(
        "quarantine",
        sa.Column("id", BigID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("raw_type", sa.String(length=100), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("envelope_sender", sa.String(length=320), nullable=True),
        sa.Column("from_addr", sa.String(length=320), nullable=True),
        sa.Column("subject", sa.String(length=998), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("replayed_at", sa.DateTime(), nullable=True),
        sa.Column("replayed_as", sa.String(length=40), nullable=True),
        sa.Column("last_replay_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantine")),
        sa.UniqueConstraint("source", "sha256", name=op.f("uq_quarantine_source_sha256")),
    )
    op.create_index(op.f("ix_quarantine_kind_id"), "quarantine", ["kind", "id"], unique=False)
    op.create_table(
        "undeliverable",
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("ticket_id", BigID, nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("marked_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_undeliverable_ticket_id_tickets")
        ),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_undeliverable")),
    )


def downgrade() -> None:
    op.drop_table("undeliverable")
    op.drop_index(op.f("ix_quarantine_kind_id"), table_name="quarantine")
    op.drop_table("quarantine")
