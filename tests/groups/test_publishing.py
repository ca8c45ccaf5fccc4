"""HQ publishes a template, a scenario or a coupon to chosen branches: each gets its own copy, marked
as from HQ; publishing again shows what will change and keeps a branch's own edits unless told."""

from __future__ import annotations

import sqlalchemy as sa

from saas.audit.models import AuditEvent
from saas.coupons import services as coupons
from saas.coupons.models import Coupon
from saas.extensions import db
from saas.groups.models import PublishedCopy
from saas.library.models import ClinicLibraryOverride, Level, LibraryItem
from saas.steps.models import StepScenario
from saas.tenancy.scoping import platform_scope, tenant_scope
from tests.conftest import csrf_token
from tests.coupons.support import values
from tests.factories import gen_clinic, gen_organization, gen_user
from tests.helpers import assert_rows_isolated, login


def _group():
    organization = gen_organization(name="医療法人社団つなぐ会")
    branches = [gen_clinic(organization, name=name) for name in ("渋谷院", "新宿院", "池袋院")]
    return organization, branches, gen_user("admin", organization=organization)


def _template(organization, body: str) -> tuple[int, str]:
    """An organization template set with one item: (set id, item key)."""
    from saas.groups import services
    from saas.library.models import SetKind

    shared = services.find_level(Level.ORGANIZATION, organization.slug)
    library_set = services.create_set(shared, SetKind.TEMPLATE, "法人のテンプレート")
    item = services.save_item(shared, library_set.id, None, title="年末年始のお知らせ", body=body)
    db.session.commit()
    return library_set.id, item.item_key


def _url(organization, kind: str, ref: str) -> str:
    return f"/organizations/{organization.slug}/publish/item?kind={kind}&source={ref}"


def _publish(client, organization, kind, ref, clinics, *, action="publish", overwrite=()):
    data = {"kind": kind, "source": ref, "clinic_ids": [str(c.id) for c in clinics], "action": action,
            "overwrite": [str(c.id) for c in overwrite], "csrf_token": csrf_token(client)}  # fmt: skip
    return client.post(f"/organizations/{organization.slug}/publish/item", data=data)


def _override(clinic) -> ClinicLibraryOverride | None:
    with tenant_scope(clinic.id):
        return db.session.scalars(sa.select(ClinicLibraryOverride)).first()


def test_a_template_reaches_every_chosen_branch_and_only_those(client):
    organization, (shibuya, shinjuku, ikebukuro), hq = _group()
    set_id, key = _template(organization, "{{clinic.name}}は12/29〜1/3休診です")
    login(client, hq)
    ref = f"library:{set_id}:{key}"
    preview = _publish(client, organization, "template", ref, [shibuya, shinjuku], action="preview")
    page = preview.get_data(as_text=True)
    assert preview.status_code == 200 and page.count('data-plan="new"') == 2
    assert _override(shibuya) is None  # 確認 writes nothing

    answer = _publish(client, organization, "template", ref, [shibuya, shinjuku])
    assert answer.status_code == 302
    for branch in (shibuya, shinjuku):
        copy = _override(branch)
        assert (copy.title, copy.body) == ("年末年始のお知らせ", "{{clinic.name}}は12/29〜1/3休診です")
    assert _override(ikebukuro) is None
    with platform_scope("test"):
        assert {c.clinic_id for c in db.session.scalars(sa.select(PublishedCopy))} == {shibuya.id, shinjuku.id}
    event = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "group_publication.publish")).one()
    assert set(event.details["written"]) == {shibuya.name, shinjuku.name}


def test_publishing_again_shows_the_diff_and_keeps_a_branchs_own_edits_unless_told(client):
    organization, (shibuya, shinjuku, _), hq = _group()
    set_id, key = _template(organization, "12/29〜1/3は休診です")
    ref = f"library:{set_id}:{key}"
    login(client, hq)
    _publish(client, organization, "template", ref, [shibuya, shinjuku])
    with platform_scope("test"):
        db.session.scalars(sa.select(LibraryItem).filter_by(item_key=key)).one().body = "12/28〜1/4は休診です"
        db.session.commit()
    with tenant_scope(shinjuku.id):
        db.session.scalars(sa.select(ClinicLibraryOverride)).one().body = "新宿院は12/30〜1/2休診です"
        db.session.commit()

    listing = client.get(f"/organizations/{organization.slug}/publish").get_data(as_text=True)
    assert "data-source-changed" in listing and "もう一度配布" in listing
    page = client.get(_url(organization, "template", ref)).get_data(as_text=True)
    assert f'data-branch="{shibuya.slug}" data-plan="update"' in page
    assert f'data-branch="{shinjuku.slug}" data-plan="edited"' in page
    assert "12/29〜1/3は休診です" in page and "→ 12/28〜1/4は休診です" in page  # now → after, per field
    assert "新宿院は12/30〜1/2休診です" in page  # the branch's own edit is shown, not hidden

    _publish(client, organization, "template", ref, [shibuya, shinjuku])
    assert _override(shibuya).body == "12/28〜1/4は休診です"
    assert _override(shinjuku).body == "新宿院は12/30〜1/2休診です"  # kept: not silently overwritten
    _publish(client, organization, "template", ref, [shinjuku], overwrite=[shinjuku])
    assert _override(shinjuku).body == "12/28〜1/4は休診です"


def test_a_branchs_coupon_and_a_library_scenario_become_drafts_of_the_other_branches(client):
    organization, (shibuya, shinjuku, ikebukuro), hq = _group()
    with tenant_scope(shibuya.id):
        coupon = coupons.save(Coupon(clinic_id=shibuya.id), values(title="インフルエンザ予防接種 500円引き"))
        db.session.commit()
        coupon_id = coupon.id
    login(client, hq)
    listing = client.get(f"/organizations/{organization.slug}/publish").get_data(as_text=True)
    assert "インフルエンザ予防接種 500円引き" in listing and "ステップ配信のシナリオ" in listing

    page = client.get(_url(organization, "coupon", f"coupon:{shibuya.id}:{coupon_id}")).get_data(as_text=True)
    assert f'data-branch="{shibuya.slug}"' not in page  # not published back to where it comes from
    _publish(client, organization, "coupon", f"coupon:{shibuya.id}:{coupon_id}", [shinjuku, ikebukuro])
    for branch in (shinjuku, ikebukuro):
        with tenant_scope(branch.id):
            copy = db.session.scalars(sa.select(Coupon)).one()
            assert (copy.title, copy.status, copy.reward_value) == ("インフルエンザ予防接種 500円引き", "draft", 20)
        db.session.rollback()

    from saas.library import services as library

    library.ensure_standard_library()
    db.session.commit()
    scenario_set = library.get_set_by_key("standard-scenarios")
    _publish(client, organization, "scenario", f"library:{scenario_set.id}:first-visit-follow-up", [shinjuku])
    with tenant_scope(shinjuku.id):
        scenario = db.session.scalars(sa.select(StepScenario)).one()
        assert scenario.status == "draft" and scenario.key.startswith("hq-")
    with tenant_scope(ikebukuro.id):
        assert db.session.scalars(sa.select(StepScenario)).first() is None
    marked = client.get(f"/c/{shinjuku.slug}/coupons/").get_data(as_text=True)
    marked += client.get(f"/c/{shinjuku.slug}/steps/").get_data(as_text=True)
    assert marked.count("data-from-hq") == 2  # the coupon and the scenario, each marked as from HQ


def test_another_organization_cannot_publish_here_nor_take_another_organizations_coupon(client):
    organization, (shibuya, shinjuku, _), hq = _group()
    other, theirs = gen_organization(), gen_clinic(gen_organization())
    with tenant_scope(theirs.id):
        coupon = coupons.save(Coupon(clinic_id=theirs.id), values())
        db.session.commit()
        their_coupon = coupon.id
    set_id, key = _template(organization, "本文")
    outsider = gen_user("admin", organization=other)
    login(client, outsider)
    assert client.get(f"/organizations/{organization.slug}/publish").status_code == 404
    assert _publish(client, organization, "template", f"library:{set_id}:{key}", [shibuya]).status_code == 404
    assert _override(shibuya) is None

    client = client.application.test_client()
    login(client, hq)
    stolen = _publish(client, organization, "coupon", f"coupon:{theirs.id}:{their_coupon}", [shinjuku])
    assert stolen.status_code == 404
    with tenant_scope(shinjuku.id):
        assert db.session.scalars(sa.select(Coupon)).first() is None


def test_a_branchs_published_copies_cannot_be_reached_from_another_branch(client):
    organization, (shibuya, shinjuku, _), hq = _group()
    set_id, key = _template(organization, "本文")
    login(client, hq)
    _publish(client, organization, "template", f"library:{set_id}:{key}", [shibuya, shinjuku])
    with platform_scope("test"):
        mine, theirs = (
            db.session.scalars(sa.select(PublishedCopy).filter_by(clinic_id=c.id)).one() for c in (shibuya, shinjuku)
        )
    assert_rows_isolated(PublishedCopy, mine, theirs)
