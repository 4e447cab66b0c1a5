"""Initial schema: the tables of router/schema.py.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# SQLite needs INTEGER for rowid aliasing (autoincrement); elsewhere BIGINT.
BigID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Timestamps are naive UTC (router.schema.UTCDateTime over sa.DateTime).
    op.create_table(
        "blobs",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_blobs")),
    )
    op.create_table(
        "requesters",
        sa.Column("id", BigID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_requesters")),
    )
    op.create_table(
        "identities",
        sa.Column("id", BigID, autoincrement=True, nullable=False),
        sa.Column("requester_id", BigID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=320), nullable=False),
        sa.ForeignKeyConstraint(
            ["requester_id"], ["requesters.id"], name=op.f("fk_identities_requester_id_requesters")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identities")),
        sa.UniqueConstraint("kind", "value", name=op.f("uq_identities_kind_value")),
    )
    op.create_index(
        op.f("ix_identities_requester_id"), "identities", ["requester_id"], unique=False
    )
    op.create_table(
        "tickets",
        sa.Column("id", BigID, autoincrement=True, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=True),
        sa.Column("priority", sa.String(length=2), nullable=False),
        sa.Column("owner", sa.String(length=100), nullable=False),
        sa.Column("group_name", sa.String(length=100), nullable=False),
        sa.Column("tier", sa.Float(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("last_channel", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=998), server_default="", nullable=False),
        sa.Column("requester_id", BigID, nullable=False),
        sa.Column("parent_id", BigID, nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["tickets.id"], name=op.f("fk_tickets_parent_id_tickets")
        ),
        sa.ForeignKeyConstraint(
            ["requester_id"], ["requesters.id"], name=op.f("fk_tickets_requester_id_requesters")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tickets")),
    )
    op.create_index(op.f("ix_tickets_channel_id"), "tickets", ["channel", "id"], unique=False)
    op.create_index(op.f("ix_tickets_group_name_id"), "tickets", ["group_name", "id"], unique=False)
    op.create_index(
        op.f("ix_tickets_requester_id_status"), "tickets", ["requester_id", "status"], unique=False
    )
    op.create_index(op.f("ix_tickets_status_id"), "tickets", ["status", "id"], unique=False)
    op.create_table(
        "contacts",
        sa.Column("id", BigID, autoincrement=True, nullable=False),
        sa.Column("ticket_id", BigID, nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("direction", sa.String(length=3), nullable=False),
        sa.Column("external_id", sa.String(length=998), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("from_addr", sa.String(length=320), nullable=True),
        sa.Column("from_name", sa.String(length=200), nullable=True),
        sa.Column("recipient", sa.String(length=320), nullable=True),
        sa.Column("thread_key", sa.String(length=200), nullable=True),
        sa.Column("subject", sa.String(length=998), server_default="", nullable=False),
        sa.Column("text", sa.Text(), server_default="", nullable=False),
        sa.Column("auto", sa.String(length=16), server_default="human", nullable=False),
        sa.Column("raw_type", sa.String(length=100), nullable=True),
        sa.Column("raw", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_contacts_ticket_id_tickets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
        sa.UniqueConstraint("channel", "external_id", name=op.f("uq_contacts_channel_external_id")),
    )
    op.create_index(op.f("ix_contacts_ticket_id"), "contacts", ["ticket_id"], unique=False)
    op.create_table(
        "events",
        sa.Column("id", BigID, autoincrement=True, nullable=False),
        sa.Column("ticket_id", BigID, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_events_ticket_id_tickets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_index(op.f("ix_events_ticket_id"), "events", ["ticket_id"], unique=False)
    op.create_table(
        "message_ids",
        sa.Column("message_id", sa.String(length=998), nullable=False),
        sa.Column("ticket_id", BigID, nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_message_ids_ticket_id_tickets")
        ),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_message_ids")),
    )
    op.create_table(
        "outbox",
        sa.Column("id", BigID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("ticket_id", BigID, nullable=True),
        sa.Column("recipient", sa.String(length=320), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("done_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_outbox_ticket_id_tickets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_outbox_idempotency_key")),
    )
    op.create_index(op.f("ix_outbox_created_at"), "outbox", ["created_at"], unique=False)
    op.create_index(
        op.f("ix_outbox_kind_created_at"), "outbox", ["kind", "created_at"], unique=False
    )
    op.create_index(
        op.f("ix_outbox_kind_recipient_created_at"),
        "outbox",
        ["kind", "recipient", "created_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_outbox_status_next_attempt_at"),
        "outbox",
        ["status", "next_attempt_at"],
        unique=False,
    )
    op.create_table(
        "participants",
        sa.Column("ticket_id", BigID, nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_participants_ticket_id_tickets")
        ),
        sa.PrimaryKeyConstraint("ticket_id", "address", name=op.f("pk_participants")),
    )
    op.create_table(
        "attachments",
        sa.Column("id", BigID, autoincrement=True, nullable=False),
        sa.Column("contact_id", BigID, nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_attachments_contact_id_contacts")
        ),
        sa.ForeignKeyConstraint(
            ["sha256"], ["blobs.sha256"], name=op.f("fk_attachments_sha256_blobs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachments")),
    )
    op.create_index(op.f("ix_attachments_contact_id"), "attachments", ["contact_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_attachments_contact_id"), table_name="attachments")
    op.drop_table("attachments")
    op.drop_table("participants")
    op.drop_index(op.f("ix_outbox_status_next_attempt_at"), table_name="outbox")
    op.drop_index(op.f("ix_outbox_kind_recipient_created_at"), table_name="outbox")
    op.drop_index(op.f("ix_outbox_kind_created_at"), table_name="outbox")
    op.drop_index(op.f("ix_outbox_created_at"), table_name="outbox")
    op.drop_table("outbox")
    op.drop_table("message_ids")
    op.drop_index(op.f("ix_events_ticket_id"), table_name="events")
    op.drop_table("events")
    op.drop_index(op.f("ix_contacts_ticket_id"), table_name="contacts")
    op.drop_table("contacts")
    op.drop_index(op.f("ix_tickets_status_id"), table_name="tickets")
    op.drop_index(op.f("ix_tickets_requester_id_status"), table_name="tickets")
    op.drop_index(op.f("ix_tickets_group_name_id"), table_name="tickets")
    op.drop_index(op.f("ix_tickets_channel_id"), table_name="tickets")
    op.drop_table("tickets")
    op.drop_index(op.f("ix_identities_requester_id"), table_name="identities")
    op.drop_table("identities")
    op.drop_table("requesters")
    op.drop_table("blobs")
