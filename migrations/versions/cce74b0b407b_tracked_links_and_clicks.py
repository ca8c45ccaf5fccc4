"""Tracked short links (/l/<code>) and their clicks; a delivery's choice of counting per friend or per link.

Revision ID: cce74b0b407b
Revises: 12a220358b18
Create Date: 2026-12-01 17:56:17.013300

"""
from alembic import op
import sqlalchemy as sa


revision = 'cce74b0b407b'
down_revision = '12a220358b18'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('tracked_link',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('code', sa.String(length=24), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('delivery_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('rich_menu_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('friend_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('clinic_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], name=op.f('fk_tracked_link_clinic_id_clinic'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tracked_link')),
    sa.UniqueConstraint('code', name=op.f('uq_tracked_link_code'))
    )
    with op.batch_alter_table('tracked_link', schema=None) as batch_op:
        batch_op.create_index('ix_tracked_link_clinic_delivery', ['clinic_id', 'delivery_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_tracked_link_clinic_id'), ['clinic_id'], unique=False)
        batch_op.create_index('ix_tracked_link_clinic_rich_menu', ['clinic_id', 'rich_menu_id'], unique=False)

    op.create_table('link_click',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('link_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('friend_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('delivery_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('clicked_at', sa.DateTime(), nullable=False),
    sa.Column('clinic_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], name=op.f('fk_link_click_clinic_id_clinic'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['link_id'], ['tracked_link.id'], name=op.f('fk_link_click_link_id_tracked_link'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_link_click'))
    )
    with op.batch_alter_table('link_click', schema=None) as batch_op:
        batch_op.create_index('ix_link_click_clinic_delivery', ['clinic_id', 'delivery_id', 'link_id'], unique=False)
        batch_op.create_index('ix_link_click_clinic_friend', ['clinic_id', 'friend_id', 'clicked_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_link_click_clinic_id'), ['clinic_id'], unique=False)
        batch_op.create_index('ix_link_click_clinic_link', ['clinic_id', 'link_id'], unique=False)
        batch_op.create_index('ix_link_click_clinic_time', ['clinic_id', 'clicked_at'], unique=False)

    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.add_column(sa.Column('track_clicks_per_friend', sa.Boolean(), server_default=sa.true(), nullable=False))



def downgrade():
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_column('track_clicks_per_friend')

    with op.batch_alter_table('link_click', schema=None) as batch_op:
        batch_op.drop_index('ix_link_click_clinic_time')
        batch_op.drop_index('ix_link_click_clinic_link')
        batch_op.drop_index(batch_op.f('ix_link_click_clinic_id'))
        batch_op.drop_index('ix_link_click_clinic_friend')
        batch_op.drop_index('ix_link_click_clinic_delivery')

    op.drop_table('link_click')
    with op.batch_alter_table('tracked_link', schema=None) as batch_op:
        batch_op.drop_index('ix_tracked_link_clinic_rich_menu')
        batch_op.drop_index(batch_op.f('ix_tracked_link_clinic_id'))
        batch_op.drop_index('ix_tracked_link_clinic_delivery')

    op.drop_table('tracked_link')
