"""Friend attributes as typed rows ``(clinic_id, key, value, friend_id)``, kept by triggers.

A segment's attribute equality reads these rows from their primary key alone (an index-only
scan), then meets the clinic's friends in ``ix_friend_audience``: a GIN index on the JSON column
cannot answer index-only, so a common value (1 friend in 6) cost one heap page per match.
``friend.attributes`` stays the source of truth; triggers on ``friend`` rewrite a friend's rows
on every insert, update of its attributes (or clinic) and delete, whichever code path wrote it.
Only text values are kept (an equality compares text), up to ``MAX_VALUE`` characters.
"""

from __future__ import annotations

import sqlalchemy as sa

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
    "DROP TRIGGER IF EXISTS friend_attribute_write ON friend",
    "CREATE TRIGGER friend_attribute_write AFTER INSERT OR DELETE ON friend"
    " FOR EACH ROW EXECUTE FUNCTION friend_attribute_sync()",
    "DROP TRIGGER IF EXISTS friend_attribute_change ON friend",
    "CREATE TRIGGER friend_attribute_change AFTER UPDATE OF attributes, clinic_id ON friend FOR EACH ROW"
    " WHEN (OLD.attributes IS DISTINCT FROM NEW.attributes OR OLD.clinic_id <> NEW.clinic_id)"
    " EXECUTE FUNCTION friend_attribute_sync()",
)

_SQLITE_INSERT = (
    "INSERT INTO friend_attribute (clinic_id, key, value, friend_id)"
    " SELECT NEW.clinic_id, j.key, j.value, NEW.id FROM json_each(NEW.attributes) AS j"
    f" WHERE json_type(NEW.attributes) = 'object' AND j.type = 'text' AND length(j.value) <= {MAX_VALUE};"
)

SQLITE = (
    "DROP TRIGGER IF EXISTS friend_attribute_insert",
    f"CREATE TRIGGER friend_attribute_insert AFTER INSERT ON friend BEGIN {_SQLITE_INSERT} END",
    "DROP TRIGGER IF EXISTS friend_attribute_update",
    "CREATE TRIGGER friend_attribute_update AFTER UPDATE OF attributes, clinic_id ON friend BEGIN"
    f" DELETE FROM friend_attribute WHERE friend_id = OLD.id; {_SQLITE_INSERT} END",
    "DROP TRIGGER IF EXISTS friend_attribute_delete",
    "CREATE TRIGGER friend_attribute_delete AFTER DELETE ON friend BEGIN"
    " DELETE FROM friend_attribute WHERE friend_id = OLD.id; END",
)

# Fills the rows of friends written while the triggers did not fire (a migration, a bulk load).
BACKFILL = {
    "postgresql": "INSERT INTO friend_attribute (clinic_id, key, value, friend_id)"
    " SELECT f.clinic_id, e.key, e.value #>> '{}', f.id FROM friend AS f, jsonb_each(f.attributes) AS e"
    " WHERE jsonb_typeof(f.attributes) = 'object' AND jsonb_typeof(e.value) = 'string'"
    f" AND length(e.value #>> '{{}}') <= {MAX_VALUE}",
    "sqlite": "INSERT INTO friend_attribute (clinic_id, key, value, friend_id)"
    " SELECT f.clinic_id, j.key, j.value, f.id FROM friend AS f, json_each(f.attributes) AS j"
    f" WHERE json_type(f.attributes) = 'object' AND j.type = 'text' AND length(j.value) <= {MAX_VALUE}",
}


def create_triggers(connection) -> None:
    for statement in POSTGRES if connection.dialect.name == "postgresql" else SQLITE:
        connection.exec_driver_sql(statement)


def _after_create(metadata, connection, tables=None, **kwargs) -> None:
    names = {table.name for table in tables or metadata.sorted_tables}
    if {"friend", "friend_attribute"} <= names:
        create_triggers(connection)


def listen(metadata: sa.MetaData) -> None:
    sa.event.listen(metadata, "after_create", _after_create)
