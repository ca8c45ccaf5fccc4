"""Emergency symptoms: a keyword list per clinic (NULL = the shipped default) and the urgent flag
of a conversation the FAQ bot answered with 119 guidance.

Revision ID: b7e1c4a9d2f0
Revises: 58a3ee53ada2
Create Date: 2026-12-01 12:55:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'b7e1c4a9d2f0'
down_revision = '58a3ee53ada2'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('auto_reply_settings') as batch_op:
        batch_op.add_column(sa.Column('emergency_keywords', sa.JSON(), nullable=True))
    with op.batch_alter_table('conversation_state') as batch_op:
        batch_op.add_column(sa.Column('urgent_at', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('conversation_state') as batch_op:
        batch_op.drop_column('urgent_at')
    with op.batch_alter_table('auto_reply_settings') as batch_op:
        batch_op.drop_column('emergency_keywords')
