"""Who works at a clinic, and the invitation → membership flow. Every change is audited."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from flask_babel import gettext as _

from saas.audit.services import record
from saas.auth import passwords, sessions
from saas.auth import services as auth_services
from saas.auth.models import Membership, User
from saas.auth.roles import Role, Scope
from saas.common import utcnow
from saas.extensions import db
from saas.members.models import Invitation
from saas.tenancy.models import Clinic
from saas.tenancy.scoping import platform_scope, tenant_scope

INVITATION_LIFETIME = timedelta(hours=72)


class MembershipChangeRefused(Exception):
    """The change is not allowed; the message is shown to the user."""


class InvitationUnusable(Exception):
    """The invitation link is unknown, used, revoked or expired; the message says which."""


@dataclass(frozen=True)
class MemberRow:
    membership: Membership
    user: User
    editable: bool  # only memberships granted at this clinic are managed from its page


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def members_of(clinic: Clinic) -> list[MemberRow]:
    """Every membership that reaches the clinic, from any scope, with its user."""
    agency_id = clinic.organization.agency_id
    statement = (
        sa.select(Membership)
        .join(User)
        .where(
            sa.or_(
                Membership.scope == Scope.PLATFORM,
                sa.and_(Membership.scope == Scope.AGENCY, Membership.agency_id == agency_id),
                sa.and_(Membership.scope == Scope.ORGANIZATION, Membership.organization_id == clinic.organization_id),
                sa.and_(Membership.scope == Scope.CLINIC, Membership.clinic_id == clinic.id),
            )
        )
        .order_by(Membership.scope, User.email)
    )
    return [
        MemberRow(m, m.user, m.scope == Scope.CLINIC and m.clinic_id == clinic.id)
        for m in db.session.scalars(statement)
    ]


# Least powerful first: the invitation form preselects the first one.
ROLES_BY_POWER = [Role.VIEWER, Role.ANALYST, Role.SENDER, Role.RESPONDER, Role.ADMIN, Role.OWNER]


def assignable_roles(actor_roles: set[str]) -> list[Role]:
    """The roles the actor may grant, least powerful first; only an owner may make someone an owner."""
    return [role for role in ROLES_BY_POWER if role != Role.OWNER or Role.OWNER in actor_roles]


def _clinic_membership(clinic: Clinic, membership_id: int) -> Membership | None:
    membership = db.session.get(Membership, membership_id)
    if membership is None or membership.scope != Scope.CLINIC or membership.clinic_id != clinic.id:
        return None
    return membership


def _check_change_allowed(membership: Membership, actor: User, actor_roles: set[str], new_role: str | None) -> None:
    if membership.user_id == actor.id:
        raise MembershipChangeRefused(_("ご自身の権限は変更・削除できません。別の管理者に依頼してください。"))
    touches_owner = membership.role == Role.OWNER or new_role == Role.OWNER
    if touches_owner and Role.OWNER not in actor_roles:
        raise MembershipChangeRefused(_("オーナー権限の付与・変更・削除はオーナーのみが行えます。"))


def change_role(clinic: Clinic, membership_id: int, new_role: str, actor: User, actor_roles: set[str]) -> Membership:
    membership = _clinic_membership(clinic, membership_id)
    if membership is None:
        raise LookupError(membership_id)
    if new_role not in set(Role):
        raise MembershipChangeRefused(_("不明な権限です。"))
    _check_change_allowed(membership, actor, actor_roles, new_role)
    old_role = membership.role
    membership.role = new_role
    record(
        "membership.update",
        clinic_id=clinic.id,
        target_type="membership",
        target_id=membership.id,
        details={"user_email": membership.user.email, "from": old_role, "to": new_role},
    )
    db.session.commit()
    return membership


def remove_membership(clinic: Clinic, membership_id: int, actor: User, actor_roles: set[str]) -> None:
    membership = _clinic_membership(clinic, membership_id)
    if membership is None:
        raise LookupError(membership_id)
    _check_change_allowed(membership, actor, actor_roles, None)
    record(
        "membership.delete",
        clinic_id=clinic.id,
        target_type="membership",
        target_id=membership.id,
        details={"user_email": membership.user.email, "role": membership.role},
    )
    user_id = membership.user_id
    db.session.delete(membership)
    sessions.end_all_for(user_id, "membership_removed")  # signed-in copies lose access at once
    db.session.commit()


def invite(clinic: Clinic, email: str, role: str, actor: User, actor_roles: set[str]) -> tuple[Invitation, str]:
    """Create an invitation and return it with the one-time token (only its hash is stored)."""
    if role not in {r.value for r in assignable_roles(actor_roles)}:
        raise MembershipChangeRefused(_("この権限で招待することはできません。"))
    email = email.strip().lower()
    now = utcnow()
    for earlier in pending_invitations(clinic):
        if earlier.email == email:
            earlier.revoked_at = now  # one live link per person
    token = secrets.token_urlsafe(32)
    invitation = Invitation(
        clinic_id=clinic.id,
        email=email,
        role=role,
        token_hash=hash_token(token),
        invited_by_user_id=actor.id,
        expires_at=now + INVITATION_LIFETIME,
    )
    db.session.add(invitation)
    db.session.flush()
    record(
        "invitation.create",
        clinic_id=clinic.id,
        target_type="invitation",
        target_id=invitation.id,
        details={"email": email, "role": role},
    )
    db.session.commit()
    return invitation, token


def pending_invitations(clinic: Clinic) -> list[Invitation]:
    statement = (
        sa.select(Invitation)
        .where(Invitation.clinic_id == clinic.id, Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None))
        .order_by(Invitation.created_at.desc())
    )
    return [i for i in db.session.scalars(statement) if i.expires_at > utcnow()]


def revoke_invitation(clinic: Clinic, invitation_id: int) -> None:
    invitation = db.session.get(Invitation, invitation_id)
    if invitation is None or invitation.clinic_id != clinic.id:
        raise LookupError(invitation_id)
    if invitation.revoked_at is None and invitation.accepted_at is None:
        invitation.revoked_at = utcnow()
        record(
            "invitation.revoke",
            clinic_id=clinic.id,
            target_type="invitation",
            target_id=invitation.id,
            details={"email": invitation.email},
        )
    db.session.commit()


def usable_invitation(token: str) -> Invitation:
    """The invitation for this link, or InvitationUnusable saying why it cannot be used."""
    with platform_scope("invitation link lookup by token hash"):
        invitation = db.session.scalars(sa.select(Invitation).where(Invitation.token_hash == hash_token(token))).first()
    if invitation is None:
        raise InvitationUnusable(_("この招待リンクは無効です。URLをご確認ください。"))
    if invitation.accepted_at is not None:
        raise InvitationUnusable(_("この招待リンクは既に使用されています。ログイン画面からログインしてください。"))
    if invitation.revoked_at is not None:
        raise InvitationUnusable(_("この招待は取り消されました。管理者にお問い合わせください。"))
    if invitation.expires_at <= utcnow():
        raise InvitationUnusable(
            _("この招待リンクの有効期限（72時間）が切れています。管理者に再度の招待を依頼してください。")
        )
    return invitation


def _burn(invitation: Invitation, user: User) -> None:
    """Mark the invitation used; a concurrent second use finds no unused row and fails."""
    burned = db.session.execute(
        sa.update(Invitation)
        .where(Invitation.id == invitation.id, Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None))
        .values(accepted_at=utcnow(), accepted_user_id=user.id)
        .execution_options(synchronize_session=False)
    )
    if burned.rowcount != 1:
        db.session.rollback()
        raise InvitationUnusable(_("この招待リンクは既に使用されています。ログイン画面からログインしてください。"))


def prepare_account(token: str, *, name: str, password: str) -> None:
    """The invitee asked for an account: create it unless one exists for the email.

    Either way the caller answers the same ("sign in to accept"), so the page never tells
    whoever holds the link whether the address already has an account. An existing account
    is left untouched; its owner accepts by signing in normally (throttle, two-factor).
    """
    invitation = usable_invitation(token)
    problem = passwords.problem_with(password, user_inputs=[invitation.email, name])
    if problem:
        raise MembershipChangeRefused(problem)
    if auth_services.get_user_by_email(invitation.email) is not None:
        auth_services.hash_password(password)  # the same work as a new account: no timing difference
        return
    auth_services.create_user(invitation.email, name.strip() or invitation.email, password)
    db.session.commit()


def accept(token: str, user: User) -> Membership:
    """The signed-in invitee accepts: the invitation is used and the membership granted (audited)."""
    invitation = usable_invitation(token)
    if user.email != invitation.email:
        raise MembershipChangeRefused(
            _("この招待は別のメールアドレス宛てです。招待されたメールアドレスでログインしてください。")
        )
    with tenant_scope(invitation.clinic_id):
        _burn(invitation, user)
    membership = next(
        (m for m in user.memberships if m.scope == Scope.CLINIC and m.clinic_id == invitation.clinic_id), None
    )
    if membership is None:
        membership = Membership(role=invitation.role, scope=Scope.CLINIC, clinic_id=invitation.clinic_id)
        user.memberships.append(membership)
    else:
        membership.role = invitation.role
    db.session.flush()
    record(
        "membership.create",
        clinic_id=invitation.clinic_id,
        target_type="membership",
        target_id=membership.id,
        details={"user_email": user.email, "role": invitation.role, "invitation_id": invitation.id},
        actor=user,
    )
    db.session.commit()
    return membership


def _only_here(user: User, clinic: Clinic) -> bool:
    """Whether every membership of the user is at this clinic (so its admins answer for the account)."""
    return bool(user.memberships) and all(
        m.scope == Scope.CLINIC and m.clinic_id == clinic.id for m in user.memberships
    )


def _account_action_target(clinic: Clinic, user_id: int, actor: User, actor_roles: set[str]) -> User:
    user = db.session.get(User, user_id)
    if user is None or not any(m.scope == Scope.CLINIC and m.clinic_id == clinic.id for m in user.memberships):
        raise LookupError(user_id)
    if user.id == actor.id:
        raise MembershipChangeRefused(_("ご自身のアカウントには実行できません。"))
    if not _only_here(user, clinic):
        raise MembershipChangeRefused(
            _("このスタッフは他のクリニックや上位の範囲にも権限があるため、その範囲の管理者が行います。")
        )
    if Role.OWNER in user.roles and Role.OWNER not in actor_roles:
        raise MembershipChangeRefused(_("オーナーのアカウントにはオーナーのみが実行できます。"))
    return user


def reset_two_factor(clinic: Clinic, user_id: int, actor: User, actor_roles: set[str]) -> User:
    """An admin's audited reset: the staff member's key is forgotten and they enrol again at next login."""
    user = _account_action_target(clinic, user_id, actor, actor_roles)
    auth_services.reset_two_factor(user)
    record(
        "two_factor.reset",
        clinic_id=clinic.id,
        target_type="user",
        target_id=user.id,
        details={"user_email": user.email},
    )
    db.session.commit()
    return user


def sign_out_everywhere(clinic: Clinic, user_id: int, actor: User, actor_roles: set[str]) -> int:
    """End every session of the staff member at once (audited); returns how many ended."""
    user = _account_action_target(clinic, user_id, actor, actor_roles)
    ended = sessions.end_all_for(user.id, "signed_out_by_admin")
    record(
        "session.revoke_all",
        clinic_id=clinic.id,
        target_type="user",
        target_id=user.id,
        details={"user_email": user.email, "ended": ended},
    )
    db.session.commit()
    return ended
