"""The form page patients open from LINE (``/forms/<clinic_slug>/<token>``): signed in with the
clinic's LINE Login exactly as the booking page is (same session, same callback URL), then
answered on a phone-sized page."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from flask_babel import gettext as _

from saas.booking import patient as booking_patient
from saas.booking import services as booking
from saas.extensions import db
from saas.forms import questions, scenarios, services
from saas.sources.services import add_friend_url

bp = Blueprint("patient", __name__, url_prefix="/forms/<clinic_slug>")
booking_patient.accept_return_to("forms")


def _message(clinic, message: str, status: int = 200, line_url: str | None = None):
    page = render_template("forms/patient_message.html", clinic=clinic, message=message, line_url=line_url)
    return page, status


def _page(clinic, form, friend, values=None, errors=None, status: int = 200):
    page = render_template(
        "forms/patient_form.html",
        clinic=clinic,
        form=form,
        friend=friend,
        values=values or {},
        errors=errors or {},
        kinds=questions.QuestionKind,
    )
    return page, status


def _open(clinic, token: str):
    """(form, friend, None) when the patient may answer, else (None, None, a response)."""
    form = services.get_by_token(token)
    if form is None:
        return None, None, _message(clinic, _("このフォームは現在ご利用いただけません。"), 404)
    if not booking.get_settings(clinic.id).login_ready:
        return None, None, _message(clinic, _("現在、LINEからのご回答は受け付けていません。"), 404)
    patient = booking_patient.signed_in_patient(clinic)
    if patient is None:
        login = url_for("booking.public.login", clinic_slug=clinic.slug, next=request.path)
        return None, None, redirect(login)
    friend = services.friend_for(patient["sub"])
    if friend is None:
        text = _("ご回答の前に、LINEで%(clinic)sを友だち追加してください。", clinic=clinic.name)
        return None, None, _message(clinic, text, 403, add_friend_url(clinic))
    return form, friend, None


@bp.get("/<token>")
@booking_patient.with_clinic
def show(clinic, token: str):
    """The form, for the signed-in patient."""
    form, friend, refusal = _open(clinic, token)
    return refusal if refusal is not None else _page(clinic, form, friend)


@bp.post("/<token>")
@booking_patient.with_clinic
def answer(clinic, token: str):
    """Take the answers: all checked first, then stored and applied at once."""
    form, friend, refusal = _open(clinic, token)
    if refusal is not None:
        return refusal
    values, errors = questions.read_answers(form.questions, request.form)
    if errors:
        return _page(clinic, form, friend, values, errors, 400)
    answer = services.submit(form, friend, values)
    db.session.commit()
    scenarios.form_answered(clinic, friend, form, answer)
    db.session.commit()
    thanks = form.thanks or _("ご回答ありがとうございました。")
    return render_template("forms/patient_done.html", clinic=clinic, form=form, thanks=thanks)
