"""The tag management page: counts, rename and colour, merge (friends and references move), delete."""

from __future__ import annotations

import sqlalchemy as sa

from saas.extensions import db
from saas.friends import services
from saas.friends.models import Friend, FriendTag, Tag
from saas.richmenu.models import RichMenu
from saas.tenancy.scoping import tenant_scope
from tests.conftest import csrf_token
from tests.factories import gen_clinic, gen_user
from tests.helpers import login


def _tagged(clinic, spec: dict[str, list[int]]) -> dict[str, int]:
    """Friends 0..n tagged as ``{tag name: [friend indexes]}``; tag ids by name."""
    with tenant_scope(clinic.id):
        friends = [Friend(line_user_id=f"U{clinic.id:04d}{i:028d}", attributes={}) for i in range(5)]
        db.session.add_all(friends)
        db.session.flush()
        ids = {}
        for name, indexes in spec.items():
            tag = services.get_or_create_tag(name)
            ids[name] = tag.id
            for index in indexes:
                services.add_tag(friends[index], tag)
        db.session.commit()
    return ids


def _names_per_friend(clinic) -> list[list[str]]:
    db.session.expire_all()
    with tenant_scope(clinic.id):
        friends = db.session.scalars(sa.select(Friend).order_by(Friend.id)).all()
        return [[tag.name for tag in friend.tags] for friend in friends]


def test_merging_moves_friends_without_duplicates_and_repoints_the_rich_menu(client, as_platform):
    clinic = gen_clinic()
    ids = _tagged(clinic, {"インフル": [0, 1], "インフルエンザ": [1, 2]})
    with tenant_scope(clinic.id):
        menu = RichMenu(clinic_id=clinic.id, name="冬", areas=[], segment_tag_id=ids["インフル"])
        db.session.add(menu)
        db.session.commit()
        menu_id = menu.id
    login(client, gen_user("sender", clinic=clinic))
    page = client.get(f"/c/{clinic.slug}/friends/tags").get_data(as_text=True)
    assert ">緑</option>" in page and ">green</option>" not in page  # colour names in Japanese
    assert 'data-testid="count">2<' in page
    client.post(
        f"/c/{clinic.slug}/friends/tags/{ids['インフル']}/merge",
        data={"csrf_token": csrf_token(client), "into": ids["インフルエンザ"]},
    )
    assert _names_per_friend(clinic) == [["インフルエンザ"], ["インフルエンザ"], ["インフルエンザ"], [], []]
    with tenant_scope(clinic.id):
        assert db.session.get(RichMenu, menu_id).segment_tag_id == ids["インフルエンザ"]
        assert db.session.scalar(sa.select(sa.func.count(Tag.id))) == 1


def test_rename_to_an_existing_name_is_refused_and_delete_takes_the_tag_off_everyone(client, as_platform):
    clinic = gen_clinic()
    ids = _tagged(clinic, {"初診": [0], "再診": [1, 2]})
    login(client, gen_user("sender", clinic=clinic))
    token = csrf_token(client)
    client.post(
        f"/c/{clinic.slug}/friends/tags/{ids['初診']}", data={"csrf_token": token, "name": "再診", "color": "blue"}
    )
    with tenant_scope(clinic.id):
        assert db.session.get(Tag, ids["初診"]).name == "初診"
    client.post(
        f"/c/{clinic.slug}/friends/tags/{ids['初診']}",
        data={"csrf_token": token, "name": "初診（新患）", "color": "pink"},
    )
    with tenant_scope(clinic.id):
        tag = db.session.get(Tag, ids["初診"])
        assert (tag.name, tag.color) == ("初診（新患）", "pink")
    client.post(f"/c/{clinic.slug}/friends/tags/{ids['再診']}/delete", data={"csrf_token": token})
    assert _names_per_friend(clinic) == [["初診（新患）"], [], [], [], []]
    with tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(sa.func.count(FriendTag.id))) == 1


def test_another_clinics_tag_cannot_be_changed_or_merged_into(client, as_platform):
    clinic, other = gen_clinic(), gen_clinic(name="別院")
    mine, theirs = _tagged(clinic, {"自院": [0]}), _tagged(other, {"他院": [0]})
    login(client, gen_user("admin", clinic=clinic))
    token = csrf_token(client)
    base = f"/c/{clinic.slug}/friends/tags"
    assert client.post(f"{base}/{theirs['他院']}", data={"csrf_token": token, "name": "x"}).status_code == 404
    merged = client.post(f"{base}/{mine['自院']}/merge", data={"csrf_token": token, "into": theirs["他院"]})
    assert merged.status_code == 404
    assert client.post(f"{base}/{theirs['他院']}/delete", data={"csrf_token": token}).status_code == 404
    assert _names_per_friend(other)[0] == ["他院"] and _names_per_friend(clinic)[0] == ["自院"]


def test_the_friends_csv_has_fields_tags_source_and_consent_and_neutralises_formulas(client, as_platform):
    from saas.audit.models import AuditEvent
    from saas.fields import services as fields
    from saas.fields.models import FriendField

    clinic = gen_clinic()
    _tagged(clinic, {"初診": [0]})
    with tenant_scope(clinic.id):
        friend = db.session.scalar(sa.select(Friend).order_by(Friend.id))
        friend.display_name = '=HYPERLINK("http://evil.example","click")'
        friend.consent_marketing = True
        age = fields.save_field(FriendField(), key="age_band", label="年代", kind="text")
        fields.set_value(friend, age, "30代")
        db.session.commit()
    login(client, gen_user("viewer", clinic=clinic))
    assert client.get(f"/c/{clinic.slug}/friends/export.csv").status_code == 403
    client.post("/auth/logout", data={"csrf_token": csrf_token(client)})
    login(client, gen_user("admin", clinic=clinic))
    answer = client.get(f"/c/{clinic.slug}/friends/export.csv")
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    import csv
    import io

    rows = list(csv.reader(io.StringIO(answer.data.decode("utf-8-sig"))))
    assert rows[0][-1] == "年代" and len(rows) == 6
    first = dict(zip(rows[0], rows[1], strict=True))
    assert first["表示名"].startswith("'=HYPERLINK")
    assert (first["タグ"], first["お知らせ同意"], first["年代"]) == ("初診", "1", "30代")
    with tenant_scope(clinic.id):
        event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "friends.exported"))
        assert event.details == {"rows": 5}
