"""The demo: staff for ``flask demo`` (one user per role over the demo tenants in ``tenants/``),
and its LINE sandbox side for ``flask dev`` (channels, LINE Login, rich menus, patients who follow)."""

from __future__ import annotations

import hashlib
import secrets

import sqlalchemy as sa

from saas.auth import services as auth_services
from saas.auth.models import User
from saas.auth.roles import Role
from saas.extensions import db
from saas.tenancy.models import Agency, Clinic, Organization
from saas.tenancy.services import add_membership

DEMO_PASSWORD = "tsunagu-demo-2026"
_SCOPE_MODELS = {"agency": Agency, "organization": Organization, "clinic": Clinic}

# (email, name, role, scope slug kind, scope slug)
STAFF = [
    ("platform@tsunagu.example", "プラットフォーム管理者", Role.OWNER, "platform", None),
    ("agency@mirai.example", "代理店 運用担当", Role.ADMIN, "agency", "mirai-support"),
    ("hq@sakura.example", "さくら会 本部", Role.ADMIN, "organization", "sakura-kai"),
    ("owner@sakura.example", "渋谷院 院長", Role.OWNER, "clinic", "sakura-shibuya"),
    ("sender@sakura.example", "渋谷院 情報発信担当", Role.SENDER, "clinic", "sakura-shibuya"),
    ("responder@sakura.example", "渋谷院 受付（問い合わせ対応）", Role.RESPONDER, "clinic", "sakura-shibuya"),
    ("analyst@sakura.example", "渋谷院 分析担当", Role.ANALYST, "clinic", "sakura-shibuya"),
    ("viewer@sakura.example", "渋谷院 閲覧のみ", Role.VIEWER, "clinic", "sakura-shibuya"),
    ("staff@hikari.example", "ひかり健診 事務", Role.ADMIN, "clinic", "hikari-kenshin"),
]


def _scope_target(scope: str, slug: str | None) -> dict:
    """The keyword add_membership takes for this scope, found by slug among the applied manifests."""
    if scope == "platform":
        return {}
    model = _SCOPE_MODELS[scope]
    row = db.session.scalars(sa.select(model).where(model.slug == slug)).first()
    if row is None:
        raise LookupError(f"demo {scope} {slug!r} is missing: apply the manifests in tenants/ first")
    return {scope: row}


def load_staff(password: str = DEMO_PASSWORD) -> list[User]:
    """Create one user per demo role (idempotent)."""
    users = []
    for email, name, role, scope, slug in STAFF:
        user = auth_services.get_user_by_email(email)
        if user is None:
            user = auth_services.create_user(email, name, password)
            add_membership(user, role, **_scope_target(scope, slug))
        users.append(user)
    db.session.flush()
    return users


# The demo in the LINE sandbox (``flask dev``) -------------------------------------------------

DEMO_PATIENTS = ["山田 花子", "佐藤 健太", "鈴木 美咲", "高橋 大輔", "田中 さくら"]


def demo_user_id(clinic_slug: str, index: int) -> str:
    """The LINE user id of a clinic's demo patient: the same on every start."""
    return "U" + hashlib.sha256(f"{clinic_slug}:{index}".encode()).hexdigest()[:32]


def _all_clinics() -> list[Clinic]:
    return db.session.scalars(sa.select(Clinic).order_by(Clinic.id)).all()


def connect_demo_channels(sandbox_url: str, public_url: str) -> list[tuple[str, str]]:
    """Give every demo clinic a sandbox channel, LINE Login and five virtual patients.

    The sandbox keeps its state in memory, so channels and patients are registered again on
    every start, with the ids and credentials kept in the database. Returns ``(channel id,
    clinic slug)`` pairs for :func:`follow_demo_patients`.
    """
    from saas.sandbox.control import SandboxControl

    control = SandboxControl(sandbox_url)
    clinics = _all_clinics()
    for clinic in clinics:
        if not clinic.line_connected:
            clinic.line_channel_id = str(2000000000 + clinic.id)
            clinic.line_channel_secret = secrets.token_hex(16)
            clinic.line_access_token = secrets.token_urlsafe(32)
            clinic.line_bot_user_id = "U" + hashlib.sha256(clinic.slug.encode()).hexdigest()[:32]
    db.session.commit()
    for clinic in clinics:
        control.add_channel(
            clinic.line_channel_id,
            clinic.line_channel_secret,
            clinic.line_access_token,
            bot_user_id=clinic.line_bot_user_id,
            display_name=clinic.name,
            webhook_url=f"{public_url}/webhooks/line/{clinic.webhook_key}",
        )
        for index, name in enumerate(DEMO_PATIENTS):
            control.add_patient(clinic.line_channel_id, name, user_id=demo_user_id(clinic.slug, index))
        _enable_demo_booking(control, clinic)
    return [(clinic.line_channel_id, clinic.slug) for clinic in clinics]


def _enable_demo_booking(control, clinic: Clinic) -> None:
    """Native booking with a sandbox LINE Login channel, so the booking page works offline."""
    from saas.booking import services as booking
    from saas.booking.models import BookingMode
    from saas.tenancy.scoping import tenant_scope

    with tenant_scope(clinic.id):
        settings = booking.get_settings(clinic.id)
        if not settings.login_channel_id:
            settings.mode = BookingMode.NATIVE
            settings.login_channel_id = str(1600000000 + clinic.id)
            settings.login_channel_secret = secrets.token_hex(16)
        db.session.commit()
        control.add_login_channel(
            settings.login_channel_id, settings.login_channel_secret, bot_channel_id=clinic.line_channel_id
        )


def deploy_demo_menus() -> None:
    """Every demo clinic gets the six-area rich menu (予約, 診療時間, アクセス, FAQ, オンライン診療,
    採用情報) as its default, deployed to the sandbox on each start."""
    from saas.richmenu import services as richmenu
    from saas.richmenu.layouts import preset_areas
    from saas.richmenu.models import RichMenu
    from saas.tenancy.scoping import tenant_scope

    for clinic in _all_clinics():
        with tenant_scope(clinic.id):
            group = richmenu.get_organization_links(clinic.organization_id)
            base = f"https://{clinic.organization.slug}.example.jp"  # for groups whose manifest has none
            richmenu.set_organization_links(
                clinic.organization_id,
                recruitment_url=group.recruitment_url or f"{base}/recruit",
                online_consultation_url=group.online_consultation_url or f"{base}/online",
            )
            menu = db.session.scalars(sa.select(RichMenu).where(RichMenu.is_default.is_(True))).first()
            if menu is None:
                size, areas = preset_areas("full6")
                menu = RichMenu(name="基本メニュー", size=size, areas=areas, is_default=True)
                db.session.add(menu)
            db.session.commit()
            richmenu.deploy(clinic, menu)


def demo_followers() -> set[str]:
    """LINE user ids of demo patients the portal already has as following friends (call in app context)."""
    from saas.friends.models import Friend, FriendStatus
    from saas.tenancy.scoping import platform_scope

    with platform_scope("demo followers"):
        return set(db.session.scalars(sa.select(Friend.line_user_id).where(Friend.status == FriendStatus.FOLLOWING)))


def follow_demo_patients(sandbox_url: str, channels: list[tuple[str, str]], known: set[str] = frozenset()) -> list[str]:
    """Let every virtual patient add their clinic as a friend; call once the portal is healthy.

    The sandbox forgets its patients when it stops. Patients the portal already has as friends
    (``known``, from an earlier start) follow again in the sandbox without a follow webhook, so a
    restart neither greets them twice nor spends the clinic's messages.
    Returns a line for each follow webhook the portal did not accept (none when all went well)."""
    from saas.sandbox.control import SandboxControl

    control, problems, greeted = SandboxControl(sandbox_url), [], []
    for channel_id, slug in channels:
        for index in range(len(DEMO_PATIENTS)):
            user_id = demo_user_id(slug, index)
            answer = control.follow(channel_id, user_id, deliver=user_id not in known)
            if user_id in known:
                continue
            greeted.append((channel_id, user_id, index))
            if answer.get("status") != 200:
                problems.append(f"{slug} patient {index}: webhook answered {answer.get('status')}")
    for channel_id, user_id, index in greeted:  # after every follow, so the greetings are not kept waiting
        if index < len(DEMO_PATIENTS) - 1:  # all but one say yes to the consent question
            control.postback(channel_id, user_id, "consent:marketing:yes")
    return problems
