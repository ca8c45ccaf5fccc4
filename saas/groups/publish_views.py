"""Pages where HQ publishes templates, scenarios and coupons to its branches: pick a source, choose
branches, see per branch what will change (and where a branch edited its copy), then publish."""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from saas.audit.services import record
from saas.common import parse_ids
from saas.extensions import db
from saas.groups import publishing
from saas.groups.models import PublishKind
from saas.groups.notice_views import headquarters
from saas.tenancy.models import Organization

bp = Blueprint("publish", __name__)
KIND_LABELS = {
    PublishKind.TEMPLATE: _l("テンプレート"),
    PublishKind.SCENARIO: _l("ステップ配信のシナリオ"),
    PublishKind.COUPON: _l("クーポン"),
}
PLAN_LABELS = {
    "new": (_l("新しく追加（下書き）"), "status-ok"),
    "unchanged": (_l("変更なし"), ""),
    "update": (_l("更新"), "status-ok"),
    "edited": (_l("院で編集されています"), "status-warn"),
    "missing": (_l("院で削除されています"), "status-warn"),
}


@bp.app_context_processor
def _labels():
    return {"publish_kinds": KIND_LABELS, "publish_plans": PLAN_LABELS}


@bp.app_template_global("hq_copies")
def hq_copies(kind: str) -> set[int]:
    """Ids of the current clinic's coupons or scenarios that HQ published (marked 「法人本部から」)."""
    return set(publishing.copies_in_branch(kind))


@bp.app_template_global("hq_templates")
def hq_templates() -> set[tuple[int, str]]:
    """(set id, item key) of the current clinic's own versions of templates that HQ published."""
    return publishing.templates_in_branch()


def _organization() -> Organization:
    return db.session.get(Organization, g.shared.id)


@bp.get("/organizations/<slug>/publish")
@login_required
@headquarters
def index():
    """What can be published, and what was, with whether its source changed since."""
    found = publishing.sources(_organization(), g.branches)
    current = {(s.kind, s.ref): s for s in found}
    return render_template(
        "groups/publish_index.html", shared=g.shared, sources=found, publications=publishing.publications(_organization()),
        current=current,
    )  # fmt: skip


def _source():
    kind, ref = request.values.get("kind", ""), request.values.get("source", "")
    source = publishing.find_source(_organization(), g.branches, ref, kind)
    if source is None:
        abort(404)  # not this organization's (or no such thing)
    return source


def _targets(source: publishing.Source) -> list:
    """Branches that may receive it: all of them but the branch it comes from."""
    return [b for b in g.branches if b.id != source.branch_id]


def _chosen(form, targets: list) -> list:
    if request.method == "GET":
        return targets
    ids = set(form.getlist("clinic_ids"))
    return [b for b in targets if str(b.id) in ids]


@bp.route("/organizations/<slug>/publish/item", methods=["GET", "POST"])
@login_required
@headquarters
def publish():
    """確認 shows per branch what will be added or changed; 配信する writes the branches' copies."""
    source, form = _source(), request.form
    publication = publishing.publication_for(_organization(), source)
    targets = _targets(source)
    branches = _chosen(form, targets)
    plans = publishing.plan(branches, source, publication)
    if request.method == "POST" and form.get("action") == "publish" and branches:
        overwrite = {i for i in parse_ids(form.getlist("overwrite")) if i}
        publication, result = publishing.publish(_organization(), source, plans, overwrite, current_user)
        record("group_publication.publish", target_type="group_publication", target_id=publication.id,
               details={"kind": source.kind, "source": source.ref, "version": publication.version,
                        "written": result.written, "kept": result.kept, "unchanged": result.unchanged,
                        "problems": result.problems}, commit=True)  # fmt: skip
        _flash(result)
        return redirect(url_for(".index", slug=g.shared.slug))
    problem = _("配布する院を1つ以上選んでください") if request.method == "POST" and not branches else None
    page = render_template(
        "groups/publish_item.html", shared=g.shared, source=source, publication=publication, plans=plans,
        branches=targets, chosen={b.id for b in branches}, problem=problem, form=form,
    )  # fmt: skip
    return page, 422 if problem else 200


def _flash(result: publishing.Result) -> None:
    if result.written:
        flash(_("配布しました: %(names)s", names="、".join(result.written)), "success")
    if result.kept:
        flash(_("院で編集されているため上書きしませんでした: %(names)s", names="、".join(result.kept)), "info")
    for name, why in result.problems:
        flash(_("%(name)s には配布できませんでした: %(why)s", name=name, why=why), "danger")
    if not (result.written or result.kept or result.problems):
        flash(_("どの院も最新です。変更はありません。"), "info")
