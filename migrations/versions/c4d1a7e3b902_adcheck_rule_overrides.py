"""医療広告ガイドライン check: an organization's overrides of the shipped rules.

Revision ID: c4d1a7e3b902
Revises: 5c647870e5c3
Create Date: 2026-12-01 14:50:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'c4d1a7e3b902'
down_revision = '5c647870e5c3'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'ad_rule_override',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('organization_id', sa.Integer(), nullable=False),
        sa.Column('rule_id', sa.String(length=40), nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('severity', sa.String(length=16), nullable=True),
        sa.Column('extra_phrases', sa.JSON(), nullable=False),
        sa.Column('allowed_phrases', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
        sa.Column('updated_at', sa.DateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
        sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('organization_id', 'rule_id'),
    )
    with op.batch_alter_table('ad_rule_override') as batch_op:
        batch_op.create_index(batch_op.f('ix_ad_rule_override_organization_id'), ['organization_id'], unique=False)


def downgrade():
    with op.batch_alter_table('ad_rule_override') as batch_op:
        batch_op.drop_index(batch_op.f('ix_ad_rule_override_organization_id'))
    op.drop_table('ad_rule_override')
