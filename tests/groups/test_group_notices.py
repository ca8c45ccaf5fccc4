"""Group-wide notices through the sandbox with real RQ burst workers: one composition reaches every
chosen branch's friends through each branch's own channel, rendered for that branch; a branch short
of quota is reported before anything is sent and handled as the sender chose."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from rq import SimpleWorker

from saas.delivery.models import Delivery
from saas.extensions import db
from saas.groups.models import GroupNotice, GroupNoticeBranch
from saas.queues import get_queue, get_redis
from saas.quota.counter import japan_now, month_key
from saas.quota.models import MessageUsage
from saas.tenancy.scoping import platform_scope, tenant_scope
from tests.conftest import csrf_token
from tests.delivery.support import add_friends, connected_clinic, drain
from tests.factories import gen_organization, gen_user
from tests.helpers import login

TEXT = "{{clinic.name}}からのお知らせ：年末年始は12/29〜1/3休診です。お問い合わせ {{clinic.phone}}"


@pytest.fixture
def group(sandbox):
    """医療法人 with three connected branches of three friends each; 池袋院 has 2 messages left this month."""
    organization = gen_organization(name="医療法人社団テスト会")
    names = {
        "shibuya": ("渋谷院", "03-1111-1111"),
        "shinjuku": ("新宿院", "03-2222-2222"),
        "ikebukuro": ("池袋院", "03-3333-3333"),
    }
    branches, friends = {}, {}
    for index, (key, (name, phone)) in enumerate(names.items()):
        plan = "free" if key == "ikebukuro" else "standard"
        clinic = connected_clinic(
            sandbox, f"170100000{index}", plan=plan, organization=organization, name=name, phone=phone
        )
        branches[key], friends[key] = clinic, add_friends(sandbox, clinic, 3)
    with tenant_scope(branches["ikebukuro"].id):
        db.session.add(MessageUsage(clinic_id=branches["ikebukuro"].id, month=month_key(japan_now()), used=198))
        db.session.commit()
    hq = gen_user("admin", organization=organization)
    return organization, branches, friends, hq


def _form(client, branches, **extra) -> dict:
    return {
        "text": TEXT, "clinic_ids": [str(c.id) for c in branches.values()], "shortfall": "skip",
        "action": "send", "csrf_token": csrf_token(client), **extra,
    }  # fmt: skip


def _texts(sandbox_server, clinic, user_ids) -> list[list[str]]:
    patients = sandbox_server.app.extensions["line_sandbox"].channels[clinic.line_channel_id].patients
    return [[entry["message"]["text"] for entry in patients[user].inbox] for user in user_ids]


def _deliveries() -> int:
    with platform_scope("test: counting every branch's deliveries"):
        return db.session.scalar(sa.select(sa.func.count(Delivery.id)))


def test_an_hq_notice_reaches_each_branch_through_its_own_channel_and_skips_the_short_branch(
    client, group, sandbox_server
):
    organization, branches, friends, hq = group
    login(client, hq)
    check = client.post(
        f"/organizations/{organization.slug}/notices/new", data=_form(client, branches, action="preview")
    )
    page = check.get_data(as_text=True)
    assert check.status_code == 200 and "1通不足" in page and _deliveries() == 0  # reported before anything is sent

    sent = client.post(f"/organizations/{organization.slug}/notices/new", data=_form(client, branches))
    assert sent.status_code == 302
    drain()

    for key in ("shibuya", "shinjuku"):
        clinic = branches[key]
        expected = f"{clinic.name}からのお知らせ：年末年始は12/29〜1/3休診です。お問い合わせ {clinic.phone}"
        assert _texts(sandbox_server, clinic, friends[key]) == [[expected]] * 3
    assert _texts(sandbox_server, branches["ikebukuro"], friends["ikebukuro"]) == [[]] * 3
    progress = client.get(sent.headers["Location"]).get_data(as_text=True)
    assert "通数不足のため送信せず" in progress and progress.count('data-status="done"') == 2


def test_the_progress_page_answers_while_branches_are_still_sending(client, group, sandbox_server):
    """Right after 送信, with real workers: every branch planned (sending), its chunks not yet sent.
    The live counts of one branch must not be written from the next branch's tenant scope."""
    organization, branches, friends, hq = group
    login(client, hq)
    sent = client.post(
        f"/organizations/{organization.slug}/notices/new", data=_form(client, branches, shortfall="trim")
    )
    SimpleWorker([get_queue("default")], connection=get_redis()).work(burst=True)  # planning only
    with platform_scope("test: every branch is sending"):
        assert set(db.session.scalars(sa.select(Delivery.status))) == {"sending"}
    db.session.expire_all()

    for headers in ({}, {"HX-Request": "true"}):
        page = client.get(sent.headers["Location"], headers=headers)
        assert page.status_code == 200 and page.get_data(as_text=True).count('data-status="sending"') == 3
    drain()
    done = client.get(sent.headers["Location"]).get_data(as_text=True)
    assert done.count('data-status="done"') == 3


def test_refuse_sends_nothing_in_any_branch_when_one_is_short(client, group, sandbox_server):
    organization, branches, friends, hq = group
    login(client, hq)
    client.post(f"/organizations/{organization.slug}/notices/new", data=_form(client, branches, shortfall="refuse"))
    drain()
    assert _deliveries() == 0
    assert all(_texts(sandbox_server, branches[k], friends[k]) == [[]] * 3 for k in branches)
    notice = db.session.scalars(sa.select(GroupNotice)).one()
    assert "池袋院" in notice.refused_reason


def test_trim_sends_the_short_branch_as_far_as_its_quota_goes(client, group, sandbox_server):
    organization, branches, friends, hq = group
    login(client, hq)
    client.post(f"/organizations/{organization.slug}/notices/new", data=_form(client, branches, shortfall="trim"))
    drain()
    received = [len(inbox) for inbox in _texts(sandbox_server, branches["ikebukuro"], friends["ikebukuro"])]
    assert sorted(received) == [0, 1, 1]
    assert (
        _texts(sandbox_server, branches["shibuya"], friends["shibuya"])
        == [[TEXT.replace("{{clinic.name}}", branches["shibuya"].name).replace("{{clinic.phone}}", "03-1111-1111")]] * 3
    )


def test_an_urgent_group_notice_goes_on_the_urgent_path_to_friends_without_consent(client, sandbox, sandbox_server):
    organization = gen_organization()
    clinics = [connected_clinic(sandbox, f"17020000{i}", organization=organization) for i in range(2)]
    patients = [add_friends(sandbox, clinic, 2, consent_marketing=False) for clinic in clinics]
    login(client, gen_user("admin", organization=organization))
    form = {"text": "{{clinic.name}}：台風のため本日は休診します", "clinic_ids": [str(c.id) for c in clinics], "urgent": "1",
            "shortfall": "skip", "action": "send", "csrf_token": csrf_token(client)}  # fmt: skip
    client.post(f"/organizations/{organization.slug}/notices/new", data=form)
    with platform_scope("test"):
        assert set(db.session.scalars(sa.select(Delivery.kind))) == {"urgent"}
    drain()
    for clinic, users in zip(clinics, patients, strict=True):
        assert _texts(sandbox_server, clinic, users) == [[f"{clinic.name}：台風のため本日は休診します"]] * 2


def test_with_branch_approval_only_approving_branches_send(client, app, group, sandbox_server):
    from saas.groups.models import GroupNoticeSettings

    organization, branches, friends, hq = group
    db.session.add(GroupNoticeSettings(organization_id=organization.id, approval_required=True, approval_hours=24))
    db.session.commit()
    login(client, hq)
    client.post(f"/organizations/{organization.slug}/notices/new", data=_form(client, branches))
    drain()
    assert _deliveries() == 0
    shibuya_admin, shinjuku_admin = (
        gen_user("admin", clinic=branches["shibuya"]),
        gen_user("admin", clinic=branches["shinjuku"]),
    )
    rows = {}
    with platform_scope("test"):
        for row in db.session.scalars(sa.select(GroupNoticeBranch)):
            rows[row.clinic_id] = row.id
    first, second = app.test_client(), app.test_client()
    login(first, shibuya_admin)
    base = f"/c/{branches['shibuya'].slug}/group-notices"
    assert "承認して送信" in first.get(base).get_data(as_text=True)
    foreign = first.post(f"{base}/{rows[branches['shinjuku'].id]}/approve", data={"csrf_token": csrf_token(first)})
    assert foreign.status_code == 404  # another branch's part is not even visible
    first.post(f"{base}/{rows[branches['shibuya'].id]}/approve", data={"csrf_token": csrf_token(first)})
    login(second, shinjuku_admin)
    second.post(
        f"/c/{branches['shinjuku'].slug}/group-notices/{rows[branches['shinjuku'].id]}/decline",
        data={"csrf_token": csrf_token(second)},
    )
    drain()
    assert all(len(inbox) == 1 for inbox in _texts(sandbox_server, branches["shibuya"], friends["shibuya"]))
    assert _texts(sandbox_server, branches["shinjuku"], friends["shinjuku"]) == [[]] * 3


def test_an_answer_after_the_deadline_sends_nothing(client, group):
    from datetime import timedelta

    from saas.common import utcnow
    from saas.groups import notices

    organization, branches, _, hq = group
    notice = GroupNotice(organization_id=organization.id, title="t", messages=[{"type": "text", "text": "x"}],
                         approval_deadline=utcnow() - timedelta(minutes=1))  # fmt: skip
    db.session.add(notice)
    db.session.flush()
    clinic = branches["shibuya"]
    with tenant_scope(clinic.id):
        branch = GroupNoticeBranch(clinic_id=clinic.id, notice_id=notice.id, state="awaiting_approval")
        db.session.add(branch)
        db.session.commit()
        assert notices.decide(branch, True, hq) == "expired"
    assert _deliveries() == 0


def test_another_organizations_admin_cannot_see_or_send_its_notices(client, group):
    organization, branches, _, _ = group
    outsider = gen_user("admin", organization=gen_organization())
    login(client, outsider)
    assert client.get(f"/organizations/{organization.slug}/notices").status_code == 404
    assert (
        client.post(f"/organizations/{organization.slug}/notices/new", data=_form(client, branches)).status_code == 404
    )
    assert _deliveries() == 0


def test_a_notice_with_a_guideline_block_finding_is_sent_only_with_the_hq_admins_audited_approval(
    client, group, sandbox_server
):
    from saas.audit.models import AuditEvent

    organization, branches, friends, hq = group
    login(client, hq)
    claim = "{{clinic.name}}は日本一の技術で必ず治ります"
    url = f"/organizations/{organization.slug}/notices/new"
    check = client.post(url, data=_form(client, branches, text=claim, action="preview"))
    assert 'data-testid="adcheck-gate"' in check.get_data(as_text=True) and "日本一" in check.get_data(as_text=True)
    refused = client.post(url, data=_form(client, branches, text=claim))
    assert refused.status_code == 422 and "管理者" in refused.get_data(as_text=True)
    assert _deliveries() == 0 and db.session.scalars(sa.select(GroupNotice)).all() == []

    approved = client.post(url, data=_form(client, branches, text=claim, adcheck_approve="1", adcheck_ack="1"))
    assert approved.status_code == 302
    drain()
    received = _texts(sandbox_server, branches["shibuya"], friends["shibuya"])
    assert [len(texts) for texts in received] == [1, 1, 1]
    assert all(t.startswith("渋谷院") and t.endswith("は日本一の技術で必ず治ります") for [t] in received)
    with platform_scope("test: the approval is audited"):
        actions = db.session.scalars(sa.select(AuditEvent.action)).all()
    assert "adcheck.approve" in actions
