"""Attribute segments count the friends whose attribute has the value now: after edits, bulk
updates, unfollows and erasure, within the clinic, with status and consent as before."""

from __future__ import annotations

import sqlalchemy as sa

from saas.common import utcnow
from saas.delivery.audience import AudienceCounts, count_audience, eligible_friends
from saas.extensions import db
from saas.friends import services as friends
from saas.friends.models import Friend, FriendStatus
from saas.privacy import services as privacy
from saas.tenancy.scoping import tenant_scope
from tests.factories import gen_clinic

THIRTIES = {"attributes": {"age_band": "30代"}}


def add_friend(clinic, name: str, attributes: dict, consent_marketing: bool = True, **fields) -> int:
    fields["consent_marketing"] = consent_marketing
    with tenant_scope(clinic.id):
        friend = Friend(line_user_id="U" + name, display_name=name, attributes=attributes, **fields)
        db.session.add(friend)
        db.session.commit()
        return friend.id


def counts(clinic, segment=THIRTIES) -> AudienceCounts:
    with tenant_scope(clinic.id):
        result = count_audience("segment", segment)
        db.session.rollback()
        return result


def test_an_attribute_count_honours_status_and_consent():
    clinic = gen_clinic()
    add_friend(clinic, "a", {"age_band": "30代", "interest": "美容"})
    add_friend(clinic, "b", {"age_band": "30代"})
    add_friend(clinic, "c", {"age_band": "30代"}, status=FriendStatus.BLOCKED)
    add_friend(clinic, "d", {"age_band": "30代"}, consent_marketing=False)
    add_friend(clinic, "e", {"age_band": "40代"})
    add_friend(clinic, "f", {"age_band": 30})  # not the text 30代

    assert counts(clinic) == AudienceCounts(matched=4, eligible=2, blocked=1, no_consent=1)
    both = {"attributes": {"age_band": "30代", "interest": "美容"}}
    assert counts(clinic, both) == AudienceCounts(matched=1, eligible=1, blocked=0, no_consent=0)
    with tenant_scope(clinic.id):
        assert [f.display_name for f in eligible_friends("segment", THIRTIES)] == ["a", "b"]


def test_another_clinics_friends_with_the_value_are_not_counted():
    clinic, other = gen_clinic(), gen_clinic()
    add_friend(clinic, "a", {"age_band": "30代"})
    add_friend(other, "b", {"age_band": "30代"})
    add_friend(other, "c", {"age_band": "30代"})

    assert counts(clinic).matched == 1
    assert counts(other).matched == 2


def test_the_count_follows_an_edited_attribute_and_a_bulk_update():
    clinic = gen_clinic()
    first = add_friend(clinic, "a", {"age_band": "30代"})
    add_friend(clinic, "b", {"age_band": "30代"})
    with tenant_scope(clinic.id):
        db.session.get(Friend, first).attributes = {"age_band": "40代"}
        db.session.commit()
    assert counts(clinic).matched == 1
    assert counts(clinic, {"attributes": {"age_band": "40代"}}).matched == 1

    with tenant_scope(clinic.id):
        db.session.execute(sa.update(Friend).values(attributes={"age_band": "30代", "rank": "gold"}))
        db.session.commit()
    assert counts(clinic).matched == 2
    assert counts(clinic, {"attributes": {"age_band": "40代"}}).matched == 0
    assert counts(clinic, {"attributes": {"rank": "gold"}}).matched == 2


def test_an_unfollow_moves_the_friend_from_eligible_to_blocked():
    clinic = gen_clinic()
    leaving = add_friend(clinic, "a", {"age_band": "30代"})
    add_friend(clinic, "b", {"age_band": "30代"})
    with tenant_scope(clinic.id):
        friends.mark_blocked(db.session.get(Friend, leaving), utcnow())
        db.session.commit()

    assert counts(clinic) == AudienceCounts(matched=2, eligible=1, blocked=1, no_consent=0)


def test_erased_and_deleted_friends_are_no_longer_counted():
    clinic = gen_clinic()
    erased = add_friend(clinic, "a", {"age_band": "30代"})
    deleted = add_friend(clinic, "b", {"age_band": "30代"})
    add_friend(clinic, "c", {"age_band": "30代"})
    with tenant_scope(clinic.id):
        privacy.erase(db.session.get(Friend, erased))
        db.session.commit()
        db.session.delete(db.session.get(Friend, deleted))
        db.session.commit()

    assert counts(clinic).matched == 1
