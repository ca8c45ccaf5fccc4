"""After a failed payment: warn the billing owners, then after a grace period pause marketing.

Patients are never cut off by a billing problem: only sends that need marketing consent
(broadcasts, segments, 1:1 pushes from 配信, steps, new campaigns) ask ``allows_marketing``.
Auto-replies, the inbox, booking, reminders and urgent notices never do. Paying (Stripe says the
subscription is active again) restores everything at once. Every transition is audited.

Steps (each sent once): the failure → a warning; one day before the grace ends → a reminder;
the grace ends (``BILLING_GRACE_DAYS``, 7) → marketing paused and a notice. ``advance`` runs
the time-driven steps (cron, every 15 minutes); the failure and the restoration follow the
subscription as soon as its webhook arrives.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import current_app

from saas import mail
from saas.audit.services import record
from saas.billing import accounts
from saas.billing.models import FAILING_STATUSES, BillingAccount, DunningStep, status_in_japanese
from saas.common import to_local, utcnow

log = logging.getLogger(__name__)
DEFAULT_GRACE_DAYS = 7


def grace() -> timedelta:
    return timedelta(days=float(current_app.config.get("BILLING_GRACE_DAYS") or DEFAULT_GRACE_DAYS))


def pause_at(account: BillingAccount) -> datetime | None:
    """When marketing pauses (or paused) in the current dunning."""
    return account.payment_failed_at + grace() if account.payment_failed_at else None


def allows_marketing(clinic) -> bool:
    """Whether this clinic may submit or plan a marketing send (not urgent notices, replies, reminders).

    False while the account paying for the clinic has marketing paused after an unpaid invoice's
    grace period, or its subscription ended unpaid or cancelled. A clinic nobody pays for yet
    (onboarding, billing not configured) is allowed.
    """
    account = accounts.account_for_clinic(clinic)
    return account is None or not account.marketing_paused


def follow_subscription(account: BillingAccount, now: datetime | None = None) -> None:
    """Start dunning when the subscription falls past due; end it when it is paid again."""
    now = now or utcnow()
    failing = account.status in FAILING_STATUSES
    if failing and account.payment_failed_at is None:
        account.payment_failed_at, account.dunning_step = now, DunningStep.WARNED
        _audit(account, "billing.payment_failed", {"pause_at": _japan(pause_at(account))})
        _notify(account, "failed")
    elif not failing and account.status in ("active", "trialing") and account.payment_failed_at is not None:
        _restore(account)


def _restore(account: BillingAccount) -> None:
    was_paused = account.marketing_paused_at is not None
    account.payment_failed_at, account.marketing_paused_at, account.dunning_step = None, None, DunningStep.NONE
    _audit(account, "billing.restored", {"marketing_was_paused": was_paused}, per_clinic=was_paused)
    _notify(account, "restored")


def advance(account: BillingAccount, now: datetime | None = None) -> None:
    """Send the reminder and pause marketing when their time has come (safe to run any number of times)."""
    now = now or utcnow()
    if account.payment_failed_at is None or account.status not in FAILING_STATUSES:
        return
    ends = pause_at(account)
    if account.dunning_step < DunningStep.PAUSED and now >= ends:
        account.marketing_paused_at, account.dunning_step = now, DunningStep.PAUSED
        _audit(
            account,
            "billing.marketing_paused",
            {"payment_failed_at": _japan(account.payment_failed_at)},
            per_clinic=True,
        )
        _notify(account, "paused")
    elif account.dunning_step < DunningStep.REMINDED and now >= ends - timedelta(days=1):
        account.dunning_step = DunningStep.REMINDED
        _audit(account, "billing.payment_reminder", {"pause_at": _japan(ends)})
        _notify(account, "reminder")


def _japan(moment: datetime) -> str:
    """A time in audit details as staff read it (Japan time), not an ISO UTC stamp."""
    return f"{to_local(moment):%Y/%m/%d %H:%M}"


def _audit(account: BillingAccount, action: str, details: dict, *, per_clinic: bool = False) -> None:
    """One event for the account; with ``per_clinic`` also one in each counted clinic's log."""
    payer = accounts.payer_of_account(account)
    details = {"payer": payer.name, "status": status_in_japanese(account.status), **details}
    record(action, target_type="billing_account", target_id=account.id, details=details, actor_email="stripe")
    if per_clinic:
        for clinic in accounts.counted_clinics(payer):
            record(
                action,
                clinic_id=clinic.id,
                target_type="billing_account",
                target_id=account.id,
                details=details,
                actor_email="stripe",
            )


SUBJECTS = {
    "failed": "【Tsunagu】お支払いを確認できませんでした",
    "reminder": "【Tsunagu】明日から一斉配信が一時停止されます（お支払い未確認）",
    "paused": "【Tsunagu】一斉配信を一時停止しました（お支払い未確認）",
    "restored": "【Tsunagu】お支払いを確認しました。配信を再開できます",
}
INTRO = {
    "failed": "ご登録のカードでのお支払いができませんでした。",
    "reminder": "お支払いがまだ確認できていません。",
    "paused": "お支払いが確認できないため、一斉配信・セグメント配信・ステップ配信・新しいキャンペーンを一時停止しました。",
    "restored": "お支払いを確認しました。一斉配信・ステップ配信などは今から再開できます。",
}
PATIENTS_SAFE = (
    "患者さんへの自動応答、1:1チャット、予約、リマインド、緊急のお知らせ（休診・代診）は"
    "お支払いの状況にかかわらず、これまでどおり動いています。"
)


def _body(account: BillingAccount, step: str, payer) -> str:
    link = f"{current_app.config['PUBLIC_BASE_URL'].rstrip('/')}/billing/{payer.level}/{payer.slug}/"
    lines = [f"{payer.name} ご担当者様", "", INTRO[step]]
    if step in ("failed", "reminder"):
        lines.append(
            f"{to_local(pause_at(account)):%Y年%m月%d日 %H:%M} までにお支払いが確認できない場合、"
            "一斉配信・ステップ配信などを一時停止します。"
        )
    if step != "restored":
        lines += ["", "カードの更新・お支払いは、ご契約・お支払いのページの「カスタマーポータル」からできます。"]
    lines += ["", PATIENTS_SAFE, "", link]
    return "\n".join(lines)


def _notify(account: BillingAccount, step: str) -> None:
    """Mail every billing manager (and the billing address) through saas.mail; failures are logged."""
    payer = accounts.payer_of_account(account)
    recipients = {user.email for user in accounts.managers(payer)} | ({account.billing_email} - {""})
    body = _body(account, step, payer)
    for address in sorted(recipients):
        try:
            mail.send(address, SUBJECTS[step], body)
        except OSError as error:  # smtplib errors are OSErrors: the state change stands, the log says who missed it
            log.error("billing: %s mail to %s failed: %s", step, address, error)


def banner(account: BillingAccount | None) -> dict | None:
    """What the portal's billing banner says for this account (None: nothing to say)."""
    if account is None:
        return None
    if account.marketing_paused:
        return {"level": "paused", "since": account.marketing_paused_at, "pause_at": None}
    if account.payment_failed_at is not None:
        return {"level": "failed", "since": account.payment_failed_at, "pause_at": pause_at(account)}
    return None
