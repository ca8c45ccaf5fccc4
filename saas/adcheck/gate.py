"""Enforcing the check when a form is submitted: warnings acknowledged, blocks approved by an admin.

A form that saves something patients will read (an FAQ answer, a rich menu text, a coupon) calls
:func:`gate` with its texts and the submitted form, re-renders with ``adcheck/_gate.html`` while
``gate.passed`` is false, and calls ``gate.record(...)`` in the transaction that saves. A send
(saas.delivery) passes ``hold_blocks=True``: its block findings wait for an admin's approval in
the mis-send guard (saas.sendguard) instead of stopping the form.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import gettext as _

from saas.adcheck import services
from saas.adcheck.checker import Finding
from saas.adcheck.rules import Severity
from saas.audit.services import record

ACK_FIELD = "adcheck_ack"  # checkbox: 注意の内容を確認しました
APPROVE_FIELD = "adcheck_approve"  # checkbox (admins): 管理者として承認します


@dataclass
class Gate:
    findings: list[Finding]
    acknowledged: bool = False
    approved: bool = False
    may_approve: bool = False
    hold_blocks: bool = False

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == Severity.WARNING]

    @property
    def blocks(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == Severity.BLOCK]

    @property
    def needs_acknowledgement(self) -> bool:
        return bool(self.warnings) and not self.acknowledged

    @property
    def needs_approval(self) -> bool:
        """Blocks an admin has not approved on this form (a send holds them for approval instead)."""
        return bool(self.blocks) and not self.approved and not self.hold_blocks

    @property
    def passed(self) -> bool:
        return not self.needs_acknowledgement and not self.needs_approval

    def problems(self) -> list[str]:
        """Why the form was not saved, in Japanese."""
        problems = []
        if self.needs_acknowledgement:
            problems.append(
                _("医療広告ガイドラインの注意があります。内容を確認し「確認しました」にチェックしてください。")
            )
        if self.needs_approval:
            problems.append(
                _(
                    "医療広告ガイドラインに反するおそれのある表現があります。管理者が承認にチェックして保存してください。"
                )
                if self.may_approve
                else _(
                    "医療広告ガイドラインに反するおそれのある表現があります。管理者の承認が必要です（管理者に保存を依頼してください）。"
                )
            )
        return problems

    def record(self, target_type: str, target_id) -> None:
        """Audit the acknowledgement and the admin's approval (in the caller's transaction)."""
        if self.warnings and self.acknowledged:
            record("adcheck.acknowledge", target_type=target_type, target_id=target_id,
                   details={"findings": services.summary(self.warnings)})  # fmt: skip
        if self.blocks and self.approved:
            record("adcheck.approve", target_type=target_type, target_id=target_id,
                   details={"findings": services.summary(self.blocks)})  # fmt: skip


def gate(clinic, texts: dict[str, str], form, *, hold_blocks: bool = False) -> Gate:
    """Check ``texts`` (field name → text) and read the form's acknowledgement and approval boxes."""
    from saas.tenancy.access import can

    may_approve = can("adcheck.approve")
    return Gate(
        findings=services.check_texts(clinic, texts),
        acknowledged=form.get(ACK_FIELD) == "1",
        approved=may_approve and form.get(APPROVE_FIELD) == "1",
        may_approve=may_approve,
        hold_blocks=hold_blocks,
    )
