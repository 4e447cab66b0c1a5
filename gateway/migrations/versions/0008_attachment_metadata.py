"""Attachments kept as metadata only: an ``omitted`` reason, and no blob required.

An attachment over ``[email] max_attachment_bytes`` keeps its name, type, size and sha256 on
the contact, with the reason, while its bytes stay only in the contact's raw message: the row
no longer needs a blob.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAMING = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}


def upgrade() -> None:
    with op.batch_alter_table("attachments", naming_convention=_NAMING) as batch:
        batch.drop_constraint("fk_attachments_sha256_blobs", type_="foreignkey")
        batch.add_column(sa.Column("omitted", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attachments", naming_convention=_NAMING) as batch:
        batch.drop_column("omitted")
        batch.create_foreign_key("fk_attachments_sha256_blobs", "blobs", ["sha256"], ["sha256"])
