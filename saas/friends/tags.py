"""Managing a clinic's tags: counts, rename, colour, merge and delete.

Other capabilities point at tags by foreign key (a rich menu's segment tag, a reminder rule's
tag): a merge moves every such reference to the surviving tag, found from the schema, so this
module needs to know none of them; deleting a tag leaves them to their ``ondelete`` rule.
"""

from __future__ import annotations

import sqlalchemy as sa

from saas.extensions import db
from saas.friends import hooks
from saas.friends.models import FriendTag, Tag
from saas.friends.services import TAG_COLORS


class TagProblem(ValueError):
    """A tag change that cannot be made; the code says why (name, duplicate, same)."""


def with_counts() -> list[tuple[Tag, int]]:
    """Every tag of the clinic with the number of friends carrying it, by name."""
    counts = sa.select(FriendTag.tag_id, sa.func.count(FriendTag.id).label("n")).group_by(FriendTag.tag_id).subquery()
    rows = db.session.execute(
        sa.select(Tag, sa.func.coalesce(counts.c.n, 0)).outerjoin(counts, counts.c.tag_id == Tag.id).order_by(Tag.name)
    )
    return [(tag, int(count)) for tag, count in rows]


def update(tag: Tag, *, name: str, color: str) -> Tag:
    """Rename and recolour a tag (names stay unique within the clinic)."""
    name = (name or "").strip()
    if not name or len(name) > 60:
        raise TagProblem("name")
    clash = db.session.scalar(sa.select(Tag.id).where(Tag.name == name, Tag.id != tag.id))
    if clash is not None:
        raise TagProblem("duplicate")
    tag.name, tag.color = name, color if color in TAG_COLORS else tag.color
    return tag


def _references() -> list[sa.Column]:
    """Columns of other tables holding a tag id (friend_tag is moved separately)."""
    columns = []
    for table in db.metadata.tables.values():
        if table.name == FriendTag.__tablename__:
            continue
        columns += [fk.parent for fk in table.foreign_keys if fk.column.table.name == Tag.__tablename__]
    return columns


def merge(source: Tag, target: Tag) -> int:
    """Move every friend of ``source`` to ``target`` (no duplicates), repoint references, delete
    ``source``. Returns how many friends gained ``target``."""
    if source.id == target.id:
        raise TagProblem("same")
    already = sa.select(FriendTag.friend_id).where(FriendTag.tag_id == target.id)
    _note_carriers(source)
    moved = db.session.execute(
        sa.update(FriendTag)
        .where(FriendTag.tag_id == source.id, FriendTag.friend_id.not_in(already))
        .values(tag_id=target.id),
        execution_options={"synchronize_session": False},
    ).rowcount
    for column in _references():
        same_clinic = column.table.c.clinic_id == source.clinic_id if "clinic_id" in column.table.c else sa.true()
        db.session.execute(  # a Core UPDATE: the tenant criterion is written out here
            sa.update(column.table).where(column == source.id, same_clinic).values({column.name: target.id}),
            execution_options={"synchronize_session": False},
        )
    delete(source)
    return moved or 0


def delete(tag: Tag) -> None:
    """Delete a tag and take it off every friend."""
    _note_carriers(tag)
    db.session.execute(
        sa.delete(FriendTag).where(FriendTag.tag_id == tag.id), execution_options={"synchronize_session": False}
    )
    db.session.delete(tag)
    db.session.flush()


def _note_carriers(tag: Tag) -> None:
    """The friends carrying ``tag`` are about to change tags (their rich menu may follow)."""
    carriers = db.session.scalars(sa.select(FriendTag.friend_id).where(FriendTag.tag_id == tag.id))
    hooks.note_tags_changed(db.session, tag.clinic_id, set(carriers))
