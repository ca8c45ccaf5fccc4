"""A weekly opening block's weekday is 0 (Monday) to 6 (Sunday): a CHECK constraint.

The calendar indexes a week by it; another value made every page that reads the calendar fail.

Revision ID: c8d1f5a3e9b6
Revises: b6c2e8f4a1d7
Create Date: 2026-12-03 07:40:00

"""
import logging

from alembic import op

log = logging.getLogger("alembic.runtime.migration")


revision = 'c8d1f5a3e9b6'
down_revision = 'b6c2e8f4a1d7'
branch_labels = None
depends_on = None


def upgrade():
    removed = op.get_bind().exec_driver_sql("DELETE FROM weekly_block WHERE weekday NOT BETWEEN 0 AND 6").rowcount
    if removed:
        log.warning("removed %s weekly opening block(s) with a weekday outside 0-6 (no page could show them)", removed)
    with op.batch_alter_table('weekly_block', schema=None) as batch_op:
        batch_op.create_check_constraint(op.f('ck_weekly_block_weekday_of_a_week'), 'weekday BETWEEN 0 AND 6')


def downgrade():
    with op.batch_alter_table('weekly_block', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_weekly_block_weekday_of_a_week'), type_='check')
