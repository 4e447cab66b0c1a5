"""Email attachments stored once: a MIME part path into the contact's raw message, no blob.

An attachment that came inside a stored raw message is no longer copied into ``blobs``: the
row records where it is in the message (``part``, e.g. ``"1"`` or ``"2.0"``) and the bytes
are decoded from the raw message when they are served. Rows written before keep their blobs.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("attachments") as batch:
        batch.add_column(sa.Column("part", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attachments") as batch:
        batch.drop_column("part")
