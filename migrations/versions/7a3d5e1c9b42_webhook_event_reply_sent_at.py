"""A webhook event remembers that its reply was handed to LINE (a retry after a crash answers nobody twice).

Revision ID: 7a3d5e1c9b42
Revises: 5e7c1a9d3b20
Create Date: 2026-12-02 03:55:00.000000

"""
from alembic import op
import sqlalchemy as sa


revision = '7a3d5e1c9b42'
down_revision = '5e7c1a9d3b20'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('webhook_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reply_sent_at', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('webhook_event', schema=None) as batch_op:
        batch_op.drop_column('reply_sent_at')
