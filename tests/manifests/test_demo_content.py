"""The demo clinics answer every rich-menu button that sends a message (none falls through to the inbox)."""

from __future__ import annotations

import sqlalchemy as sa

from saas.autoreply import services as autoreply
from saas.config import ROOT
from saas.extensions import db
from saas.manifests.apply import apply_file, manifest_files
from saas.richmenu.layouts import FEATURES
from saas.tenancy.models import Clinic
from saas.tenancy.scoping import platform_scope, tenant_scope


def test_every_message_button_of_the_demo_menus_gets_an_answer_in_every_demo_clinic():
    with platform_scope("test: demo manifests"):
        for path in manifest_files(ROOT / "tenants"):
            apply_file(path)
        db.session.commit()
        clinics = db.session.scalars(sa.select(Clinic)).all()
    texts = [action["text"] for _label, action in FEATURES.values() if action["type"] == "message"]
    assert "よくある質問" in texts
    for clinic in clinics:
        with tenant_scope(clinic.id):
            for text in texts:
                reply = autoreply.reply_to(clinic, text, dry_run=True)
                assert reply.kind == "rule", f"{clinic.slug}: 「{text}」 fell through to {reply.kind}"
