"""``flask rotate-encryption`` moves every encrypted column to the newest key."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from saas.auth.models import User
from saas.crypto import DecryptionError
from saas.extensions import db
from saas.security.rotation import encrypted_columns
from saas.tenancy.models import Clinic
from tests.factories import gen_clinic, gen_user

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


@pytest.fixture
def keys(app):
    saved = app.config["ENCRYPTION_KEY"]
    app.config["ENCRYPTION_KEY"] = OLD
    yield app.config
    app.config["ENCRYPTION_KEY"] = saved


def _raw(table: str, column: str, row_id: int) -> str:
    return db.session.execute(sa.text(f"SELECT {column} FROM {table} WHERE id = :id"), {"id": row_id}).scalar_one()


def test_encrypted_columns_are_discovered_from_the_models():
    names = {c.name for c in encrypted_columns()}
    assert {"clinic.line_channel_secret", "clinic.line_access_token", "user.totp_secret"} <= names


def test_rotation_reencrypts_everything_and_the_old_key_is_no_longer_needed(keys, runner):
    clinic = gen_clinic(line_channel_secret="channel-secret", line_access_token="access-token")
    user = gen_user("admin", clinic=clinic)
    secret, clinic_id, user_id = user.totp_secret, clinic.id, user.id
    old_token = _raw("clinic", "line_channel_secret", clinic.id)
    assert Fernet(OLD.encode()).decrypt(old_token.encode()) == b"channel-secret"

    keys["ENCRYPTION_KEY"] = f"{NEW},{OLD}"
    result = runner.invoke(args=["rotate-encryption"])
    assert result.exit_code == 0, result.output
    assert "clinic.line_channel_secret: 1" in result.output and "user.totp_secret: 1" in result.output

    keys["ENCRYPTION_KEY"] = NEW  # the old key is gone
    db.session.expunge_all()
    clinic = db.session.get(Clinic, clinic_id)
    assert clinic.line_channel_secret == "channel-secret" and clinic.line_access_token == "access-token"
    assert db.session.get(User, user_id).totp_secret == secret
    assert Fernet(NEW.encode()).decrypt(_raw("clinic", "line_channel_secret", clinic_id).encode()) == b"channel-secret"


def test_rotation_without_the_old_key_changes_nothing(keys, runner):
    clinic_id = gen_clinic(line_channel_secret="channel-secret").id
    before = _raw("clinic", "line_channel_secret", clinic_id)
    keys["ENCRYPTION_KEY"] = NEW  # operator forgot to keep the old key
    result = runner.invoke(args=["rotate-encryption"])
    assert result.exit_code != 0 and "変更なし" in result.output
    assert _raw("clinic", "line_channel_secret", clinic_id) == before
    keys["ENCRYPTION_KEY"] = OLD
    db.session.expunge_all()
    assert db.session.get(Clinic, clinic_id).line_channel_secret == "channel-secret"
    keys["ENCRYPTION_KEY"] = NEW
    db.session.expunge_all()
    with pytest.raises(DecryptionError):
        db.session.get(Clinic, clinic_id)
