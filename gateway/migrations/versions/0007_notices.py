"""Notices a requester is told once (the desk's one address, for mail to a legacy address).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

BigID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notices",
        sa.Column("requester_id", BigID, nullable=False),
        sa.Column("notice", sa.String(length=32), nullable=False),
        sa.Column("ticket_id", BigID, nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["requester_id"], ["requesters.id"], name=op.f("fk_notices_requester_id_requesters")
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_notices_ticket_id_tickets")
        ),
        sa.PrimaryKeyConstraint("requester_id", "notice", name=op.f("pk_notices")),
    )


def downgrade() -> None:
    op.drop_table("notices")
