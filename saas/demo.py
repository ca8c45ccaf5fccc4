"""Demo staff for ``flask demo``: one user per role over the demo tenants in ``tenants/``."""

from __future__ import annotations

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
