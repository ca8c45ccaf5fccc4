"""API: friends (read), their tags and their friend-field values."""

from __future__ import annotations

import sqlalchemy as sa

from saas.api import paging
from saas.api.blueprint import api_bp
from saas.api.problems import ApiProblem
from saas.api.schemas import FieldValues, FriendOut, FriendPage, FriendQuery, TagChange
from saas.api.spec import operation
from saas.extensions import db
from saas.fields import services as fields
from saas.friends import services as friends
from saas.friends.models import Friend, FriendTag, Tag


def friend_out(friend: Friend, values: dict[str, str]) -> FriendOut:
    return FriendOut(
        id=friend.id,
        display_name=friend.display_name,
        status=friend.status,
        followed_at=friend.followed_at,
        consent_marketing=friend.consent_marketing,
        consent_reminders=friend.consent_booking,
        tags=[tag.name for tag in friend.tags],
        fields=values,
    )


def _friend(friend_id: int) -> Friend:
    friend = db.session.get(Friend, friend_id)  # another clinic's friend is out of scope: None
    if friend is None:
        raise ApiProblem(404, "No such friend in this clinic.")
    return friend


@operation(
    api_bp,
    "GET",
    "/clinics/<clinic_slug>/friends",
    summary="List friends",
    tag="friends",
    permission="friends.view",
    query=FriendQuery,
    response=FriendPage,
)
def list_friends(clinic_slug: str, query: FriendQuery):
    """The clinic's friends in id order, with tags and field values (every call is audited)."""
    statement = sa.select(Friend)
    if query.status:
        statement = statement.where(Friend.status == query.status)
    if query.tag:
        tagged = sa.select(FriendTag.friend_id).join(Tag, Tag.id == FriendTag.tag_id).where(Tag.name == query.tag)
        statement = statement.where(Friend.id.in_(tagged))
    rows, cursor = paging.page(statement, Friend.id, query)
    values = fields.values_for_friends([f.id for f in rows])
    return FriendPage(data=[friend_out(f, values.get(f.id, {})) for f in rows], next_cursor=cursor)


@operation(
    api_bp,
    "GET",
    "/clinics/<clinic_slug>/friends/<int:friend_id>",
    summary="Get a friend",
    tag="friends",
    permission="friends.view",
    response=FriendOut,
)
def get_friend(clinic_slug: str, friend_id: int):
    """One friend with tags and field values."""
    friend = _friend(friend_id)
    return friend_out(friend, fields.values_by_key(friend))


@operation(
    api_bp,
    "POST",
    "/clinics/<clinic_slug>/friends/<int:friend_id>/tags",
    summary="Add or remove tags",
    tag="friends",
    permission="friends.edit",
    body=TagChange,
    response=FriendOut,
)
def change_tags(clinic_slug: str, friend_id: int, body: TagChange):
    """Add tags (created when new) and remove tags, by name."""
    friend = _friend(friend_id)
    for name in body.add:
        friends.add_tag(friend, friends.get_or_create_tag(name))
    for name in body.remove:
        tag = db.session.scalar(sa.select(Tag).where(Tag.name == name.strip()))
        if tag is not None:
            friends.remove_tag(friend, tag.id)
    db.session.commit()
    return friend_out(friend, fields.values_by_key(friend))


@operation(
    api_bp,
    "PATCH",
    "/clinics/<clinic_slug>/friends/<int:friend_id>/fields",
    summary="Set field values",
    tag="friends",
    permission="friends.edit",
    body=FieldValues,
    response=FriendOut,
)
def set_fields(clinic_slug: str, friend_id: int, body: FieldValues):
    """Set friend-field values by key; every value is checked first, and a bad one writes nothing."""
    friend = _friend(friend_id)
    parsed = []
    for key, raw in body.values.items():
        field = fields.get_by_key(key)
        if field is None:
            raise ApiProblem(422, f"No friend field {key!r} in this clinic.", errors=[_error(key, "unknown field")])
        try:
            parsed.append((field, fields.parse(field, raw)))
        except fields.FieldProblem as problem:
            raise ApiProblem(422, f"{key}: {problem}", errors=[_error(key, str(problem))]) from problem
    for field, rows in parsed:
        fields.write_rows(friend.id, friend.clinic_id, field.id, rows)
    db.session.commit()
    return friend_out(friend, fields.values_by_key(friend))


def _error(key: str, detail: str) -> dict:
    return {"in": "body", "pointer": f"/values/{key}", "detail": detail}
