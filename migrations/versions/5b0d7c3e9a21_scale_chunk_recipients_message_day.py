"""scale: multicast chunks hold their recipients (recipient rows only for pushes); daily message roll-up

- delivery_chunk.friend_ids (the multicast's recipients, in order) and last_friend_id (where a
  resumed plan starts), filled from the existing recipient rows; the recipient rows of
  multicast chunks are then removed (the chunk's own state says how they went).
- the single-column delivery_id indexes of delivery_chunk and delivery_recipient go: the
  unique (delivery_id, seq) and (delivery_id, friend_id) indexes serve the same lookups.
- inbox list: partial indexes for its unread and emergency ranks (conversation, conversation_state).
- message_day: messages per clinic, Japan day and direction (the dashboard's chart), filled
  from the existing messages in one statement, then kept as messages are stored.

Revision ID: 5b0d7c3e9a21
Revises: d81f3c5a2e90
Create Date: 2026-12-01 14:40:00

"""

from alembic import op
import sqlalchemy as sa


revision = "5b0d7c3e9a21"
down_revision = "d81f3c5a2e90"
branch_labels = None
depends_on = None


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _fill_chunks() -> None:
    aggregate = "json_agg(r.friend_id ORDER BY r.friend_id)" if _postgres() else "json_group_array(r.friend_id)"
    source = "delivery_recipient r" if _postgres() else "(SELECT * FROM delivery_recipient ORDER BY friend_id) r"
    op.execute(
        f"""UPDATE delivery_chunk SET
            friend_ids = (SELECT {aggregate} FROM {source} WHERE r.chunk_id = delivery_chunk.id),
            last_friend_id = (SELECT max(r.friend_id) FROM delivery_recipient r WHERE r.chunk_id = delivery_chunk.id)"""
    )
    op.execute("UPDATE delivery_chunk SET friend_ids = '[]' WHERE friend_ids IS NULL OR mode <> 'multicast'")
    op.execute(
        "DELETE FROM delivery_recipient WHERE chunk_id IN (SELECT id FROM delivery_chunk WHERE mode = 'multicast')"
    )


def _expand_chunks() -> None:
    """Downgrade: a recipient row per friend of each multicast chunk again (status from the chunk)."""
    if _postgres():
        elements = "json_array_elements_text(c.friend_ids) AS e(value)"
        friend = "CAST(e.value AS INTEGER)"
    else:
        elements = "json_each(c.friend_ids) AS e"
        friend = "e.value"
    op.execute(
        f"""INSERT INTO delivery_recipient (clinic_id, delivery_id, chunk_id, friend_id, line_user_id, status, error)
            SELECT c.clinic_id, c.delivery_id, c.id, f.id, f.line_user_id,
                   CASE WHEN c.status IN ('sent', 'failed') THEN c.status ELSE 'pending' END, ''
            FROM delivery_chunk c, {elements}
            JOIN friend f ON f.id = {friend}
            WHERE c.mode = 'multicast'"""
    )


def _create_message_day() -> None:
    op.create_table(
        "message_day",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("total", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["clinic_id"], ["clinic.id"], name=op.f("fk_message_day_clinic_id_clinic"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_day")),
        sa.UniqueConstraint("clinic_id", "day", "direction", name=op.f("uq_message_day_clinic_id_day_direction")),
    )
    with op.batch_alter_table("message_day", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_message_day_clinic_id"), ["clinic_id"], unique=False)
    day = "CAST(created_at + INTERVAL '9 hours' AS DATE)" if _postgres() else "date(created_at, '+540 minutes')"
    op.execute(
        f"""INSERT INTO message_day (clinic_id, day, direction, total)
            SELECT clinic_id, {day}, direction, count(*) FROM message GROUP BY clinic_id, {day}, direction"""
    )


def upgrade():
    _create_message_day()
    with op.batch_alter_table("conversation", schema=None) as batch_op:
        batch_op.create_index(
            "ix_conversation_unread_recent",
            ["clinic_id", "last_message_id"],
            unique=False,
            postgresql_where=sa.text("unread_count > 0"),
            sqlite_where=sa.text("unread_count > 0"),
        )
    with op.batch_alter_table("conversation_state", schema=None) as batch_op:
        batch_op.create_index(
            "ix_conversation_state_urgent",
            ["clinic_id"],
            unique=False,
            postgresql_where=sa.text("urgent_at IS NOT NULL"),
            sqlite_where=sa.text("urgent_at IS NOT NULL"),
        )
    with op.batch_alter_table("delivery_chunk", schema=None) as batch_op:
        batch_op.add_column(sa.Column("friend_ids", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("last_friend_id", sa.Integer(), nullable=True))
        batch_op.drop_index(batch_op.f("ix_delivery_chunk_delivery_id"))
    _fill_chunks()
    with op.batch_alter_table("delivery_chunk", schema=None) as batch_op:
        batch_op.alter_column("friend_ids", existing_type=sa.JSON(), nullable=False)
    with op.batch_alter_table("delivery_recipient", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_recipient_delivery_id"))


def downgrade():
    with op.batch_alter_table("conversation_state", schema=None) as batch_op:
        batch_op.drop_index("ix_conversation_state_urgent")
    with op.batch_alter_table("conversation", schema=None) as batch_op:
        batch_op.drop_index("ix_conversation_unread_recent")
    op.drop_table("message_day")
    with op.batch_alter_table("delivery_recipient", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_delivery_recipient_delivery_id"), ["delivery_id"], unique=False)
    _expand_chunks()
    with op.batch_alter_table("delivery_chunk", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_delivery_chunk_delivery_id"), ["delivery_id"], unique=False)
        batch_op.drop_column("last_friend_id")
        batch_op.drop_column("friend_ids")
