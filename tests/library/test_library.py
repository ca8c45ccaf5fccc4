"""Shared libraries: inheritance platform → agency → organization → clinic, and the portal browser."""

from __future__ import annotations

import sqlalchemy as sa

from saas.autoreply.services import reply_to
from saas.extensions import db
from saas.library import services
from saas.library.models import ClinicLibraryOverride, Level, LibraryItem, LibrarySubscription, owner_key
from saas.library.render import render
from saas.tenancy.scoping import tenant_scope
from tests.factories import gen_agency, gen_clinic, gen_organization, gen_user
from tests.helpers import assert_rows_isolated, login


def _standard_set():
    services.load_standard_library()
    db.session.commit()
    return services.get_set_by_key("standard-clinic-faq")


def _parking_item(library_set, owner: str, body: str) -> None:
    db.session.add(LibraryItem(set_id=library_set.id, item_key="parking", owner=owner, title="駐車場",
                               keywords=["駐車場"], body=body))  # fmt: skip
    db.session.commit()


def test_clinic_override_wins_over_organization_and_agency():
    agency = gen_agency()
    organization = gen_organization(agency)
    clinic, sibling = gen_clinic(organization), gen_clinic(organization)
    faq = _standard_set()
    _parking_item(faq, owner_key(Level.AGENCY, agency.id), "代理店の駐車場案内")
    _parking_item(faq, owner_key(Level.ORGANIZATION, organization.id), "法人の駐車場案内")
    with tenant_scope(clinic.id):
        services.set_override(clinic, faq.id, "parking", body="{{clinic.name}}専用の駐車場案内")
        db.session.commit()

    def parking(c):
        with tenant_scope(c.id):
            return next(i for i in services.resolve_items(c, [faq]) if i.item_key == "parking")

    mine, theirs = parking(clinic), parking(sibling)
    assert (mine.level, mine.inherited_from, mine.body) == ("clinic", "organization", "{{clinic.name}}専用の駐車場案内")
    assert (theirs.level, theirs.body) == ("organization", "法人の駐車場案内")
    other_agency_clinic = gen_clinic(gen_organization(gen_agency()))
    assert parking(other_agency_clinic).level == "platform"


def test_override_answers_patients_and_revert_restores_the_inherited_answer():
    clinic = gen_clinic(phone="03-1111-2222")
    faq = _standard_set()
    with tenant_scope(clinic.id):
        services.set_subscription(clinic, faq.id, True)
        db.session.commit()
        assert "03-1111-2222" in reply_to(clinic, "よやくしたい", dry_run=True).messages[0]["text"]
        services.set_override(clinic, faq.id, "booking", body="予約は{{clinic.name}}のWebから")
        db.session.commit()
        assert reply_to(clinic, "予約したい", dry_run=True).messages[0]["text"] == f"予約は{clinic.name}のWebから"
        services.revert_override(clinic, faq.id, "booking")
        db.session.commit()
        assert "03-1111-2222" in reply_to(clinic, "予約したい", dry_run=True).messages[0]["text"]


def test_renderer_fills_known_variables_and_leaves_anything_else_visible():
    values = {"clinic.name": "あおば皮膚科"}
    assert (
        render("{{ clinic.name }}です {{clinic.__class__}} {{ x.y }}", values)
        == "あおば皮膚科です {{clinic.__class__}} {{ x.y }}"
    )


def test_library_rows_of_a_clinic_are_isolated(as_platform):
    faq_id = _standard_set().id
    clinic_ids = [gen_clinic().id, gen_clinic().id]
    for model, extra in ((ClinicLibraryOverride, {"item_key": "parking"}), (LibrarySubscription, {})):
        rows = [model(clinic_id=clinic_id, set_id=faq_id, **extra) for clinic_id in clinic_ids]
        db.session.add_all(rows)
        db.session.commit()
        ids = [r.id for r in rows]
        assert_rows_isolated(model, db.session.get(model, ids[0]), db.session.get(model, ids[1]))


def test_library_browser_shows_where_items_come_from_and_overrides(client):
    clinic = gen_clinic()
    user = gen_user("admin", clinic=clinic)
    login(client, user)
    page = client.get(f"/c/{clinic.slug}/library/").get_data(as_text=True)
    assert "クリニック標準FAQ" in page and "インフルエンザ予防接種のご案内" in page and "標準（Tsunagu）" in page
    faq = services.get_set_by_key("standard-clinic-faq")
    token = __import__("re").search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post(f"/c/{clinic.slug}/library/sets/{faq.id}/items/parking",
                           data={"csrf_token": token, "title": "駐車場", "body": "裏に5台あります"})  # fmt: skip
    assert response.status_code == 302
    page = client.get(f"/c/{clinic.slug}/library/").get_data(as_text=True)
    assert "裏に5台あります" in page and "元に戻す" in page
    with tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ClinicLibraryOverride)) == 1
