"""Short codes for the URLs we send, the click behind each redirect, and clicks per link.

Codes are created set-based: the planner hands a whole batch of renderings over and gets
them back rewritten, with one multi-row INSERT for the batch's codes (in the planner's
transaction, so a crashed plan leaves no codes behind for recipients it did not plan).
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from typing import Any, NamedTuple

import sqlalchemy as sa
from flask import current_app

from saas.analytics import marks
from saas.common import utcnow
from saas.extensions import db
from saas.links.models import LinkClick, TrackedLink
from saas.links.rewrite import ANY, Origin, links_in, rewrite, rewrite_rich_menu, rich_menu_links
from saas.tenancy.scoping import platform_scope

ALPHABET = string.digits + string.ascii_letters  # base62
CODE_LENGTH = 16
CODE_BITS = 95  # 62**16 > 2**95: every value fits in 16 characters
INSERT_EVERY = 1000


def new_code() -> str:
    """An unguessable short code: 95 random bits written in 16 base62 characters."""
    value, chars = secrets.randbits(CODE_BITS), []
    for _ in range(CODE_LENGTH):
        value, digit = divmod(value, 62)
        chars.append(ALPHABET[digit])
    return "".join(chars)


def is_code(text: str) -> bool:
    """Whether ``text`` looks like one of our codes (anything else is a 404 without a query)."""
    return len(text) == CODE_LENGTH and all(char in ALPHABET for char in text)


def short_url(code: str) -> str:
    """The address a patient taps (on the portal's public host)."""
    return f"{current_app.config['PUBLIC_BASE_URL'].rstrip('/')}/l/{code}"


def _insert(rows: list[dict]) -> None:
    for start in range(0, len(rows), INSERT_EVERY):
        db.session.execute(sa.insert(TrackedLink), rows[start : start + INSERT_EVERY])


def _shared_codes(clinic_id: int, urls: list[str], **owner: int) -> dict[str, str]:
    """url → code of the links shared by everybody (no recipient), created on first use."""
    where = [TrackedLink.friend_id.is_(None), TrackedLink.url.in_(urls)]
    where += [getattr(TrackedLink, name) == value for name, value in owner.items()]
    found = dict(db.session.execute(sa.select(TrackedLink.url, TrackedLink.code).where(*where)).all())
    rows = [
        {"clinic_id": clinic_id, "code": new_code(), "url": url, "created_at": utcnow(), **owner}
        for url in urls
        if url not in found
    ]
    _insert(rows)
    return found | {row["url"]: row["code"] for row in rows}


def _swapper(codes: dict[str, str]):
    return lambda url: short_url(codes[url])


def friend_origin(friend: Any, only: frozenset[str] | None = None) -> Origin:
    """What may be tracked in a rendering for ``friend``: never what their own name filled in."""
    return Origin(only, (str(getattr(friend, "display_name", "") or ""),))


def track_shared(
    clinic_id: int, delivery_id: int, renderings: list[list[dict]], origins: list[Origin] | None = None
) -> list[list[dict]]:
    """Each rendering with one code per URL for the whole delivery (counted per link only): one
    lookup and at most one insert for all of them. ``origins``: per rendering, which URLs the
    clinic wrote (default: all of them, for renderings without friend variables)."""
    origins = origins or [ANY] * len(renderings)
    urls = list(
        dict.fromkeys(
            url for messages, origin in zip(renderings, origins, strict=True) for url in links_in(messages, origin)
        )
    )
    if not urls:
        return renderings
    swap = _swapper(_shared_codes(clinic_id, urls, delivery_id=delivery_id))
    return [rewrite(messages, swap, origin) for messages, origin in zip(renderings, origins, strict=True)]


def track_per_friend(
    clinic_id: int,
    delivery_id: int | None,
    renderings: list[tuple[Any, list[dict]]],
    only: frozenset[str] | None = None,
) -> list[list[dict]]:
    """Each (friend, messages) rendering rewritten with codes of its own; one insert per 1,000 codes.
    Only URLs in ``only`` (the template's, when known) and none filled in from the friend's name."""
    rows, rewritten, now = [], [], utcnow()
    for friend, messages in renderings:
        origin = friend_origin(friend, only)
        codes = {url: new_code() for url in links_in(messages, origin)}
        rows += [
            {"clinic_id": clinic_id, "code": code, "url": url, "delivery_id": delivery_id,
             "friend_id": friend.id, "created_at": now}
            for url, code in codes.items()
        ]  # fmt: skip
        rewritten.append(rewrite(messages, _swapper(codes), origin) if codes else messages)
    _insert(rows)
    return rewritten


def track_rich_menu(clinic_id: int, rich_menu_id: int, request: dict) -> dict:
    """A rich menu request with its areas' URLs as short links (one per URL and menu, kept across deploys)."""
    urls = rich_menu_links(request)
    if not urls:
        return request
    return rewrite_rich_menu(request, _swapper(_shared_codes(clinic_id, urls, rich_menu_id=rich_menu_id)))


def track_for_friend(clinic_id: int, friend: Any, messages: list[dict]) -> list[dict]:
    """``messages`` to one friend outside a delivery (auto-replies, 1:1 chat) with codes of their own.

    Commits when it created codes: they must exist before LINE shows the message (a crash after
    LINE accepted it would otherwise leave the patient with links that answer 404).
    """
    if not links_in(messages, friend_origin(friend)):
        return messages
    (tracked,) = track_per_friend(clinic_id, None, [(friend, messages)])
    db.session.commit()
    return tracked


def original_url(url: str) -> str:
    """The URL a short link of ours stands for (current tenant scope); any other URL as it is.

    LINE's statistics name the URLs as sent, i.e. our short links: this gives them their meaning.
    """
    prefix = short_url("")
    code = url[len(prefix) :] if url.startswith(prefix) else ""
    if not is_code(code):
        return url
    return db.session.scalar(sa.select(TrackedLink.url).where(TrackedLink.code == code)) or url


class Target(NamedTuple):
    link_id: int
    clinic_id: int
    url: str
    friend_id: int | None
    delivery_id: int | None


def find(code: str) -> Target | None:
    """The link behind a code, whichever clinic it belongs to (the code is the only key)."""
    with platform_scope("short link redirect: an unguessable code names its clinic"):
        row = db.session.execute(
            sa.select(
                TrackedLink.id, TrackedLink.clinic_id, TrackedLink.url, TrackedLink.friend_id, TrackedLink.delivery_id
            ).where(TrackedLink.code == code)
        ).first()
    return Target(*row) if row else None


# One round trip on Postgres: the lookup by the unique code and the click's insert together. Its
# commit does not wait for the WAL flush (synchronous_commit off, this statement only): a database
# crash may lose the last fraction of a second of clicks, never corrupt anything, and a tap does
# not wait for an fsync (measured: 6-10 ms → 2 ms a tap on a loaded machine).
_FOLLOW_AND_COUNT = sa.text(
    """
    WITH relaxed AS (SELECT set_config('synchronous_commit', 'off', true) AS setting),
    link AS (SELECT id, clinic_id, url, friend_id, delivery_id FROM tracked_link WHERE code = :code),
    counted AS (
        INSERT INTO link_click (clinic_id, link_id, friend_id, delivery_id, clicked_at)
        SELECT clinic_id, id, friend_id, delivery_id, :now FROM link
    )
    SELECT url, clinic_id FROM link, relaxed
    """
)


def _connection():
    if db.engine.dialect.name == "postgresql":
        return db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    return db.engine.begin()  # SQLite: saas.database opens a write transaction itself; this commits it


def follow(code: str, *, count: bool) -> str | None:
    """The URL behind a code (None: not ours), and its click counted unless ``count`` is False.

    Outside the ORM and its tenant hook, on purpose: the unguessable code is the only key, and the
    click takes its clinic from the link row itself. An autocommit connection spares the
    BEGIN/COMMIT round trips; on Postgres lookup and insert are one statement. A counted click
    marks its clinic's Japan day dirty for the roll-ups, as the session hooks do for ORM writes.
    """
    now = utcnow()
    with _connection() as connection:
        if count and connection.dialect.name == "postgresql":
            row = connection.execute(_FOLLOW_AND_COUNT, {"code": code, "now": now}).first()
        else:
            row = _follow_and_insert(connection, code, count, now)
    if row is not None and count:
        marks.mark_day(row.clinic_id, now)
    return row.url if row else None


def _follow_and_insert(connection, code: str, count: bool, now):
    links, clicks = TrackedLink.__table__, LinkClick.__table__
    row = connection.execute(
        sa.select(links.c.id, links.c.clinic_id, links.c.url, links.c.friend_id, links.c.delivery_id).where(
            links.c.code == code
        )
    ).first()
    if row is not None and count:
        connection.execute(
            sa.insert(clicks).values(
                clinic_id=row.clinic_id, link_id=row.id, friend_id=row.friend_id,
                delivery_id=row.delivery_id, clicked_at=now,
            )
        )  # fmt: skip
    return row


@dataclass(frozen=True)
class LinkStats:
    """Clicks of one URL of a delivery. ``unique``/``rate`` are None when counted per link only."""

    url: str
    clicks: int
    unique: int | None
    rate: float | None  # unique friends / friends sent, in percent


def _tracked(delivery_id: int) -> bool:
    return (
        db.session.scalar(sa.select(TrackedLink.id).where(TrackedLink.delivery_id == delivery_id).limit(1)) is not None
    )


def _per_friend_delivery(delivery_id: int) -> bool:
    return (
        db.session.scalar(
            sa.select(TrackedLink.id)
            .where(TrackedLink.delivery_id == delivery_id, TrackedLink.friend_id.is_not(None))
            .limit(1)
        )
        is not None
    )


def _sent_urls(delivery) -> list[str]:
    from saas.messaging.variables import clinic_context, render
    from saas.tenancy.models import Clinic

    return links_in(render(delivery.messages or [], clinic_context(db.session.get(Clinic, delivery.clinic_id))))


def clicks_by_link(delivery_id: int) -> list[LinkStats]:
    """Per URL of the delivery (current tenant scope): clicks, unique recipients and click rate.

    [] when the delivery sent no tracked link (or is another clinic's). Reads the click rows of
    this delivery only (index ``ix_link_click_clinic_delivery``), never its tracked links.
    """
    from saas.delivery.models import Delivery

    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None or not _tracked(delivery_id):
        return []
    per_friend = _per_friend_delivery(delivery_id)
    counted = {
        url: (clicks, unique)
        for url, clicks, unique in db.session.execute(
            sa.select(TrackedLink.url, sa.func.count(LinkClick.id), sa.func.count(sa.distinct(LinkClick.friend_id)))
            .join(TrackedLink, TrackedLink.id == LinkClick.link_id)
            .where(LinkClick.delivery_id == delivery_id)
            .group_by(TrackedLink.url)
        )
    }
    sent_urls = _sent_urls(delivery)
    urls = sent_urls + sorted(set(counted) - set(sent_urls))
    return [_stats(url, *counted.get(url, (0, 0)), per_friend, delivery.sent) for url in urls]


def unique_clickers(delivery_id: int) -> int | None:
    """Friends who tapped any of the delivery's tracked links, each counted once however many links
    or days (current tenant scope; index ``ix_link_click_clinic_delivery``). None when its links were
    shared (not per recipient), so taps cannot be told apart by friend. Not a sum of the per-day
    roll-up's ``friends``, which counts a friend again on each day they tapped."""
    if not _per_friend_delivery(delivery_id):
        return None
    return db.session.scalar(
        sa.select(sa.func.count(sa.distinct(LinkClick.friend_id))).where(
            LinkClick.delivery_id == delivery_id, LinkClick.friend_id.is_not(None)
        )
    )


def _stats(url: str, clicks: int, unique: int, per_friend: bool, sent: int) -> LinkStats:
    if not per_friend:
        return LinkStats(url, clicks, None, None)
    return LinkStats(url, clicks, unique, round(100 * unique / sent, 1) if sent else None)


def clicks_of_friend(friend_id: int) -> list[dict]:
    """What one friend clicked (current tenant scope): per delivery and URL, clicks and the last one."""
    rows = db.session.execute(
        sa.select(
            TrackedLink.delivery_id, TrackedLink.url, sa.func.count(LinkClick.id), sa.func.max(LinkClick.clicked_at)
        )
        .join(TrackedLink, TrackedLink.id == LinkClick.link_id)
        .where(LinkClick.friend_id == friend_id)
        .group_by(TrackedLink.delivery_id, TrackedLink.url)
        .order_by(sa.func.max(LinkClick.clicked_at).desc())
    )
    return [{"delivery_id": d, "url": url, "clicks": n, "last_clicked_at": last} for d, url, n, last in rows]
