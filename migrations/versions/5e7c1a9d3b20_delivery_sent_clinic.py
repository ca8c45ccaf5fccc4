"""A delivery keeps the {{clinic.*}} values it was sent with (shown as sent after a rename).

Revision ID: 5e7c1a9d3b20
Revises: 5e9a1c7d3b20
Create Date: 2026-12-01 21:45:00.000000

"""
from alembic import op
import sqlalchemy as sa


revision = '5e7c1a9d3b20'
down_revision = '5e9a1c7d3b20'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sent_clinic', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_column('sent_clinic')
