"""API: FAQ rules, the schedule and closures (休診 from an agency's calendar), manifests."""

from __future__ import annotations

import re
from typing import NamedTuple

import sqlalchemy as sa
from flask import g

from saas import billing
from saas.adcheck import services as adcheck
from saas.adcheck.rules import Severity
from saas.api import paging
from saas.api.blueprint import api_actor, api_bp
from saas.api.idempotency import run_once
from saas.api.problems import ApiProblem
from saas.api.schemas import (
    BlockOut,
    ClinicSectionIn,
    ClosureIn,
    ClosureOut,
    ClosurePage,
    ClosureQuery,
    ManifestOut,
    ManifestOutcome,
    ManifestQuery,
    PageQuery,
    RuleIn,
    RuleOut,
    RulePage,
    ScheduleOut,
)
from saas.api.spec import operation
from saas.audit.services import record
from saas.autoreply.matcher import MAX_UNGUARDED_REGEX_RULES
from saas.autoreply.models import AutoReplyRule, MatchType
from saas.delivery import services as deliveries
from saas.delivery.models import Delivery
from saas.extensions import db
from saas.manifests import export
from saas.manifests.apply import ManifestError, apply_clinic_section
from saas.manifests.schema import ClinicSpec
from saas.schedule import services as schedule
from saas.schedule.models import WEEKDAYS, Closure, UrgentNoticeRequest

# ---- FAQ rules ----------------------------------------------------------------------------------


def rule_out(rule: AutoReplyRule) -> RuleOut:
    texts = [m.get("text", "") for m in rule.messages or [] if m.get("type") == "text"]
    return RuleOut(
        id=rule.id, name=rule.name, match_type=rule.match_type, keywords=list(rule.keywords or []),
        required_literal=rule.required_literal, priority=rule.priority, enabled=rule.enabled,
        active_from=rule.active_from, active_until=rule.active_until, reply=texts, computed=rule.computed or "",
    )  # fmt: skip


def _rule(rule_id: int) -> AutoReplyRule:
    rule = db.session.get(AutoReplyRule, rule_id)
    if rule is None:
        raise ApiProblem(404, "No such FAQ rule in this clinic.")
    return rule


def _check_rule(body: RuleIn, rule_id: int | None) -> None:
    if body.match_type != MatchType.REGEX:
        return
    for index, pattern in enumerate(body.keywords):
        try:
            re.compile(pattern)
        except re.error as error:
            raise ApiProblem(
                422, "A keyword is not a valid regular expression.",
                errors=[{"in": "body", "pointer": f"/keywords/{index}", "detail": str(error)}],
            ) from error  # fmt: skip
    if not body.required_literal:
        others = sa.select(sa.func.count()).where(
            AutoReplyRule.match_type == MatchType.REGEX, AutoReplyRule.required_literal == "",
            AutoReplyRule.id != (rule_id or 0),
        )  # fmt: skip
        if db.session.scalar(others) >= MAX_UNGUARDED_REGEX_RULES:
            raise ApiProblem(422, f"At most {MAX_UNGUARDED_REGEX_RULES} regex rules without required_literal.")


def _check_guideline(body: RuleIn) -> None:
    """Block-level 医療広告ガイドライン findings need an administrator's approval, which only the
    portal's FAQ form can record: the API refuses them, naming each phrase."""
    texts = {f"/reply/{index}": text for index, text in enumerate(body.reply)}
    blocks = [f for f in adcheck.check_texts(g.clinic, texts) if f.severity == Severity.BLOCK]
    if blocks:
        raise ApiProblem(
            422, "The reply has phrases the medical advertising guideline forbids; an administrator must "
            "approve them in the portal (FAQ・自動応答).",
            errors=[{"in": "body", "pointer": f.field, "detail": f"「{f.phrase}」: {f.title}"} for f in blocks],
        )  # fmt: skip


def _fill(rule: AutoReplyRule, body: RuleIn) -> AutoReplyRule:
    values = body.model_dump(exclude={"reply"})
    for name, value in values.items():
        setattr(rule, name, value)
    rule.messages = [{"type": "text", "text": text} for text in body.reply]
    db.session.add(rule)
    db.session.commit()
    return rule


@operation(
    api_bp,
    "GET",
    "/clinics/<clinic_slug>/faq-rules",
    summary="List FAQ rules",
    tag="faq",
    permission="autoreply.edit",
    query=PageQuery,
    response=RulePage,
)
def list_rules(clinic_slug: str, query: PageQuery):
    """The clinic's own keyword rules (the shared library's FAQ is managed in the portal)."""
    rows, cursor = paging.page(sa.select(AutoReplyRule), AutoReplyRule.id, query)
    return RulePage(data=[rule_out(r) for r in rows], next_cursor=cursor)


@operation(
    api_bp,
    "POST",
    "/clinics/<clinic_slug>/faq-rules",
    summary="Create a FAQ rule",
    tag="faq",
    permission="autoreply.edit",
    body=RuleIn,
    response=RuleOut,
    status=201,
)
def create_rule(clinic_slug: str, body: RuleIn):
    """A keyword rule (exact / contains / regex, matched after Japanese normalisation)."""
    _check_rule(body, None)
    _check_guideline(body)
    return rule_out(_fill(AutoReplyRule(), body))


@operation(
    api_bp,
    "GET",
    "/clinics/<clinic_slug>/faq-rules/<int:rule_id>",
    summary="Get a FAQ rule",
    tag="faq",
    permission="autoreply.edit",
    response=RuleOut,
)
def get_rule(clinic_slug: str, rule_id: int):
    """One rule."""
    return rule_out(_rule(rule_id))


@operation(
    api_bp,
    "PUT",
    "/clinics/<clinic_slug>/faq-rules/<int:rule_id>",
    summary="Replace a FAQ rule",
    tag="faq",
    permission="autoreply.edit",
    body=RuleIn,
    response=RuleOut,
)
def update_rule(clinic_slug: str, rule_id: int, body: RuleIn):
    """Replace every field of the rule."""
    rule = _rule(rule_id)
    _check_rule(body, rule.id)
    _check_guideline(body)
    rule.computed = ""
    return rule_out(_fill(rule, body))


@operation(
    api_bp,
    "DELETE",
    "/clinics/<clinic_slug>/faq-rules/<int:rule_id>",
    summary="Delete a FAQ rule",
    tag="faq",
    permission="autoreply.edit",
    status=204,
)
def delete_rule(clinic_slug: str, rule_id: int):
    """Remove the rule; the bot stops using it at once."""
    db.session.delete(_rule(rule_id))
    db.session.commit()


# ---- schedule and closures ----------------------------------------------------------------------


@operation(
    api_bp,
    "GET",
    "/clinics/<clinic_slug>/schedule",
    summary="Get the weekly schedule",
    tag="schedule",
    permission="clinic.view",
    response=ScheduleOut,
)
def get_schedule(clinic_slug: str):
    """Weekly opening blocks and whether public holidays are closed."""
    week = schedule.weekly_blocks(g.clinic.id)
    weekly = {WEEKDAYS[day]: [BlockOut(**vars(block)) for block in blocks] for day, blocks in week.items()}
    settings = schedule.get_settings(g.clinic.id)
    return ScheduleOut(closed_on_public_holidays=settings.closed_on_public_holidays, weekly=weekly)


class NoticeState(NamedTuple):
    status: str = "none"
    delivery_id: int | None = None


NO_NOTICE = NoticeState()


def urgent_notice_states(closure_ids: list[int]) -> dict[int, NoticeState]:
    """Each closure's latest urgent notice and the delivery it became, in one query."""
    rows = db.session.execute(
        sa.select(UrgentNoticeRequest.closure_id, UrgentNoticeRequest.status, Delivery.id)
        .outerjoin(Delivery, Delivery.urgent_notice_id == UrgentNoticeRequest.id)
        .where(UrgentNoticeRequest.closure_id.in_(closure_ids))
        .order_by(UrgentNoticeRequest.id)
    )
    return {closure_id: NoticeState(status, delivery_id) for closure_id, status, delivery_id in rows}


def closure_out(closure: Closure, notice: NoticeState = NO_NOTICE) -> ClosureOut:
    return ClosureOut(
        id=closure.id, kind=closure.kind, starts_on=closure.starts_on, ends_on=closure.ends_on,
        blocks=closure.block_labels, reason=closure.reason, substitute_doctor=closure.substitute_doctor,
        notify_friends=closure.notify_friends, notice_text=schedule.notice_text(g.clinic, closure),
        notice_status=notice.status, delivery_id=notice.delivery_id,
    )  # fmt: skip


@operation(
    api_bp,
    "GET",
    "/clinics/<clinic_slug>/closures",
    summary="List closures",
    tag="schedule",
    permission="clinic.view",
    query=ClosureQuery,
    response=ClosurePage,
)
def list_closures(clinic_slug: str, query: ClosureQuery):
    """休診 and 代診 ending on or after `from_date` (default today), in id order."""
    first = query.from_date or schedule.clinic_now(g.clinic).date()
    rows, cursor = paging.page(sa.select(Closure).where(Closure.ends_on >= first), Closure.id, query)
    notices = urgent_notice_states([closure.id for closure in rows])
    return ClosurePage(data=[closure_out(c, notices.get(c.id, NO_NOTICE)) for c in rows], next_cursor=cursor)


def _post_closure(body: ClosureIn) -> tuple[dict, int]:
    ends_on = body.ends_on or body.starts_on
    if ends_on < body.starts_on:
        raise ApiProblem(422, "ends_on is before starts_on.")
    if body.notify != "none" and ends_on < schedule.clinic_now(g.clinic).date():
        raise ApiProblem(422, "A closure in the past cannot be sent to friends.")
    closure = Closure(
        kind=body.kind, starts_on=body.starts_on, ends_on=ends_on, blocks=",".join(body.blocks),
        reason=body.reason.strip(), substitute_doctor=body.substitute_doctor.strip(),
        notify_friends=body.notify == "urgent",
    )  # fmt: skip
    db.session.add(closure)
    db.session.flush()
    if body.notify == "urgent":
        schedule.request_urgent_notice(g.clinic.id, closure.id)  # starts on commit (saas.delivery.urgent)
    record(
        "closure.create",
        target_type="closure",
        target_id=closure.id,
        details={"notify": body.notify},
        actor=api_actor(),
    )
    db.session.commit()
    if body.notify == "consenting":
        notice = NoticeState("sent", _send_to_consenting(closure))
    else:
        notice = urgent_notice_states([closure.id]).get(closure.id, NO_NOTICE)
    return closure_out(closure, notice).model_dump(mode="json"), 201


def _send_to_consenting(closure: Closure) -> int:
    text = schedule.notice_text(g.clinic, closure)
    delivery = deliveries.create_delivery(messages=[{"type": "text", "text": text}], actor=api_actor())
    try:
        deliveries.submit(delivery)
    except deliveries.QueueUnavailable as error:
        raise ApiProblem(503, "The closure is saved, but the send queue is unreachable: nothing was sent.") from error
    except billing.MarketingPaused:
        pass  # the notice to consenting friends is marketing: it ended refused with billing's reason
    return delivery.id


@operation(
    api_bp,
    "POST",
    "/clinics/<clinic_slug>/closures",
    summary="Post a closure (休診・代診)",
    tag="schedule",
    permission="schedule.edit",
    body=ClosureIn,
    response=ClosureOut,
    status=201,
    idempotency="optional",
    errors=(409, 503),
)
def create_closure(clinic_slug: str, body: ClosureIn):
    """Add a 休診 or 代診: the auto-replies and the greeting use it at once. With `notify`, friends are
    told (send an Idempotency-Key then, so a retried call never tells them twice)."""
    return run_once(lambda: _post_closure(body), required=False)


@operation(
    api_bp,
    "DELETE",
    "/clinics/<clinic_slug>/closures/<int:closure_id>",
    summary="Delete a closure",
    tag="schedule",
    permission="schedule.edit",
    status=204,
)
def delete_closure(clinic_slug: str, closure_id: int):
    """Remove a closure; a notice not yet picked up by the send pipeline is cancelled."""
    closure = db.session.get(Closure, closure_id)
    if closure is None:
        raise ApiProblem(404, "No such closure in this clinic.")
    db.session.execute(
        sa.update(UrgentNoticeRequest)
        .where(UrgentNoticeRequest.closure_id == closure.id, UrgentNoticeRequest.status == "pending")
        .values(status="cancelled")
    )
    db.session.delete(closure)
    db.session.commit()


# ---- manifests ----------------------------------------------------------------------------------


@operation(
    api_bp,
    "GET",
    "/clinics/<clinic_slug>/manifest",
    summary="Export the clinic's manifest",
    tag="manifests",
    permission="clinic.settings",
    response=ManifestOut,
)
def export_manifest(clinic_slug: str):
    """The manifest that recreates the clinic (what `flask tenants export` writes)."""
    manifest = export.manifest_for(g.clinic)
    answer = ManifestOut(
        manifest=manifest.model_dump(mode="json", exclude_defaults=True), yaml=export.to_yaml(manifest)
    )
    db.session.rollback()  # export only reads; defaults rows it may have created are dropped
    return answer


@operation(
    api_bp,
    "POST",
    "/clinics/<clinic_slug>/manifest",
    summary="Apply the clinic's section of a manifest",
    tag="manifests",
    permission="clinic.settings",
    query=ManifestQuery,
    body=ClinicSectionIn,
    response=ManifestOutcome,
)
def apply_manifest(clinic_slug: str, query: ManifestQuery, body: ClinicSectionIn):
    """Apply a clinic section (the `clinics[]` entry of a manifest) to this clinic. `dry_run`
    (the default) lists the changes and applies nothing; a field left out is left as it is."""
    values = body.model_dump(exclude_unset=True) | {
        "slug": body.slug or g.clinic.slug,
        "name": body.name or g.clinic.name,
    }
    section = ClinicSpec.model_validate({key: value for key, value in values.items() if key in ClinicSpec.model_fields})
    try:
        outcome = apply_clinic_section(g.clinic, section, dry_run=query.dry_run, name="api")
    except ManifestError as error:
        errors = [
            {"in": "body", "pointer": "/" + path.replace(".", "/"), "detail": reason}
            for path, reason in [(error.path, error.reason), *error.others]
        ]
        raise ApiProblem(422, "The manifest cannot be applied; nothing was changed.", errors=errors) from error
    if not query.dry_run:
        record(
            "manifest.apply",
            target_type="clinic",
            target_id=g.clinic.id,
            details={"changes": outcome.changes[:100]},
            actor=api_actor(),
            commit=True,
        )
    return ManifestOutcome(dry_run=query.dry_run, changes=outcome.changes, warnings=outcome.warnings)
