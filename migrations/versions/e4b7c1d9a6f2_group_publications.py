"""Group publishing: templates, scenarios and coupons HQ published to its branches, and each branch's copy.

Revision ID: e4b7c1d9a6f2
Revises: d6427e35df73
Create Date: 2026-12-01 18:20:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'e4b7c1d9a6f2'
down_revision = 'd6427e35df73'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('group_publication',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=120), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('content', sa.JSON(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('published_by_email', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('updated_at', sa.DateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_group_publication_organization_id_organization'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_group_publication')),
    sa.UniqueConstraint('organization_id', 'kind', 'source', name=op.f('uq_group_publication_organization_id_kind_source'))
    )
    op.create_index(op.f('ix_group_publication_organization_id'), 'group_publication', ['organization_id'], unique=False)
    op.create_table('published_copy',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('publication_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('target_id', sa.Integer(), nullable=False),
    sa.Column('base', sa.JSON(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('clinic_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('updated_at', sa.DateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], name=op.f('fk_published_copy_clinic_id_clinic'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['publication_id'], ['group_publication.id'], name=op.f('fk_published_copy_publication_id_group_publication'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_published_copy')),
    sa.UniqueConstraint('publication_id', 'clinic_id', name=op.f('uq_published_copy_publication_id_clinic_id'))
    )
    op.create_index(op.f('ix_published_copy_clinic_id'), 'published_copy', ['clinic_id'], unique=False)
    op.create_index(op.f('ix_published_copy_publication_id'), 'published_copy', ['publication_id'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_published_copy_publication_id'), table_name='published_copy')
    op.drop_index(op.f('ix_published_copy_clinic_id'), table_name='published_copy')
    op.drop_table('published_copy')
    op.drop_index(op.f('ix_group_publication_organization_id'), table_name='group_publication')
    op.drop_table('group_publication')
