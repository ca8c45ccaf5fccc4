"""Export and erasure reach every table that holds a patient's data (issue 10 item 11).

The tables are found from the metadata (a LINE user id column, a friend id or a foreign key to
``friend``), so a table another engineer adds later fails here until it is registered in
``saas.privacy.coverage``.
"""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from saas.extensions import db
from saas.friends.models import Friend
from saas.privacy import coverage, services
from saas.tenancy.scoping import platform_scope, tenant_scope
from tests.factories import gen_clinic, gen_user
from tests.test_route_walker import seed_every_clinic_table, snapshot

PATIENT = "U" + "5" * 32
NAME = "佐藤 花子"


def test_every_table_with_a_line_user_id_or_friend_is_covered_by_export_and_erasure():
    assert coverage.uncovered(db.metadata) == {}, "register these tables in saas/privacy/coverage.py"


def test_the_check_catches_a_table_added_later_and_registering_it_is_one_line():
    metadata = sa.MetaData()
    sa.Table("friend", metadata, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table(
        "coupon_use",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("holder", sa.ForeignKey("friend.id")),
        sa.Column("line_user_id", sa.String(64)),
    )
    assert coverage.uncovered(metadata) == {"coupon_use": ["holder", "line_user_id"]}
    coverage.patient_table("coupon_use", keys=("holder", "line_user_id"), erase=coverage.DELETE, section="coupons")
    try:
        assert coverage.uncovered(metadata) == {}
    finally:
        coverage._REGISTRY.pop("coupon_use")
    with pytest.raises(ValueError):
        coverage.patient_table("coupon_use", keys=("holder",), erase=coverage.KEEP)  # keeping needs a reason


# Where the app writes the patient's words and name besides the keys (independent of the registry).
PERSONAL = {
    "message": {"text": f"{NAME}です。腰が痛みます"},
    "webhook_event": {"payload": {"message": {"text": f"{NAME}です"}}},
    "booking": {"patient_name": NAME},
    "delivery_recipient": {"messages": [{"type": "text", "text": f"{NAME}さん、明日のご予約です"}]},
}


def _patient_in_every_table(clinic, staff) -> tuple[int, dict[str, int]]:
    seeded = seed_every_clinic_table(clinic.id, {"clinic": clinic.id, "user": staff.id})
    friends = db.metadata.tables["friend"]
    with platform_scope("test: point every seeded row at the patient"):
        db.session.execute(
            friends.update().where(friends.c.id == seeded["friend"]).values(line_user_id=PATIENT, display_name=NAME)
        )
        for entry in coverage.registered().values():
            table = db.metadata.tables.get(entry.table)
            if table is None or entry.table not in seeded:
                continue
            values = {key: seeded["friend"] if key == "friend_id" or "line_user" not in key else PATIENT
                      for key in entry.keys}  # fmt: skip
            values.update({key: [seeded["friend"] + 1, seeded["friend"]] for key in coverage.FRIEND_LISTS
                           if key in entry.keys})  # fmt: skip
            values.update(PERSONAL.get(entry.table, {}))
            db.session.execute(table.update().where(table.c.id == seeded[entry.table]).values(values))
        db.session.commit()
    return seeded["friend"], seeded


def test_export_and_erasure_reach_every_registered_table(app):
    clinic = gen_clinic()
    staff = gen_user("owner", clinic=clinic)
    friend_id, seeded = _patient_in_every_table(clinic, staff)
    reachable = [e for e in coverage.registered().values() if e.table in seeded]
    assert {"booking", "conversation_state", "delivery_recipient", "message"} <= {e.table for e in reachable}

    with tenant_scope(clinic.id):
        friend = db.session.get(Friend, friend_id)
        data = services.export_data(friend)
        for entry in reachable:
            section = json.dumps(data[entry.section], ensure_ascii=False, default=str)
            assert section not in ("[]", "{}"), f"the export misses {entry.table}"
        services.erase(friend)
        db.session.commit()

    after = json.dumps(snapshot(), ensure_ascii=False)
    assert PATIENT not in after, "the LINE user id survived erasure somewhere"
    assert NAME not in after, "the patient's name (or a message rendered with it) survived erasure"
    with platform_scope("test: what is left"):
        for entry in reachable:
            left = db.session.scalar(
                sa.select(sa.func.count()).where(db.metadata.tables[entry.table].c.id == seeded[entry.table])
            )
            assert left == (0 if entry.erase == coverage.DELETE else 1), f"{entry.table}: {entry.erase} not applied"
