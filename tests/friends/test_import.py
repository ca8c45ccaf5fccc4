"""CSV import of visits and friend fields: a dry run per line, then all lines or none."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa

from saas.audit.models import AuditEvent
from saas.extensions import db
from saas.fields import services as fields
from saas.fields.models import FriendField
from saas.friends.models import Friend
from saas.reminders import rules
from saas.tenancy.scoping import tenant_scope
from tests.conftest import csrf_token
from tests.factories import gen_clinic, gen_user
from tests.helpers import login

TARO, HANAKO = "U" + "a" * 32, "U" + "b" * 32


def _clinic_with_friends():
    clinic = gen_clinic()
    with tenant_scope(clinic.id):
        taro = Friend(line_user_id=TARO, display_name="田中 太郎", attributes={})
        hanako = Friend(line_user_id=HANAKO, display_name="山田 花子", attributes={})
        db.session.add_all([taro, hanako])
        db.session.flush()
        card = fields.save_field(FriendField(), key="card_no", label="診察券番号", kind="text")
        fields.save_field(FriendField(), key="last_visit", label="最終来院日", kind="date")
        fields.save_field(FriendField(), key="age_band", label="年代", kind="choice", choices=["30代", "40代"])
        fields.set_value(hanako, card, "A-002")
        db.session.commit()
    return clinic


def _values(clinic) -> dict[str, dict[str, str]]:
    db.session.expire_all()
    with tenant_scope(clinic.id):
        return {f.display_name: fields.values_by_key(f) for f in db.session.scalars(sa.select(Friend))}


def _post(client, clinic, text: str, action: str):
    return client.post(
        f"/c/{clinic.slug}/friends/import", data={"csrf_token": csrf_token(client), "text": text, "action": action}
    )


GOOD = f"LINEユーザーID,診察券番号,来院日,年代\n{TARO},,2025-05-10,40代\n,A-002,2025/06/01,30代\n"
BAD = GOOD + ",A-999,2025-06-02,30代\n" + f"{TARO},,来週,30代\n"


def test_a_dry_run_shows_each_lines_match_and_error_and_changes_nothing(client, as_platform):
    clinic = _clinic_with_friends()
    login(client, gen_user("admin", clinic=clinic))
    before = _values(clinic)
    page = _post(client, clinic, BAD, "check").get_data(as_text=True)
    assert "田中 太郎" in page and "山田 花子" in page
    assert "友だちが見つかりません" in page and "日付は 2025-04-01 の形で入力してください" in page
    assert "4 行中 2 行に誤りがあります" in page and 'data-testid="apply"' not in page
    assert _values(clinic) == before


def test_applying_a_file_with_one_bad_line_writes_nothing(client, as_platform):
    clinic = _clinic_with_friends()
    login(client, gen_user("admin", clinic=clinic))
    before = _values(clinic)
    assert _post(client, clinic, BAD, "apply").status_code == 400
    assert _values(clinic) == before


def test_applying_a_good_file_sets_fields_and_visits_which_recall_rules_use(client, as_platform):
    clinic = _clinic_with_friends()
    login(client, gen_user("admin", clinic=clinic))
    checked = _post(client, clinic, GOOD, "check").get_data(as_text=True)
    assert 'data-testid="apply"' in checked and "来院日: 2025-05-10" in checked
    assert "2 行を取り込みました" in _post(client, clinic, GOOD, "apply").get_data(as_text=True)
    values = _values(clinic)
    assert values["田中 太郎"] == {"last_visit": "2025-05-10", "age_band": "40代"}
    assert values["山田 花子"] == {"card_no": "A-002", "last_visit": "2025-06-01", "age_band": "30代"}
    older = f"LINEユーザーID,来院日\n{TARO},2024-01-01\n"
    _post(client, clinic, older, "apply")
    assert _values(clinic)["田中 太郎"]["last_visit"] == "2025-05-10", "a visit never moves 最終来院日 back"
    with tenant_scope(clinic.id):
        visits = rules.last_visits(datetime(2025, 12, 1))
        assert sorted(visits.values()) == [date(2025, 5, 10), date(2025, 6, 1)]
        imports = sa.select(AuditEvent.details).where(AuditEvent.action == "friends.imported").order_by(AuditEvent.id)
        assert db.session.scalars(imports).all() == [{"rows": 2}, {"rows": 1}]


def test_an_unknown_column_or_no_key_column_is_refused_for_the_whole_file(client, as_platform):
    clinic = _clinic_with_friends()
    login(client, gen_user("admin", clinic=clinic))
    unknown = _post(client, clinic, f"LINEユーザーID,血液型\n{TARO},A\n", "check").get_data(as_text=True)
    assert "不明な列があります: 血液型" in unknown
    keyless = _post(client, clinic, "年代\n30代\n", "check").get_data(as_text=True)
    assert "「LINEユーザーID」か「診察券番号」の列が必要です" in keyless
