"""scale: conversation counters, clinic-led indexes, 64-bit keys, retention settings

- conversation: newest message, unread count (kept as messages are stored), backfilled from
  the messages; a reopened conversation (patient wrote after a status change) stored as open;
  indexes for the keyset-paged list, the badge and the change poll.
- friend, friend_tag, message, audit_event: composite indexes led by clinic_id replace the
  single-column ones (segment filters, lists, charts, retention); message.webhook_event_id
  indexed (handlers look it up, purging events nulls it).
- 64-bit keys (Postgres; SQLite's INTEGER is already 64-bit) on the tables that grow with
  traffic: message, webhook_event, audit_event, delivery_recipient, chat_send, and the
  columns that point at them.
- retention_policy: each clinic's retention settings.

Revision ID: 88994d735526
Revises: b7e1c4a9d2f0
Create Date: 2026-12-01 11:30:00

"""

from alembic import op
import sqlalchemy as sa


revision = "88994d735526"
down_revision = "b7e1c4a9d2f0"
branch_labels = None
depends_on = None

NOT_RESOLVED = sa.text("status <> 'resolved'")
UNANSWERED = sa.text("unread_count > 0 AND status <> 'resolved'")

# (table, column) pairs widened to BIGINT on Postgres.
WIDENED = [
    ("message", "id"),
    ("message", "webhook_event_id"),
    ("webhook_event", "id"),
    ("audit_event", "id"),
    ("delivery_recipient", "id"),
    ("chat_send", "id"),
    ("chat_send", "message_id"),
    ("message_media", "message_id"),
    ("conversation", "last_read_message_id"),
]


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _widen(type_) -> None:
    if not _postgres():
        return
    for table, column in WIDENED:
        op.alter_column(
            table, column, type_=type_, existing_nullable=column not in ("id", "last_read_message_id") and table != "message_media"
        )


def _backfill_conversations() -> None:
    """Counters for existing data, set-based (one statement each)."""
    op.execute(
        "INSERT INTO conversation (clinic_id, friend_id, status, status_changed_at, last_read_message_id,"
        " unread_count, created_at, updated_at)"
        " SELECT DISTINCT m.clinic_id, m.friend_id, 'open', CURRENT_TIMESTAMP, 0, 0, CURRENT_TIMESTAMP,"
        " CURRENT_TIMESTAMP FROM message m"
        " WHERE NOT EXISTS (SELECT 1 FROM conversation c WHERE c.friend_id = m.friend_id)"
    )
    op.execute(
        "UPDATE conversation SET"
        " last_message_id = (SELECT max(m.id) FROM message m WHERE m.friend_id = conversation.friend_id),"
        " last_message_at = (SELECT max(m.created_at) FROM message m WHERE m.friend_id = conversation.friend_id),"
        " unread_count = (SELECT count(*) FROM message m WHERE m.friend_id = conversation.friend_id"
        " AND m.direction = 'in' AND m.id > conversation.last_read_message_id)"
    )
    op.execute(
        "UPDATE conversation SET status = 'open' WHERE status IN ('waiting', 'resolved') AND EXISTS"
        " (SELECT 1 FROM friend f WHERE f.id = conversation.friend_id"
        " AND f.last_message_at > conversation.status_changed_at)"
    )


def upgrade():
    _widen(sa.BigInteger())
    with op.batch_alter_table("conversation", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("last_message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True)
        )
        batch_op.add_column(sa.Column("last_message_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("unread_count", sa.Integer(), server_default="0", nullable=False))
        batch_op.drop_index("ix_conversation_status")
    _backfill_conversations()
    with op.batch_alter_table("conversation", schema=None) as batch_op:
        batch_op.create_index("ix_conversation_recent", ["clinic_id", "last_message_id"], unique=False)
        batch_op.create_index(
            "ix_conversation_recent_active",
            ["clinic_id", "last_message_id"],
            unique=False,
            postgresql_where=NOT_RESOLVED,
            sqlite_where=NOT_RESOLVED,
        )
        batch_op.create_index("ix_conversation_status_recent", ["clinic_id", "status", "last_message_id"], unique=False)
        batch_op.create_index(
            "ix_conversation_assignee_recent", ["clinic_id", "assignee_user_id", "last_message_id"], unique=False
        )
        batch_op.create_index(
            "ix_conversation_unanswered",
            ["clinic_id"],
            unique=False,
            postgresql_where=UNANSWERED,
            sqlite_where=UNANSWERED,
        )
        batch_op.create_index("ix_conversation_changed", ["clinic_id", "updated_at"], unique=False)

    with op.batch_alter_table("friend", schema=None) as batch_op:
        batch_op.drop_index("ix_friend_followed_at")
        batch_op.drop_index("ix_friend_inflow_source_id")
        batch_op.drop_index("ix_friend_status")
        batch_op.create_index("ix_friend_recent", ["clinic_id", "followed_at", "id"], unique=False)
        batch_op.create_index("ix_friend_clinic_status", ["clinic_id", "status"], unique=False)
        batch_op.create_index("ix_friend_clinic_last_message", ["clinic_id", "last_message_at"], unique=False)
        batch_op.create_index("ix_friend_clinic_inflow", ["clinic_id", "inflow_source_id"], unique=False)
        batch_op.create_index("ix_friend_clinic_blocked", ["clinic_id", "blocked_at"], unique=False)
    with op.batch_alter_table("friend_tag", schema=None) as batch_op:
        batch_op.create_index("ix_friend_tag_clinic_tag", ["clinic_id", "tag_id", "friend_id"], unique=False)
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index("ix_message_conversation")
        batch_op.create_index("ix_message_conversation", ["clinic_id", "friend_id", "id"], unique=False)
        batch_op.create_index("ix_message_clinic_time", ["clinic_id", "created_at", "direction"], unique=False)
        batch_op.create_index(batch_op.f("ix_message_webhook_event_id"), ["webhook_event_id"], unique=False)
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_event_clinic_id_created_at")
        batch_op.create_index("ix_audit_event_clinic_recent", ["clinic_id", "created_at", "id"], unique=False)
        batch_op.create_index("ix_audit_event_clinic_action", ["clinic_id", "action"], unique=False)

    op.create_table(
        "retention_policy",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_body_days", sa.Integer(), nullable=True),
        sa.Column("webhook_event_days", sa.Integer(), nullable=False),
        sa.Column("delivery_recipient_days", sa.Integer(), nullable=False),
        sa.Column("message_bodies_archived_before", sa.DateTime(), nullable=True),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), server_default=sa.text("(CURRENT_TIMESTAMP)"), nullable=False),
        sa.Column("updated_at", sa.DateTime(), server_default=sa.text("(CURRENT_TIMESTAMP)"), nullable=False),
        sa.ForeignKeyConstraint(
            ["clinic_id"], ["clinic.id"], name=op.f("fk_retention_policy_clinic_id_clinic"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retention_policy")),
        sa.UniqueConstraint("clinic_id", name=op.f("uq_retention_policy_clinic_id")),
    )
    with op.batch_alter_table("retention_policy", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_retention_policy_clinic_id"), ["clinic_id"], unique=False)


def downgrade():
    with op.batch_alter_table("retention_policy", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_retention_policy_clinic_id"))
    op.drop_table("retention_policy")

    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_event_clinic_action")
        batch_op.drop_index("ix_audit_event_clinic_recent")
        batch_op.create_index("ix_audit_event_clinic_id_created_at", ["clinic_id", "created_at"], unique=False)
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_message_webhook_event_id"))
        batch_op.drop_index("ix_message_clinic_time")
        batch_op.drop_index("ix_message_conversation")
        batch_op.create_index("ix_message_conversation", ["clinic_id", "friend_id", "created_at"], unique=False)
    with op.batch_alter_table("friend_tag", schema=None) as batch_op:
        batch_op.drop_index("ix_friend_tag_clinic_tag")
    with op.batch_alter_table("friend", schema=None) as batch_op:
        batch_op.drop_index("ix_friend_clinic_blocked")
        batch_op.drop_index("ix_friend_clinic_inflow")
        batch_op.drop_index("ix_friend_clinic_last_message")
        batch_op.drop_index("ix_friend_clinic_status")
        batch_op.drop_index("ix_friend_recent")
        batch_op.create_index("ix_friend_status", ["status"], unique=False)
        batch_op.create_index("ix_friend_inflow_source_id", ["inflow_source_id"], unique=False)
        batch_op.create_index("ix_friend_followed_at", ["followed_at"], unique=False)

    with op.batch_alter_table("conversation", schema=None) as batch_op:
        for name in (
            "ix_conversation_changed",
            "ix_conversation_unanswered",
            "ix_conversation_assignee_recent",
            "ix_conversation_status_recent",
            "ix_conversation_recent_active",
            "ix_conversation_recent",
        ):
            batch_op.drop_index(name)
        batch_op.create_index("ix_conversation_status", ["status"], unique=False)
        batch_op.drop_column("unread_count")
        batch_op.drop_column("last_message_at")
        batch_op.drop_column("last_message_id")
    _widen(sa.Integer())
