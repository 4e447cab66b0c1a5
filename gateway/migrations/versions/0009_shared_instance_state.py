"""State every gateway sharing the database must see alike: IVR call progress, the generated
session secret, rate-limit hits, revoked dashboard sessions, IMAP failure counts.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

BigID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "call_progress",
        sa.Column("call_sid", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=8), nullable=True),
        sa.Column("offered_ref", sa.String(length=32), nullable=True),
        sa.Column("after_hours", sa.Boolean(), nullable=False),
        sa.Column("recording", sa.Boolean(), nullable=False),
        sa.Column("finished", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("call_sid", name=op.f("pk_call_progress")),
    )
    op.create_index(
        op.f("ix_call_progress_updated_at"), "call_progress", ["updated_at"], unique=False
    )
    op.create_table(
        "shared_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_shared_secrets")),
    )
    op.create_table(
        "rate_hits",
        sa.Column("id", BigID, autoincrement=True, nullable=False),
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rate_hits")),
    )
    op.create_index(
        op.f("ix_rate_hits_scope_key_hash_at"),
        "rate_hits",
        ["scope", "key_hash", "at"],
        unique=False,
    )
    op.create_index(op.f("ix_rate_hits_at"), "rate_hits", ["at"], unique=False)
    op.create_table(
        "revoked_sessions",
        sa.Column("sid", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sid", name=op.f("pk_revoked_sessions")),
    )
    op.create_index(
        op.f("ix_revoked_sessions_expires_at"), "revoked_sessions", ["expires_at"], unique=False
    )
    op.create_table(
        "imap_failures",
        sa.Column("mailbox", sa.String(length=100), nullable=False),
        sa.Column("folder", sa.String(length=1000), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint(
            "mailbox", "folder", "uidvalidity", "uid", name=op.f("pk_imap_failures")
        ),
    )


def downgrade() -> None:
    op.drop_table("imap_failures")
    op.drop_index(op.f("ix_revoked_sessions_expires_at"), table_name="revoked_sessions")
    op.drop_table("revoked_sessions")
    op.drop_index(op.f("ix_rate_hits_at"), table_name="rate_hits")
    op.drop_index(op.f("ix_rate_hits_scope_key_hash_at"), table_name="rate_hits")
    op.drop_table("rate_hits")
    op.drop_table("shared_secrets")
    op.drop_index(op.f("ix_call_progress_updated_at"), table_name="call_progress")
    op.drop_table("call_progress")
