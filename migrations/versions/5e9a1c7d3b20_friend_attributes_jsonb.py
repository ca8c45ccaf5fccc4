"""Segment counts by index: friend attributes as JSONB under a clinic-led GIN index, covering indexes.

- Postgres: ``friend.attributes`` becomes JSONB (rewritten in place, ``USING attributes::jsonb``,
  which holds an exclusive lock on ``friend`` while it runs: about a minute per few million
  friends, so run it in a quiet hour); a GIN index on ``(clinic_id, attributes jsonb_path_ops)``
  (extension ``btree_gin``, shipped with Postgres and trusted: a database owner may create it)
  answers attribute equality by containment (``@>``) within one clinic; ``ix_friend_audience``
  ``(clinic_id, id) INCLUDE (status, consent_marketing, consent_booking)`` lets counts read the
  index alone. SQLite keeps its JSON text column (its JSON functions answer the same filters).
- Both: friend field value indexes are led by ``clinic_id`` and end in ``friend_id`` (index-only).

Revision ID: 5e9a1c7d3b20
Revises: 6542e167d9a8
Create Date: 2026-12-01 21:40:00.000000

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


revision = '5e9a1c7d3b20'
down_revision = '6542e167d9a8'
branch_labels = None
depends_on = None

VALUE_COLUMNS = ('text', 'number', 'day')


def _postgres() -> bool:
    return op.get_bind().dialect.name == 'postgresql'


def _field_value_indexes(leading: list[str], trailing: list[str]) -> None:
    with op.batch_alter_table('friend_field_value', schema=None) as batch_op:
        for column in VALUE_COLUMNS:
            batch_op.drop_index(f'ix_field_value_{column}')
            batch_op.create_index(f'ix_field_value_{column}', [*leading, column, *trailing], unique=False)


def upgrade():
    _field_value_indexes(['clinic_id', 'field_id'], ['friend_id'])
    if not _postgres():
        return
    op.execute('CREATE EXTENSION IF NOT EXISTS btree_gin')
    op.alter_column(
        'friend', 'attributes', type_=postgresql.JSONB(), existing_type=sa.JSON(),
        postgresql_using='attributes::jsonb',
    )
    op.create_index(
        'ix_friend_clinic_attributes', 'friend', ['clinic_id', 'attributes'], unique=False,
        postgresql_using='gin', postgresql_ops={'attributes': 'jsonb_path_ops'},
    )
    op.create_index(
        'ix_friend_audience', 'friend', ['clinic_id', 'id'], unique=False,
        postgresql_include=['status', 'consent_marketing', 'consent_booking'],
    )


def downgrade():
    if _postgres():
        op.drop_index('ix_friend_audience', table_name='friend')
        op.drop_index('ix_friend_clinic_attributes', table_name='friend')
        op.alter_column(
            'friend', 'attributes', type_=sa.JSON(), existing_type=postgresql.JSONB(),
            postgresql_using='attributes::json',
        )
    _field_value_indexes(['field_id'], [])
