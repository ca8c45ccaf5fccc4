"""An agency's single sign-on providers (OpenID Connect) in the portal: what `flask sso add` does."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from saas.audit.services import record
from saas.extensions import db
from saas.groups import services
from saas.library.models import Level
from saas.members.models import SsoProvider

bp = Blueprint("sso", __name__)


def _agency(slug: str):
    shared = services.find_level(Level.AGENCY, slug)
    if not services.can_manage(current_user, shared):
        abort(404)  # another agency's sign-in settings are not even acknowledged
    return shared


def _problem(form) -> str | None:
    if not form.get("name", "").strip() or not form.get("client_id", "").strip() or not form.get("client_secret"):
        return _("名前・クライアントID・クライアントシークレットを入力してください。")
    if not form.get("metadata_url", "").startswith("https://"):
        return _("メタデータURLは https:// で始めてください。")
    domains = [d.strip() for d in form.get("domains", "").split(",") if d.strip()]
    if not domains or any("." not in d or "@" in d for d in domains):
        return _("メールドメインをカンマ区切りで入力してください（例: example-clinic.jp）。")
    return None


@bp.route("/agencies/<slug>/sso", methods=["GET", "POST"])
@login_required
def providers(slug: str):
    """The agency's providers, and the form to add one (the secret is stored encrypted, never shown)."""
    shared, problem = _agency(slug), None
    if request.method == "POST":
        form = request.form
        problem = _problem(form)
        if problem is None:
            provider = SsoProvider(
                agency_id=shared.id, name=form["name"].strip()[:100], metadata_url=form["metadata_url"].strip()[:500],
                client_id=form["client_id"].strip()[:200], client_secret=form["client_secret"],
                email_domains=form["domains"].replace(" ", "").lower()[:500],
            )  # fmt: skip
            db.session.add(provider)
            db.session.flush()
            record(
                "sso_provider.create",
                target_type="sso_provider",
                target_id=provider.id,
                details={"domains": provider.email_domains},
            )
            db.session.commit()
            flash(_("SSOプロバイダ「%(n)s」を登録しました。", n=provider.name), "success")
            return redirect(url_for(".providers", slug=slug))
    rows = db.session.scalars(
        sa.select(SsoProvider).where(SsoProvider.agency_id == shared.id).order_by(SsoProvider.id)
    ).all()
    return render_template("groups/sso.html", shared=shared, providers=rows, problem=problem), 422 if problem else 200


@bp.post("/agencies/<slug>/sso/<int:provider_id>/toggle")
@login_required
def toggle(slug: str, provider_id: int):
    """Turn a provider off (staff sign in with their password again) or back on."""
    shared = _agency(slug)
    provider = db.session.get(SsoProvider, provider_id)
    if provider is None or provider.agency_id != shared.id:
        abort(404)
    provider.enabled = not provider.enabled
    record(
        "sso_provider.update", target_type="sso_provider", target_id=provider.id, details={"enabled": provider.enabled}
    )
    db.session.commit()
    return redirect(url_for(".providers", slug=slug))
