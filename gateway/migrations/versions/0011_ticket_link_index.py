"""The cross-channel link lookup as a short index range: tickets (requester_id, status,
last_channel, updated_at) replaces tickets (requester_id, status).

``linking.find_link`` runs for every contact from a known requester and looks for their open
tickets last touched on another channel, newest first. With only (requester_id, status) it
walked all of the requester's open tickets -- thousands for a monitoring system writing to the
desk -- on every contact. The wider index answers it with one short range per (status,
channel) pair, and still serves every lookup by (requester_id, status).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ["requester_id", "status", "last_channel", "updated_at"]


def upgrade() -> None:
    op.create_index(
        op.f("ix_tickets_requester_id_status_last_channel_updated_at"), "tickets", _COLUMNS
    )
    op.drop_index(op.f("ix_tickets_requester_id_status"), table_name="tickets")


def downgrade() -> None:
    op.create_index(op.f("ix_tickets_requester_id_status"), "tickets", ["requester_id", "status"])
    op.drop_index(
        op.f("ix_tickets_requester_id_status_last_channel_updated_at"), table_name="tickets"
    )
