"""Group-wide notices of an organization: the notice, each branch's part, approval settings (issue 16).

Revision ID: d81f3c5a2e90
Revises: cb1dc5a42359
Create Date: 2026-12-01 15:05:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'd81f3c5a2e90'
down_revision = 'cb1dc5a42359'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('group_notice_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.Column('approval_required', sa.Boolean(), nullable=False),
    sa.Column('approval_hours', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('updated_at', sa.DateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_group_notice_settings_organization_id_organization'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_group_notice_settings')),
    sa.UniqueConstraint('organization_id', name=op.f('uq_group_notice_settings_organization_id'))
    )
    op.create_table('group_notice',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('messages', sa.JSON(), nullable=False),
    sa.Column('urgent', sa.Boolean(), nullable=False),
    sa.Column('shortfall', sa.String(length=16), nullable=False),
    sa.Column('refused_reason', sa.Text(), nullable=False),
    sa.Column('approval_deadline', sa.DateTime(), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_by_email', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('updated_at', sa.DateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['user.id'], name=op.f('fk_group_notice_created_by_id_user'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_group_notice_organization_id_organization'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_group_notice'))
    )
    with op.batch_alter_table('group_notice', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_group_notice_organization_id'), ['organization_id'], unique=False)

    op.create_table('group_notice_branch',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('notice_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('segment', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=24), nullable=False),
    sa.Column('eligible', sa.Integer(), nullable=False),
    sa.Column('remaining', sa.Integer(), nullable=True),
    sa.Column('delivery_id', sa.Integer(), nullable=True),
    sa.Column('decided_by_email', sa.String(length=255), nullable=False),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('updated_at', sa.DateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('clinic_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], name=op.f('fk_group_notice_branch_clinic_id_clinic'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['notice_id'], ['group_notice.id'], name=op.f('fk_group_notice_branch_notice_id_group_notice'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_group_notice_branch')),
    sa.UniqueConstraint('notice_id', 'clinic_id', name=op.f('uq_group_notice_branch_notice_id_clinic_id'))
    )
    with op.batch_alter_table('group_notice_branch', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_group_notice_branch_clinic_id'), ['clinic_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_group_notice_branch_notice_id'), ['notice_id'], unique=False)


def downgrade():
    with op.batch_alter_table('group_notice_branch', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_group_notice_branch_notice_id'))
        batch_op.drop_index(batch_op.f('ix_group_notice_branch_clinic_id'))
    op.drop_table('group_notice_branch')
    with op.batch_alter_table('group_notice', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_group_notice_organization_id'))
    op.drop_table('group_notice')
    op.drop_table('group_notice_settings')
