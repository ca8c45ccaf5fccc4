"""Shared-library authoring by agency/organization administrators, outside any clinic."""

from __future__ import annotations

import sqlalchemy as sa

from saas.audit.models import AuditEvent
from saas.autoreply.services import reply_to
from saas.extensions import db
from saas.library import services as library
from saas.library.models import Level, LibraryItem, LibrarySet, LibrarySubscription, owner_key
from saas.tenancy.scoping import platform_scope, tenant_scope
from tests.conftest import csrf_token
from tests.factories import gen_agency, gen_clinic, gen_organization, gen_user
from tests.helpers import login


def _group():
    agency = gen_agency()
    organization = gen_organization(agency)
    return agency, organization, gen_clinic(organization), gen_clinic(organization)


def _post(client, url: str, **data):
    db.session.commit()  # release SQLite's read lock before the request writes
    return client.post(url, data={"csrf_token": csrf_token(client), **data})


def _create_faq(client, organization, name="法人FAQ") -> LibrarySet:
    response = _post(client, f"/library/organization/{organization.slug}/sets", name=name, kind="faq")
    assert response.status_code == 302
    return db.session.scalars(sa.select(LibrarySet).where(LibrarySet.name == name)).one()


def test_an_organization_admin_writes_a_faq_that_every_branch_answers_with(client):
    _, organization, clinic, branch = _group()
    admin = gen_user("admin", organization=organization)
    login(client, admin)
    faq = _create_faq(client, organization)
    assert faq.owner == owner_key(Level.ORGANIZATION, organization.id)
    _post(client, f"/library/organization/{organization.slug}/sets/{faq.id}/items", title="駐車場",
          keywords="駐車場\nパーキング", body="{{clinic.name}}の駐車場は10台です")  # fmt: skip
    item = db.session.scalars(sa.select(LibraryItem).where(LibraryItem.set_id == faq.id)).one()
    for c in (clinic, branch):
        with tenant_scope(c.id):
            library.set_subscription(c, faq.id, True)
            db.session.commit()
            assert reply_to(c, "駐車場ありますか", dry_run=True).messages[0]["text"] == f"{c.name}の駐車場は10台です"

    _post(client, f"/library/organization/{organization.slug}/sets/{faq.id}/items/{item.item_key}",
          title="駐車場", keywords="駐車場", body="駐車場は提携駐車場をご利用ください")  # fmt: skip
    with tenant_scope(branch.id):
        assert (
            reply_to(branch, "駐車場ありますか", dry_run=True).messages[0]["text"]
            == "駐車場は提携駐車場をご利用ください"
        )
    page = client.get(f"/library/organization/{organization.slug}/").get_data(as_text=True)
    assert "提携駐車場" in page and "法人FAQ" in page

    faq_id = faq.id
    _post(client, f"/library/organization/{organization.slug}/sets/{faq_id}/delete")
    db.session.expire_all()
    assert db.session.get(LibrarySet, faq_id) is None
    with platform_scope("test"):
        assert (
            db.session.scalars(sa.select(LibrarySubscription).where(LibrarySubscription.set_id == faq_id)).all() == []
        )
        actions = set(db.session.scalars(sa.select(AuditEvent.action)))
    assert {"library.set.create", "library.item.create", "library.item.update", "library.set.delete"} <= actions


def test_an_organization_admin_cannot_touch_another_organizations_or_the_agencys_library(client):
    agency, organization, _, _ = _group()
    other = gen_organization(agency)
    other_set = LibrarySet(key="other-faq", name="他法人FAQ", owner=owner_key(Level.ORGANIZATION, other.id))
    agency_set = LibrarySet(key="agency-faq", name="代理店FAQ", owner=owner_key(Level.AGENCY, agency.id))
    db.session.add_all([other_set, agency_set])
    db.session.commit()
    login(client, gen_user("owner", organization=organization))
    assert client.get(f"/library/organization/{organization.slug}/").status_code == 200
    for base in (f"/library/organization/{other.slug}", f"/library/agency/{agency.slug}", "/library/platform/tsunagu"):
        assert client.get(f"{base}/").status_code == 404
        assert _post(client, f"{base}/sets", name="乗っ取り", kind="faq").status_code == 404
    for library_set in (other_set, agency_set):
        assert _post(client, f"/library/organization/{organization.slug}/sets/{library_set.id}",
                     name="乗っ取り").status_code == 404  # fmt: skip
        assert _post(client, f"/library/organization/{organization.slug}/sets/{library_set.id}/items",
                     title="乗っ取り").status_code == 404  # fmt: skip
    db.session.expire_all()
    assert {s.name for s in db.session.scalars(sa.select(LibrarySet))} == {"他法人FAQ", "代理店FAQ"}


def test_clinic_staff_and_non_admins_cannot_edit_any_shared_library(client):
    agency, organization, clinic, _ = _group()
    for user in (
        gen_user("owner", clinic=clinic),
        gen_user("sender", organization=organization),
        gen_user("sender", agency=agency),
    ):
        client.get("/auth/logout")
        login(client, user)
        for base in (f"/library/organization/{organization.slug}", f"/library/agency/{agency.slug}"):
            assert client.get(f"{base}/").status_code == 404
            assert _post(client, f"{base}/sets", name="勝手なFAQ", kind="faq").status_code == 404
        assert "共有ライブラリを編集" not in client.get(f"/c/{clinic.slug}/library/").get_data(as_text=True)
    assert db.session.scalars(sa.select(LibrarySet).where(LibrarySet.name == "勝手なFAQ")).all() == []


def test_an_agency_admin_edits_the_agency_library_and_its_organizations(client):
    agency, organization, _, _ = _group()
    login(client, gen_user("admin", agency=agency))
    assert (
        _post(client, f"/library/agency/{agency.slug}/sets", name="代理店テンプレート", kind="template").status_code
        == 302
    )
    assert client.get(f"/library/organization/{organization.slug}/").status_code == 200
    assert client.get(f"/library/organization/{gen_organization(gen_agency()).slug}/").status_code == 404
    home = client.get("/").get_data(as_text=True)
    assert f"/library/agency/{agency.slug}/" in home and f"/library/organization/{organization.slug}/" in home


def test_the_clinic_browser_links_to_the_original_item_only_for_its_administrators(client):
    _, organization, clinic, _ = _group()
    faq = LibrarySet(key="org-faq", name="法人FAQ", owner=owner_key(Level.ORGANIZATION, organization.id))
    db.session.add(faq)
    db.session.flush()
    db.session.add(LibraryItem(set_id=faq.id, item_key="parking", owner=faq.owner, title="駐車場", body="10台"))
    db.session.commit()
    login(client, gen_user("admin", organization=organization))
    page = client.get(f"/c/{clinic.slug}/library/").get_data(as_text=True)
    assert f"/library/organization/{organization.slug}/#item-{faq.id}-parking" in page and "元の項目を編集" in page
    client.get("/auth/logout")
    login(client, gen_user("admin", clinic=clinic))
    assert "元の項目を編集" not in client.get(f"/c/{clinic.slug}/library/").get_data(as_text=True)
