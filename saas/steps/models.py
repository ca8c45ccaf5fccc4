"""Step delivery (ステップ配信): scenarios, their steps, who is in them, and each step sent.

The tick finds due work through ``step_enrolment.next_due_at`` (NULL whenever nothing is due:
finished, stopped, paused or a step in flight), so its cost follows the due rows, not the
friends in scenarios. ``step_send`` has one row per (enrolment, step): the unique key is what
makes a step happen at most once per friend, whatever the number of workers or scans.
"""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from saas.common import BigId, Timestamped, utcnow
from saas.extensions import db
from saas.privacy.coverage import DELETE, patient_table
from saas.tenancy.scoping import TenantOwned


class ScenarioStatus(enum.StrEnum):
    DRAFT = "draft"  # being written: nothing starts
    ACTIVE = "active"
    PAUSED = "paused"  # nobody moves on; resumed from where each friend was


class Trigger(enum.StrEnum):
    MANUAL = "manual"  # staff start it (one friend, or a segment)
    FOLLOW = "follow"  # every new friend (a source may name its own scenario instead)
    TAG = "tag"  # a tag is added
    BOOKING_MADE = "booking_made"
    BOOKING_COMPLETED = "booking_completed"  # 来院済み
    POSTBACK = "postback"  # a rich-menu or button tap with data ``steps:start:<key>``


class DelayKind(enum.StrEnum):
    AFTER_PREVIOUS = "after_previous"  # N minutes/hours/days after the previous step
    AFTER_START = "after_start"  # N minutes/hours/days after the friend entered
    DAY_AT = "day_at"  # N days after the start day, at HH:MM (0 = the start day)


class EnrolmentStatus(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"  # the scenario is paused
    COMPLETED = "completed"
    STOPPED = "stopped"


class StopReason(enum.StrEnum):
    GOAL = "goal"
    UNFOLLOWED = "unfollowed"
    MANUAL = "manual"
    RESTARTED = "restarted"


class SendStatus(enum.StrEnum):
    SENDING = "sending"  # handed to the delivery pipeline
    SENT = "sent"
    SKIPPED = "skipped"  # see ``reason``
    FAILED = "failed"


class StepScenario(TenantOwned, Timestamped, db.Model):
    """A clinic's scenario: how it starts, what ends it early, and when it may send."""

    __table_args__ = (sa.UniqueConstraint("clinic_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(60))  # manifests, postbacks and the library name it
    name: Mapped[str] = mapped_column(sa.String(120))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    status: Mapped[str] = mapped_column(sa.String(16), default=ScenarioStatus.DRAFT)
    trigger: Mapped[str] = mapped_column(sa.String(24), default=Trigger.MANUAL)
    trigger_tag_id: Mapped[int | None] = mapped_column(sa.ForeignKey("tag.id", ondelete="SET NULL"))
    # FOLLOW: only friends brought by this inflow source (its QR code); NULL: every new friend.
    trigger_source_id: Mapped[int | None] = mapped_column(sa.ForeignKey("inflow_source.id", ondelete="SET NULL"))
    # Goals that stop a friend's run: [{"kind": "booked"}, {"kind": "tag", "tag_id": 4},
    # {"kind": "coupon_used"}, {"kind": "form_answered", "form_id": 2}] (ids optional: any).
    goals: Mapped[list] = mapped_column(sa.JSON, default=list)
    allow_restart: Mapped[bool] = mapped_column(default=False)
    resume_on_refollow: Mapped[bool] = mapped_column(default=False)
    consent: Mapped[str] = mapped_column(sa.String(16), default="marketing")  # marketing | reminders
    send_from: Mapped[str] = mapped_column(sa.String(5), default="09:00")  # clinic local time
    send_until: Mapped[str] = mapped_column(sa.String(5), default="20:00")
    open_days_only: Mapped[bool] = mapped_column(default=False)
    library_item_id: Mapped[int | None] = mapped_column()  # copied from this library scenario
    waiting_since: Mapped[datetime | None] = mapped_column()  # over quota: steps wait, staff warned


class ScenarioStep(TenantOwned, Timestamped, db.Model):
    """One step: when (delay), what (up to 5 message objects), if (conditions), and actions."""

    __table_args__ = (sa.Index("ix_scenario_step_order", "scenario_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scenario_id: Mapped[int] = mapped_column(sa.ForeignKey("step_scenario.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(default=0)
    name: Mapped[str] = mapped_column(sa.String(120), default="")
    delay_kind: Mapped[str] = mapped_column(sa.String(16), default=DelayKind.AFTER_PREVIOUS)
    delay_value: Mapped[int] = mapped_column(default=1)
    delay_unit: Mapped[str] = mapped_column(sa.String(8), default="days")  # minutes | hours | days
    at_time: Mapped[str] = mapped_column(sa.String(5), default="10:00")  # DAY_AT only
    messages: Mapped[list] = mapped_column(sa.JSON, default=list)  # templates, variables kept
    # {"match": "all" | "any", "rules": [{"kind": "tag", "tag_id": 3, "has": true},
    #  {"kind": "field", "field_id": 2, "op": "eq", "value": "..."}, {"kind": "source", "source_id": 1},
    #  {"kind": "booked", "value": true}]}
    conditions: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    otherwise: Mapped[str] = mapped_column(sa.String(8), default="skip")  # skip | goto (when conditions fail)
    goto_step_id: Mapped[int | None] = mapped_column()
    # [{"kind": "add_tag", "tag_id": 3}, {"kind": "remove_tag", "tag_id": 3},
    #  {"kind": "rich_menu", "rich_menu_id": 2}, {"kind": "start_scenario", "scenario_id": 5}]
    actions: Mapped[list] = mapped_column(sa.JSON, default=list)


class StepEnrolment(TenantOwned, Timestamped, db.Model):
    """A friend's run through a scenario; at most one running per (scenario, friend)."""

    __table_args__ = (
        sa.Index("ix_step_enrolment_due", "clinic_id", "next_due_at"),
        sa.Index("ix_step_enrolment_due_all", "next_due_at"),  # the cron tick, across clinics
        sa.Index("ix_step_enrolment_friend", "clinic_id", "friend_id"),
        sa.Index("ix_step_enrolment_scenario", "clinic_id", "scenario_id", "status"),
        sa.Index(
            "uq_step_enrolment_running",
            "scenario_id",
            "friend_id",
            unique=True,
            sqlite_where=sa.text("status IN ('active', 'paused')"),
            postgresql_where=sa.text("status IN ('active', 'paused')"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    scenario_id: Mapped[int] = mapped_column(sa.ForeignKey("step_scenario.id", ondelete="CASCADE"))
    friend_id: Mapped[int] = mapped_column(sa.ForeignKey("friend.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(sa.String(16), default=EnrolmentStatus.ACTIVE)
    start_reason: Mapped[str] = mapped_column(sa.String(32), default="")
    current_step_id: Mapped[int | None] = mapped_column()  # the step to do next
    next_due_at: Mapped[datetime | None] = mapped_column()  # naive UTC; NULL: nothing due
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_step_at: Mapped[datetime | None] = mapped_column()  # "after the previous step" counts from here
    ended_at: Mapped[datetime | None] = mapped_column()
    stop_reason: Mapped[str] = mapped_column(sa.String(32), default="")
    unfollowed_at: Mapped[datetime | None] = mapped_column()  # blocked while in it (kept when resumed)


class StepSend(TenantOwned, db.Model):
    """What happened to one step for one enrolment: the unique key makes it happen once."""

    __table_args__ = (
        sa.UniqueConstraint("enrolment_id", "step_id"),
        sa.Index("ix_step_send_funnel", "clinic_id", "scenario_id", "step_id", "status"),
        sa.Index("ix_step_send_open", "status", "clinic_id", "delivery_id"),  # sends in flight (few)
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    enrolment_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("step_enrolment.id", ondelete="CASCADE"))
    scenario_id: Mapped[int] = mapped_column()
    step_id: Mapped[int] = mapped_column()
    friend_id: Mapped[int] = mapped_column(sa.ForeignKey("friend.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(sa.String(16), default=SendStatus.SENDING)
    reason: Mapped[str] = mapped_column(sa.String(32), default="")  # blocked, no_consent, condition, ...
    delivery_id: Mapped[int | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()


patient_table("step_send", keys=("friend_id",), erase=DELETE, section="steps")
patient_table("step_enrolment", keys=("friend_id",), erase=DELETE, section="steps")
