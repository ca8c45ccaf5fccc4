"""Roles, scopes and what each role may do. Permissions are data, checked in one place."""

from __future__ import annotations

import enum

from flask_babel import lazy_gettext as _l


class Role(enum.StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    SENDER = "sender"  # 情報発信担当
    RESPONDER = "responder"  # 問い合わせ対応担当
    ANALYST = "analyst"  # 分析・改善担当
    VIEWER = "viewer"


class Scope(enum.StrEnum):
    PLATFORM = "platform"
    AGENCY = "agency"
    ORGANIZATION = "organization"
    CLINIC = "clinic"


ROLE_LABELS = {
    Role.OWNER: _l("オーナー"),
    Role.ADMIN: _l("管理者"),
    Role.SENDER: _l("情報発信担当"),
    Role.RESPONDER: _l("問い合わせ対応担当"),
    Role.ANALYST: _l("分析・改善担当"),
    Role.VIEWER: _l("閲覧のみ"),
}

SCOPE_LABELS = {
    Scope.PLATFORM: _l("プラットフォーム"),
    Scope.AGENCY: _l("代理店"),
    Scope.ORGANIZATION: _l("医療法人・運営法人"),
    Scope.CLINIC: _l("クリニック"),
}

# Roles that can read patients' messages; they must use two-factor login.
ROLES_READING_PATIENT_MESSAGES = frozenset({Role.OWNER, Role.ADMIN, Role.RESPONDER})

_EVERYONE = frozenset(Role)
PERMISSIONS: dict[str, frozenset[Role]] = {
    "clinic.view": _EVERYONE,
    "clinic.settings": frozenset({Role.OWNER, Role.ADMIN}),
    "members.manage": frozenset({Role.OWNER, Role.ADMIN}),
    "friends.view": _EVERYONE,
    "friends.edit": frozenset({Role.OWNER, Role.ADMIN, Role.SENDER, Role.RESPONDER}),
    "friends.export": frozenset({Role.OWNER, Role.ADMIN}),
    # Form answers (問診票) are health data: the roles that read patients' messages, with two-factor.
    "forms.view_answers": ROLES_READING_PATIENT_MESSAGES,
    "messages.send": frozenset({Role.OWNER, Role.ADMIN, Role.SENDER}),
    "chat.read": ROLES_READING_PATIENT_MESSAGES,
    "chat.reply": ROLES_READING_PATIENT_MESSAGES,
    "schedule.edit": frozenset({Role.OWNER, Role.ADMIN, Role.SENDER, Role.RESPONDER}),
    "autoreply.edit": frozenset({Role.OWNER, Role.ADMIN, Role.SENDER, Role.RESPONDER}),
    "analytics.view": frozenset({Role.OWNER, Role.ADMIN, Role.SENDER, Role.ANALYST}),
    "audit.view": frozenset({Role.OWNER, Role.ADMIN}),
    "billing.manage": frozenset({Role.OWNER, Role.ADMIN}),
    "booking.manage": frozenset({Role.OWNER, Role.ADMIN, Role.SENDER, Role.RESPONDER}),
    "richmenu.edit": frozenset({Role.OWNER, Role.ADMIN, Role.SENDER}),
    "coupons.manage": frozenset({Role.OWNER, Role.ADMIN, Role.SENDER}),
    "coupons.redeem": frozenset({Role.OWNER, Role.ADMIN, Role.SENDER, Role.RESPONDER}),
    "adcheck.approve": frozenset({Role.OWNER, Role.ADMIN}),  # block-level 医療広告 findings
}


def allows(roles: set[str] | frozenset[str], permission: str) -> bool:
    """Whether any of the roles grants the permission (unknown permissions grant nothing)."""
    granted = PERMISSIONS.get(permission, frozenset())
    return any(role in granted for role in roles)
