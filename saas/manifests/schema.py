"""The manifest format, as a typed model. Unknown fields are errors, so typos never pass silently.

A manifest describes one organization (and its agency, if any) and some of its clinics:
profile, channel, schedule, auto-reply and library use. A field left out is left as it is
when the file is applied (see saas/manifests/apply.py). See tenants/*.yaml.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from saas.autoreply.models import Computed

SLUG = r"^[a-z0-9][a-z0-9-]{0,63}$"
ENV_NAME = r"^[A-Z_][A-Z0-9_]*$"


def _clock(value: str) -> str:
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
        raise ValueError(f"時刻は HH:MM（00:00〜23:59）で書いてください: {value!r}")
    return value


def _optional_clock(value: str) -> str:
    return _clock(value) if value else value


Clock = Annotated[str, AfterValidator(_clock)]
OptionalClock = Annotated[str, AfterValidator(_optional_clock)]
Slug = Annotated[str, Field(pattern=SLUG)]
Message = str | dict  # a text, or a LINE message object


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AgencySpec(Strict):
    slug: Slug
    name: str


class OrganizationLinksSpec(Strict):
    """Group-wide rich menu links; a clinic's own value (set in the portal) overrides them."""

    recruitment_url: str = Field("", pattern=r"^(https://.*)?$")
    online_consultation_url: str = Field("", pattern=r"^(https://.*)?$")


class AdRuleOverrideSpec(Strict):
    """The organization's change to one shipped 医療広告 rule (see saas/adcheck/rules.yaml)."""

    id: str
    enabled: bool = True
    severity: Literal["warning", "block"] | None = None
    extra_phrases: list[str] = []
    allowed_phrases: list[str] = []

    @model_validator(mode="after")
    def _known_rule(self):
        from saas.adcheck.rules import shipped_rule_ids

        if self.id not in shipped_rule_ids():
            raise ValueError(f"医療広告チェックのルール {self.id!r} はありません（{', '.join(shipped_rule_ids())}）")
        return self


class AdcheckSpec(Strict):
    """Overrides of the 医療広告 rules; the list is the whole set (rules not listed are as shipped)."""

    rules: list[AdRuleOverrideSpec] = []

    @model_validator(mode="after")
    def _unique(self):
        ids = [rule.id for rule in self.rules]
        if len(ids) != len(set(ids)):
            raise ValueError("同じルールが2回書かれています")
        return self


class OrganizationSpec(Strict):
    slug: Slug
    name: str
    kind: Literal["medical_corporation", "independent"] = "independent"
    links: OrganizationLinksSpec = OrganizationLinksSpec()
    adcheck: AdcheckSpec = AdcheckSpec()


class ProfileSpec(Strict):
    specialty: str = ""
    phone: str = ""
    address: str = ""
    access: str = ""
    parking: str = ""
    website_url: str = ""
    logo_url: str = ""
    timezone: str = "Asia/Tokyo"


class ChannelSpec(Strict):
    channel_id: str = ""
    channel_secret_env: Annotated[str, Field(pattern=ENV_NAME)] | None = None
    access_token_env: Annotated[str, Field(pattern=ENV_NAME)] | None = None


class BlockSpec(Strict):
    label: str = ""
    start: Clock
    end: Clock

    @model_validator(mode="after")
    def _ordered(self):
        if self.start >= self.end:
            raise ValueError(f"開始 {self.start} が終了 {self.end} より後です")
        return self


class WeeklySpec(Strict):
    mon: list[BlockSpec] = []
    tue: list[BlockSpec] = []
    wed: list[BlockSpec] = []
    thu: list[BlockSpec] = []
    fri: list[BlockSpec] = []
    sat: list[BlockSpec] = []
    sun: list[BlockSpec] = []

    @model_validator(mode="after")
    def _in_time_order(self):
        for name in self.model_fields_set:  # assigning marks a field as mentioned: only touch those that are
            setattr(self, name, sorted(getattr(self, name), key=lambda block: block.start))
        return self


class ClosureSpec(Strict):
    kind: Literal["closed", "substitute"] = "closed"
    starts_on: date
    ends_on: date | None = None
    blocks: list[str] = []
    reason: str = ""
    substitute_doctor: str = ""
    notify_friends: bool = False

    @model_validator(mode="after")
    def _ordered(self):
        if self.ends_on is not None and self.ends_on < self.starts_on:
            raise ValueError("ends_on が starts_on より前です")
        if self.ends_on == self.starts_on:
            self.ends_on = None
        return self

    def key(self) -> tuple:
        return (self.kind, self.starts_on, self.ends_on or self.starts_on, tuple(self.blocks))


class ScheduleSpec(Strict):
    closed_on_public_holidays: bool = True
    weekly: WeeklySpec = WeeklySpec()
    closures: list[ClosureSpec] = []


class RuleSpec(Strict):
    name: str = Field(min_length=1)
    match: Literal["exact", "contains", "regex"] = "contains"
    keywords: list[str] = Field(min_length=1)
    required_literal: str = ""
    priority: int = 100
    enabled: bool = True
    active_from: OptionalClock = ""
    active_until: OptionalClock = ""
    reply: list[Message] = []
    computed: Computed | None = None

    @model_validator(mode="after")
    def _answers(self):
        if not self.reply and self.computed is None:
            raise ValueError("reply か computed のどちらかが必要です")
        if self.match == "regex":
            for pattern in self.keywords:
                re.compile(pattern)
        return self


class HandoffSpec(Strict):
    phrases: list[str] = ["スタッフと話したい", "スタッフに相談", "有人対応"]
    reply: str = "スタッフにおつなぎします。順番にお返事しますので、このままメッセージをお送りください。"
    resume_after_hours: int = Field(default=0, ge=0)


class AutoreplySpec(Strict):
    greeting: list[Message] = []
    greeting_shows_closures: bool = True
    fallback: list[Message] = []
    handoff: HandoffSpec = HandoffSpec()
    emergency_keywords: list[str] | None = None  # None: the shipped list of emergency symptoms
    rules: list[RuleSpec] = []

    @model_validator(mode="after")
    def _unique_rule_names(self):
        names = [rule.name for rule in self.rules]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"ルール名が重複しています: {', '.join(duplicates)}")
        return self


class OverrideSpec(Strict):
    set: str
    item: str
    title: str = ""
    keywords: list[str] = []
    body: str = ""
    disabled: bool = False


class LibrarySpec(Strict):
    subscriptions: list[str] = []
    overrides: list[OverrideSpec] = []

    @model_validator(mode="after")
    def _canonical_order(self):
        # Assigning marks a field as mentioned (see manifests.apply): sort only what the file gives.
        if "subscriptions" in self.model_fields_set:
            self.subscriptions = sorted(dict.fromkeys(self.subscriptions))
        if "overrides" in self.model_fields_set:
            self.overrides = sorted(self.overrides, key=lambda o: (o.set, o.item))
        return self


class FriendFieldSpec(Strict):
    """A clinic-defined friend field (see saas/fields)."""

    key: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
    label: str
    kind: Literal["text", "number", "date", "choice", "multi_choice"] = "text"
    choices: list[str] = []


class SourceSpec(Strict):
    """An inflow source (流入経路); ``token`` keeps printed QR codes working across installs."""

    name: str
    token: str = ""
    tags: list[str] = []  # tag names added to a friend the source brings
    rich_menu: str = ""  # name of the rich menu linked to that friend
    poster_message: str = ""
    active: bool = True


class StepSpec(Strict):
    """One step of a scenario (see saas/steps): ids are written as names (tags, sources, fields, menus)."""

    name: str = ""
    delay: Literal["after_previous", "after_start", "day_at"] = "after_previous"
    after: int = Field(default=1, ge=0)  # how many units (day_at: days after the start day)
    unit: Literal["minutes", "hours", "days"] = "days"
    at: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")] = "10:00"  # day_at only
    messages: list[Message] = Field(default=[], max_length=5)
    conditions: dict = {}  # {"match": "all", "rules": [{"kind": "tag", "tag": "美容"}, ...]}
    otherwise: Literal["skip", "goto"] = "skip"
    goto: str = ""  # the name of a later step
    actions: list[dict] = []  # [{"kind": "add_tag", "tag": "フォロー済み"}, ...]


class ScenarioSpec(Strict):
    """A step delivery scenario; applied by key (added or updated, never deleted)."""

    key: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,59}$")]
    name: str
    description: str = ""
    status: Literal["draft", "active", "paused"] = "draft"
    trigger: Literal["manual", "follow", "tag", "booking_made", "booking_completed", "postback"] = "manual"
    trigger_tag: str = ""  # tag name (trigger: tag)
    trigger_source: str = ""  # inflow source name (trigger: follow through that source only)
    goals: list[dict] = [{"kind": "booked"}]  # [{"kind": "booked"}, {"kind": "tag", "tag": "予約済み"}]
    consent: Literal["marketing", "reminders"] = "marketing"
    send_from: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")] = "09:00"
    send_until: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")] = "20:00"
    open_days_only: bool = False
    allow_restart: bool = False
    resume_on_refollow: bool = False
    steps: list[StepSpec] = Field(default=[], max_length=100)


class FormQuestionSpec(Strict):
    """A form question (see saas/forms/models.py); ``field`` is a friend field key, ``tags`` maps
    options to tag names, ``consent`` is marketing / reminders for a consent question."""

    key: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")] | None = None
    label: str = Field(min_length=1)
    kind: Literal["text", "number", "date", "choice", "multi_choice", "consent"] = "text"
    required: bool = False
    choices: list[str] = []
    help: str = ""
    field: str = ""
    tags: dict[str, str] = {}
    visit: bool = False
    consent: Literal["", "marketing", "reminders"] = ""
    sensitive: bool = False


class FormSpec(Strict):
    """A form patients answer from LINE; ``token`` keeps links already sent working."""

    name: str = Field(min_length=1)
    purpose: Literal["intake", "survey", "vaccination", "other"] = "other"
    description: str = ""
    thanks: str = ""
    token: str = Field("", max_length=32, pattern=r"^[A-Za-z0-9_-]*$")
    active: bool = True
    questions: list[FormQuestionSpec] = Field(min_length=1)


class CouponSpec(Strict):
    """A coupon for a self-pay service (see saas/coupons), found again by its title.

    Applied as a draft when new; publishing on LINE and sending stay staff actions."""

    title: Annotated[str, Field(min_length=1, max_length=60)]
    purpose: Literal["self_pay", "checkup", "goods"]
    service: str
    reward_kind: Literal["discount_percent", "discount_yen", "free", "gift", "others"] = "discount_percent"
    reward_value: int = 0
    starts_on: date
    ends_on: date
    description: str = ""
    usage_condition: str = ""
    total_limit: int | None = None
    per_patient_limit: int = 1
    target: Literal["all", "segment", "step", "reward"] = "all"
    segment_tags: list[str] = []  # target segment: friends with any of these tags


class CardRewardSpec(Strict):
    points: Annotated[int, Field(ge=1)]
    coupon: str  # the title of a coupon of this manifest or the clinic, target "reward"


class ShopCardSpec(Strict):
    """The clinic's shop card (see saas/cards); its desk key never leaves the database."""

    enabled: bool = False
    name: str = "診察券ポイント"
    points_per_visit: int = 1
    expiry_days: int | None = 365
    qr_seconds: int = 45
    restart_after_last_reward: bool = True
    rewards: list[CardRewardSpec] = []


class ClinicSpec(Strict):
    slug: Slug
    name: str
    profile: ProfileSpec = ProfileSpec()
    channel: ChannelSpec | None = None
    schedule: ScheduleSpec = ScheduleSpec()
    autoreply: AutoreplySpec = AutoreplySpec()
    library: LibrarySpec = LibrarySpec()
    # Added or updated by key / name; ones the file does not list are kept (friends' data hangs on them).
    friend_fields: list[FriendFieldSpec] = []
    sources: list[SourceSpec] = []
    step_scenarios: list[ScenarioSpec] = []  # by key; unlisted scenarios are kept
    coupons: list[CouponSpec] = []  # added or updated by title, never deleted
    shop_card: ShopCardSpec | None = None
    forms: list[FormSpec] = []  # added or updated by name, never deleted (answers hang on them)


class Manifest(Strict):
    version: Literal[1] = 1
    agency: AgencySpec | None = None
    organization: OrganizationSpec
    clinics: list[ClinicSpec] = Field(min_length=1)
