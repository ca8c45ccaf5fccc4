"""Friend attributes as typed rows for segment counts, kept by triggers on friend.

``friend_attribute (clinic_id, key, value, friend_id)``, its primary key the covering index an
attribute equality reads alone (the GIN index on ``friend.attributes`` could not answer
index-only: a value held by 1 friend in 6 cost a heap page per match, 94 ms for a 100,000-friend
clinic). Triggers on ``friend`` rewrite a friend's rows on insert, on an update of its
attributes or clinic, and on delete; existing friends are filled once here (one pass over
``friend``). The GIN index is dropped on Postgres (nothing reads it any more).

Revision ID: b6c2e8f4a1d7
Revises: 7a3d5e1c9b42
Create Date: 2026-12-02 14:30:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'b6c2e8f4a1d7'
down_revision = '7a3d5e1c9b42'
branch_labels = None
depends_on = None

MAX_VALUE = 500

POSTGRES = (
    f"""
CREATE OR REPLACE FUNCTION friend_attribute_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        DELETE FROM friend_attribute WHERE friend_id = OLD.id;
    END IF;
    IF TG_OP <> 'DELETE' AND jsonb_typeof(NEW.attributes) = 'object' THEN
        INSERT INTO friend_attribute (clinic_id, key, value, friend_id)
        SELECT NEW.clinic_id, e.key, e.value #>> '{{}}', NEW.id FROM jsonb_each(NEW.attributes) AS e
        WHERE jsonb_typeof(e.value) = 'string' AND length(e.value #>> '{{}}') <= {MAX_VALUE};
    END IF;
    RETURN NULL;
END $$
""",
    "CREATE TRIGGER friend_attribute_write AFTER INSERT OR DELETE ON friend"
    " FOR EACH ROW EXECUTE FUNCTION friend_attribute_sync()",
    "CREATE TRIGGER friend_attribute_change AFTER UPDATE OF attributes, clinic_id ON friend FOR EACH ROW"
    " WHEN (OLD.attributes IS DISTINCT FROM NEW.attributes OR OLD.clinic_id <> NEW.clinic_id)"
    " EXECUTE FUNCTION friend_attribute_sync()",
    "INSERT INTO friend_attribute (clinic_id, key, value, friend_id)"
    " SELECT f.clinic_id, e.key, e.value #>> '{}', f.id FROM friend AS f, jsonb_each(f.attributes) AS e"
    " WHERE jsonb_typeof(f.attributes) = 'object' AND jsonb_typeof(e.value) = 'string'"
    f" AND length(e.value #>> '{{}}') <= {MAX_VALUE}",
)

_SQLITE_INSERT = (
    "INSERT INTO friend_attribute (clinic_id, key, value, friend_id)"
    " SELECT NEW.clinic_id, j.key, j.value, NEW.id FROM json_each(NEW.attributes) AS j"
    f" WHERE json_type(NEW.attributes) = 'object' AND j.type = 'text' AND length(j.value) <= {MAX_VALUE};"
)

SQLITE = (
    f"CREATE TRIGGER friend_attribute_insert AFTER INSERT ON friend BEGIN {_SQLITE_INSERT} END",
    "CREATE TRIGGER friend_attribute_update AFTER UPDATE OF attributes, clinic_id ON friend BEGIN"
    f" DELETE FROM friend_attribute WHERE friend_id = OLD.id; {_SQLITE_INSERT} END",
    "CREATE TRIGGER friend_attribute_delete AFTER DELETE ON friend BEGIN"
    " DELETE FROM friend_attribute WHERE friend_id = OLD.id; END",
    "INSERT INTO friend_attribute (clinic_id, key, value, friend_id)"
    " SELECT f.clinic_id, j.key, j.value, f.id FROM friend AS f, json_each(f.attributes) AS j"
    f" WHERE json_type(f.attributes) = 'object' AND j.type = 'text' AND length(j.value) <= {MAX_VALUE}",
)


def _postgres() -> bool:
    return op.get_bind().dialect.name == 'postgresql'


def upgrade():
    op.create_table(
        'friend_attribute',
        sa.Column('clinic_id', sa.Integer(), nullable=False),
        sa.Column('key', sa.Text(), nullable=False),
        sa.Column('value', sa.Text(), nullable=False),
        sa.Column('friend_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('clinic_id', 'key', 'value', 'friend_id'),
    )
    op.create_index('ix_friend_attribute_friend', 'friend_attribute', ['friend_id'], unique=False)
    for statement in POSTGRES if _postgres() else SQLITE:
        op.execute(statement)
    if _postgres():
        op.drop_index('ix_friend_clinic_attributes', table_name='friend')


def downgrade():
    if _postgres():
        op.create_index(
            'ix_friend_clinic_attributes', 'friend', ['clinic_id', 'attributes'], unique=False,
            postgresql_using='gin', postgresql_ops={'attributes': 'jsonb_path_ops'},
        )
        op.execute('DROP TRIGGER friend_attribute_change ON friend')
        op.execute('DROP TRIGGER friend_attribute_write ON friend')
        op.execute('DROP FUNCTION friend_attribute_sync()')
    else:
        for name in ('insert', 'update', 'delete'):
            op.execute(f'DROP TRIGGER friend_attribute_{name}')
    op.drop_index('ix_friend_attribute_friend', table_name='friend_attribute')
    op.drop_table('friend_attribute')
