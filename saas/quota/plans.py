"""LINE's plans as data: loading them from plans.yaml, each clinic's limit, and pricing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
import yaml

from saas.extensions import db
from saas.quota.models import ClinicPlan, LinePlan

PLANS_FILE = Path(__file__).with_name("plans.yaml")
DEFAULT_PLAN = "free"  # LINE puts every new official account on the communication plan
PLAN_DEFAULTS = {"extra_price_tiers": [], "revised_on": None, "notes": "", "allows_extra": False}
PLAN_FIELDS = ("name", "monthly_fee_yen", "free_messages", "allows_extra", "extra_price_tiers", "revised_on", "notes")


def load_plans(path: Path = PLANS_FILE) -> list[LinePlan]:
    """Create or update the LinePlan rows from the data file (idempotent); commits."""
    plans = _apply_plans(path)
    db.session.commit()
    return plans


def _apply_plans(path: Path) -> list[LinePlan]:
    entries = yaml.safe_load(path.read_text(encoding="utf-8"))["plans"]
    plans = []
    for entry in entries:
        plan = db.session.scalar(sa.select(LinePlan).filter_by(code=entry["code"])) or LinePlan(code=entry["code"])
        for field in PLAN_FIELDS:
            setattr(plan, field, entry.get(field, PLAN_DEFAULTS.get(field)))
        db.session.add(plan)
        plans.append(plan)
    db.session.flush()
    return plans


def _load_plans_on_first_use() -> None:
    """Load the data file, also when another process or thread loads it at the same moment: a clash
    undoes only this savepoint, never the caller's work, and the second pass updates their rows."""
    for _attempt in range(2):
        try:
            with db.session.begin_nested():
                _apply_plans(PLANS_FILE)
            break
        except sa.exc.IntegrityError:
            continue
    db.session.commit()


def get_plan(code: str) -> LinePlan:
    """The plan with this code, loading the data file first if plans were never loaded."""
    plan = db.session.scalar(sa.select(LinePlan).filter_by(code=code))
    if plan is None and db.session.scalar(sa.select(sa.func.count()).select_from(LinePlan)) == 0:
        _load_plans_on_first_use()
        plan = db.session.scalar(sa.select(LinePlan).filter_by(code=code))
    if plan is None:
        raise LookupError(f"unknown LINE plan {code!r}")
    return plan


@dataclass(frozen=True)
class EffectivePlan:
    """A clinic's plan with its settings resolved into a monthly limit."""

    plan: LinePlan
    extra_allowed: bool
    extra_cap: int | None

    @property
    def limit(self) -> int | None:
        """Most billable messages this month; None when only LINE's own cap applies."""
        if not self.extra_allowed:
            return self.plan.free_messages
        return None if self.extra_cap is None else self.plan.free_messages + self.extra_cap


def plan_for_clinic(clinic_id: int) -> EffectivePlan:
    """The clinic's effective plan (the communication plan until one is set). Needs a tenant scope."""
    setting = db.session.scalar(sa.select(ClinicPlan).filter_by(clinic_id=clinic_id))
    plan = get_plan(setting.plan_code if setting else DEFAULT_PLAN)
    extra_allowed = bool(plan.allows_extra and setting and setting.extra_messages_allowed)
    return EffectivePlan(plan, extra_allowed, setting.extra_messages_cap if extra_allowed else None)


def set_clinic_plan(
    clinic_id: int, plan_code: str, *, extra_allowed: bool = False, extra_cap: int | None = None
) -> ClinicPlan:
    """Record which plan a clinic is on; commits."""
    plan = get_plan(plan_code)
    if extra_allowed and not plan.allows_extra:
        raise ValueError(f"{plan.name}では追加メッセージを購入できません")
    setting = db.session.scalar(sa.select(ClinicPlan).filter_by(clinic_id=clinic_id)) or ClinicPlan(clinic_id=clinic_id)
    setting.plan_code, setting.extra_messages_allowed, setting.extra_messages_cap = plan_code, extra_allowed, extra_cap
    db.session.add(setting)
    db.session.commit()
    return setting


def extra_cost_yen(plan: LinePlan, total_messages: int) -> float:
    """What the month's messages beyond the free allowance cost, priced tier by tier."""
    cost, counted = 0.0, plan.free_messages
    for tier in plan.extra_price_tiers or []:
        ceiling = total_messages if tier["up_to"] is None else min(tier["up_to"], total_messages)
        if ceiling > counted:
            cost += (ceiling - counted) * float(tier["yen"])
            counted = ceiling
        if counted >= total_messages:
            break
    return cost


def month_cost_yen(plan: LinePlan, total_messages: int) -> float:
    """Fixed monthly fee plus additional messages (tax excluded)."""
    return plan.monthly_fee_yen + (extra_cost_yen(plan, total_messages) if plan.allows_extra else 0.0)
