"""Request and response bodies of the API, as pydantic models (their JSON Schema is the document's)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from saas.common import MAX_DAYS
from saas.manifests.schema import SLUG, ClinicSpec


def _iso_utc(moment: datetime) -> str:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


# Stored times are naive UTC: answered with their offset, as RFC 3339 wants.
Moment = Annotated[datetime, PlainSerializer(_iso_utc, return_type=str)]

Text = Annotated[str, Field(max_length=5000)]
Name = Annotated[str, Field(min_length=1, max_length=60)]
Clock = Annotated[str, Field(pattern=r"^(([01]\d|2[0-3]):[0-5]\d)?$")]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PageQuery(Body):
    limit: int = Field(50, ge=1, le=200, description="Items per page.")
    after: int | None = Field(
        None, ge=0, le=2**63 - 1, description="The `next_cursor` of the previous page (keyset: never skips or repeats)."
    )


class Page(BaseModel):
    next_cursor: int | None = Field(description="Pass as `after` for the next page; null on the last page.")


# ---- clinics ------------------------------------------------------------------------------------


class ClinicOut(BaseModel):
    slug: str
    name: str
    organization: str
    agency: str | None
    specialty: str
    phone: str
    address: str
    access: str
    parking: str
    website_url: str
    logo_url: str
    line_connected: bool


class ClinicPage(Page):
    data: list[ClinicOut]


# ---- friends ------------------------------------------------------------------------------------


class FriendQuery(PageQuery):
    tag: str | None = Field(None, max_length=60, description="Only friends with this tag (by name).")
    status: Literal["following", "blocked"] | None = None


class FriendOut(BaseModel):
    id: int
    display_name: str
    status: str
    followed_at: Moment | None
    consent_marketing: bool
    consent_reminders: bool
    tags: list[str]
    fields: dict[str, str]


class FriendPage(Page):
    data: list[FriendOut]


class TagChange(Body):
    add: list[Name] = Field(default_factory=list, max_length=50)
    remove: list[Name] = Field(default_factory=list, max_length=50)


class FieldValues(Body):
    values: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")], str | list[str] | None] = Field(
        description='Field key → value (a list for multi-choice; null or "" clears it).',
        json_schema_extra={"additionalProperties": False},
    )


# ---- deliveries ---------------------------------------------------------------------------------


class Segment(Body):
    tag_ids: list[Annotated[int, Field(ge=1)]] = Field(default_factory=list, max_length=50)
    tag_match: Literal["any", "all"] = "any"
    exclude_tag_ids: list[Annotated[int, Field(ge=1)]] = Field(default_factory=list, max_length=50)
    attributes: dict[Annotated[str, Field(min_length=1, max_length=40)], Annotated[str, Field(max_length=100)]] = Field(
        default_factory=dict
    )
    followed_from: date | None = None
    followed_to: date | None = None
    messaged_within_days: int | None = Field(None, ge=0, le=MAX_DAYS)
    silent_for_days: int | None = Field(None, ge=0, le=MAX_DAYS)


Url = Annotated[str, Field(pattern=r"^https://[!-~]{1,1990}$", max_length=2000)]


class TextMessage(Body):
    type: Literal["text"]
    text: Annotated[str, Field(min_length=1, max_length=5000)] = Field(
        description="May use variables such as {{clinic.name}} and {{friend.display_name}}."
    )


class StickerMessage(Body):
    type: Literal["sticker"]
    packageId: Annotated[str, Field(pattern=r"^[0-9]{1,12}$")]
    stickerId: Annotated[str, Field(pattern=r"^[0-9]{1,12}$")]


class ImageMessage(Body):
    type: Literal["image"]
    originalContentUrl: Url
    previewImageUrl: Url


class FlexMessage(Body):
    type: Literal["flex"]
    altText: Annotated[str, Field(min_length=1, max_length=1500)]
    contents: dict = Field(description="A Flex bubble or carousel (checked against LINE's rules).")


Message = Annotated[TextMessage | StickerMessage | ImageMessage | FlexMessage, Field(discriminator="type")]


class DeliveryIn(Body):
    kind: Literal["broadcast", "segment", "urgent"] = Field(
        "broadcast",
        description="broadcast: friends with marketing consent; segment: those matching `segment`; "
        "urgent (休診・代診・災害): every following friend, on the urgent queue.",
    )
    title: Annotated[str, Field(max_length=200)] = ""
    messages: list[Message] = Field(min_length=1, max_length=5, description="LINE message objects; templates allowed.")
    segment: Segment | None = None
    allow_trim: bool = Field(False, description="Send to as many as the quota allows instead of refusing.")
    scheduled_at: datetime | None = Field(None, description="Start later (ISO 8601 with offset).")


class DeliveryOut(BaseModel):
    id: int
    kind: str
    title: str
    status: str
    scheduled_at: Moment | None
    targeted: int
    planned: int
    sent: int
    failed: int
    skipped: dict[str, int]
    percent: int
    stop_reason: str
    created_at: Moment
    finished_at: Moment | None


class DeliveryPage(Page):
    data: list[DeliveryOut]


# ---- FAQ rules ----------------------------------------------------------------------------------


class RuleIn(Body):
    name: Annotated[str, Field(min_length=1, max_length=120)]
    match_type: Literal["exact", "contains", "regex"] = "contains"
    keywords: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(min_length=1, max_length=100)
    required_literal: Annotated[str, Field(max_length=100)] = ""
    priority: int = Field(100, ge=0, le=100000)
    enabled: bool = True
    active_from: Clock = ""
    active_until: Clock = ""
    reply: list[Annotated[str, Field(min_length=1, max_length=5000)]] = Field(min_length=1, max_length=5)


class RuleOut(BaseModel):
    id: int
    name: str
    match_type: str
    keywords: list[str]
    required_literal: str
    priority: int
    enabled: bool
    active_from: str
    active_until: str
    reply: list[str]
    computed: str


class RulePage(Page):
    data: list[RuleOut]


# ---- schedule and closures ----------------------------------------------------------------------


class BlockOut(BaseModel):
    label: str
    start: str
    end: str


class ScheduleOut(BaseModel):
    closed_on_public_holidays: bool
    weekly: dict[str, list[BlockOut]] = Field(description="mon … sun → opening blocks (clinic local time).")


class ClosureQuery(PageQuery):
    from_date: date | None = Field(None, description="First day (default: today).")


class ClosureIn(Body):
    kind: Literal["closed", "substitute"] = "closed"
    starts_on: date
    ends_on: date | None = None
    blocks: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(
        default_factory=list, max_length=10, description="Block labels (e.g. 午前); empty: the whole day."
    )
    reason: Annotated[str, Field(max_length=300)] = ""
    substitute_doctor: Annotated[str, Field(max_length=120)] = ""
    notify: Literal["none", "urgent", "consenting"] = Field(
        "none",
        description="none: only the schedule and auto-replies change; urgent: every following friend is told "
        "at once (urgent path); consenting: an ordinary delivery to friends with marketing consent.",
    )


class ClosureOut(BaseModel):
    id: int
    kind: str
    starts_on: date
    ends_on: date
    blocks: list[str]
    reason: str
    substitute_doctor: str
    notify_friends: bool
    notice_text: str
    notice_status: str = Field(
        "none",
        description="The urgent notice of `notify: urgent`: none, pending (waiting for the send pipeline, "
        "moments), sending, sent or cancelled (the closure was deleted before it went out).",
    )
    delivery_id: int | None = Field(
        None,
        description="The delivery that tells friends: at once for `notify: consenting`; for `notify: urgent` "
        "as soon as the send pipeline has picked the notice up (list the closures to see it).",
    )


class ClosurePage(Page):
    data: list[ClosureOut]


# ---- manifests and audit ------------------------------------------------------------------------


class ClinicSectionIn(ClinicSpec):
    """A manifest's clinic entry; ``slug`` and ``name`` default to the clinic's own."""

    slug: Annotated[str, Field(pattern=SLUG)] | None = None
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class ManifestQuery(Body):
    dry_run: bool = Field(True, description="Report the changes without applying them (the default).")


class ManifestOutcome(BaseModel):
    dry_run: bool
    changes: list[str]
    warnings: list[str]


class ManifestOut(BaseModel):
    manifest: dict = Field(description="The clinic's manifest (the `tenants/*.yaml` format, as JSON).")
    yaml: str


class AuditQuery(PageQuery):
    action: str | None = Field(None, max_length=64, description="Only actions starting with this.")


class AuditOut(BaseModel):
    id: int
    created_at: Moment
    action: str
    actor: str
    target_type: str
    target_id: str | None
    details: dict


class AuditPage(Page):
    data: list[AuditOut]
