"""The tracked add-friend link of a source: ``/add/<clinic_slug>/<token>`` → LINE Login with the
add-friend prompt → ``/add/<clinic_slug>/callback`` → LINE (see :mod:`saas.sources.services`)."""

from __future__ import annotations

import secrets
from functools import wraps

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from saas.booking import services as booking
from saas.extensions import db
from saas.line import login as line_login
from saas.line.errors import LineError
from saas.sources import services
from saas.sources.models import InflowSource, ScanOutcome, SourceScan
from saas.tenancy.models import Clinic
from saas.tenancy.scoping import tenant_scope

bp = Blueprint("public", __name__, url_prefix="/add/<clinic_slug>")
FLOW_KEY = "source_login_flow"


def tracked_url(source: InflowSource) -> str:
    """The URL a source's QR code encodes."""
    clinic = db.session.get(Clinic, source.clinic_id)
    return f"{current_app.config['PUBLIC_BASE_URL'].rstrip('/')}/add/{clinic.slug}/{source.token}"  # usable in jobs too


def login_ready(clinic) -> bool:
    """Whether scans can be bound to LINE users (the clinic has a LINE Login channel)."""
    return booking.get_settings(clinic.id).login_ready


def _channel(clinic) -> line_login.LoginChannel:
    settings = booking.get_settings(clinic.id)
    return line_login.LoginChannel(settings.login_channel_id, settings.login_channel_secret)


def _callback_uri(clinic) -> str:
    return current_app.config["PUBLIC_BASE_URL"].rstrip("/") + url_for(".callback", clinic_slug=clinic.slug)


def with_clinic(view):
    """Load the clinic from the URL slug and run the view in its tenant scope."""

    @wraps(view)
    def wrapped(clinic_slug: str, **kwargs):
        clinic = db.session.scalar(sa.select(Clinic).where(Clinic.slug == clinic_slug))
        if clinic is None:
            abort(404)
        with tenant_scope(clinic.id):
            return view(clinic, **kwargs)

    return wrapped


def _message(clinic, message: str, status: int = 200, line_url: str | None = None):
    page = render_template("sources/patient_message.html", clinic=clinic, message=message, line_url=line_url)
    return page, status


@bp.get("/<token>")
@with_clinic
def scan(clinic, token: str):
    """A patient scanned the QR: count it, then sign in with LINE (or go straight to LINE)."""
    source = services.get_by_token(token)
    if source is None:
        return _message(clinic, _("このQRコードは現在ご利用いただけません。"), 404)
    scan_row = services.record_opening(source)
    db.session.commit()
    add_friend = services.add_friend_url(clinic)
    if not login_ready(clinic):
        return redirect(add_friend) if add_friend else _message(clinic, _("準備中です。"), 404)
    flow = {
        "clinic": clinic.id,
        "scan": scan_row.id,
        "state": secrets.token_urlsafe(24),
        "nonce": secrets.token_urlsafe(24),
        "verifier": secrets.token_urlsafe(48),
    }
    session[FLOW_KEY] = flow
    url = line_login.authorization_url(
        _channel(clinic),
        _callback_uri(clinic),
        state=flow["state"],
        nonce=flow["nonce"],
        code_verifier=flow["verifier"],
    )
    joiner = "&" if "?" in url else "?"
    return redirect(url + joiner + "bot_prompt=aggressive")


def _identity(clinic, flow: dict) -> line_login.LineIdentity | None:
    tokens = line_login.exchange_code(_channel(clinic), _callback_uri(clinic), request.args["code"], flow["verifier"])
    return line_login.verify_id_token(tokens.get("id_token", ""), _channel(clinic), nonce=flow["nonce"])


@bp.get("/callback")
@with_clinic
def callback(clinic):
    """Back from LINE Login: bind the scan to the LINE user, then open the clinic in LINE."""
    flow = session.pop(FLOW_KEY, None)
    state = request.args.get("state", "")
    add_friend = services.add_friend_url(clinic)
    if not flow or flow["clinic"] != clinic.id or not secrets.compare_digest(state, flow["state"]):
        return _message(clinic, _("有効期限が切れました。もう一度QRコードを読み取ってください。"), 400)
    if "error" in request.args or not request.args.get("code"):
        return redirect(add_friend) if add_friend else _message(clinic, _("LINEログインがキャンセルされました。"), 400)
    try:
        identity = _identity(clinic, flow)
    except (line_login.IdTokenInvalid, LineError) as exc:
        current_app.logger.warning("source sign-in failed for clinic %s: %s", clinic.id, exc)
        return _message(clinic, _("LINEログインを確認できませんでした。"), 400, add_friend)
    scan_row = db.session.get(SourceScan, flow["scan"])
    if scan_row is None or scan_row.outcome != ScanOutcome.OPENED:
        return _message(clinic, _("有効期限が切れました。もう一度QRコードを読み取ってください。"), 400)
    changed = request.args.get("friendship_status_changed") == "true"
    outcome = services.bind_sign_in(clinic, scan_row, identity.user_id, changed)
    if outcome == ScanOutcome.PENDING and not changed and add_friend:
        return redirect(add_friend)  # not a friend yet: LINE's own add-friend screen
    text = _("ご来院ありがとうございます。") if outcome == ScanOutcome.VISIT else _("友だち追加ありがとうございます。")
    return _message(clinic, text, 200, add_friend)
