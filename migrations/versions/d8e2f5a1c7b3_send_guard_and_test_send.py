"""Mis-send guard: the clinic's guard settings, approvals of held deliveries, and staff members' own
LINE ids for テスト送信.

Revision ID: d8e2f5a1c7b3
Revises: c4d1a7e3b902
Create Date: 2026-12-01 15:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'd8e2f5a1c7b3'
down_revision = 'c4d1a7e3b902'
branch_labels = None
depends_on = None


def _timestamps():
    return [
        sa.Column('created_at', sa.DateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
        sa.Column('updated_at', sa.DateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    ]


def upgrade():
    op.create_table(
        'send_guard_settings',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('approval_threshold', sa.Integer(), nullable=False),
        sa.Column('fresh_segment_minutes', sa.Integer(), nullable=False),
        *_timestamps(),
        sa.Column('clinic_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('clinic_id'),
    )
    with op.batch_alter_table('send_guard_settings') as batch_op:
        batch_op.create_index(batch_op.f('ix_send_guard_settings_clinic_id'), ['clinic_id'], unique=False)
    op.create_table(
        'send_approval',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('delivery_id', sa.Integer(), nullable=False),
        sa.Column('reasons', sa.JSON(), nullable=False),
        sa.Column('audience_count', sa.Integer(), nullable=False),
        sa.Column('findings', sa.JSON(), nullable=False),
        sa.Column('needs_admin', sa.Boolean(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('requested_by_id', sa.Integer(), nullable=True),
        sa.Column('requested_by_email', sa.String(length=255), nullable=False),
        sa.Column('decided_by_id', sa.Integer(), nullable=True),
        sa.Column('decided_by_email', sa.String(length=255), nullable=False),
        sa.Column('decided_at', sa.DateTime(), nullable=True),
        sa.Column('note', sa.Text(), nullable=False),
        *_timestamps(),
        sa.Column('clinic_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['delivery_id'], ['delivery.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('delivery_id'),
    )
    with op.batch_alter_table('send_approval') as batch_op:
        batch_op.create_index(batch_op.f('ix_send_approval_clinic_id'), ['clinic_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_send_approval_state'), ['state'], unique=False)
    op.create_table(
        'staff_line_link',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('staff_line_user_id', sa.String(length=64), nullable=False),
        sa.Column('display_name', sa.String(length=200), nullable=False),
        *_timestamps(),
        sa.Column('clinic_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('clinic_id', 'user_id'),
    )
    with op.batch_alter_table('staff_line_link') as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_line_link_clinic_id'), ['clinic_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_staff_line_link_user_id'), ['user_id'], unique=False)


def downgrade():
    for table, indexes in (
        ('staff_line_link', ('ix_staff_line_link_user_id', 'ix_staff_line_link_clinic_id')),
        ('send_approval', ('ix_send_approval_state', 'ix_send_approval_clinic_id')),
        ('send_guard_settings', ('ix_send_guard_settings_clinic_id',)),
    ):
        with op.batch_alter_table(table) as batch_op:
            for index in indexes:
                batch_op.drop_index(index)
        op.drop_table(table)
