"""Issue 10 item 6: a request-size limit everywhere and per upload route, enforced before the
body is read (a 200 MiB POST to the login page used to grow the portal by 600 MiB)."""

from __future__ import annotations

import io

import sqlalchemy as sa

from saas.extensions import db
from saas.richmenu.models import RichMenu
from saas.tenancy.scoping import tenant_scope
from tests.conftest import csrf_token
from tests.factories import gen_clinic, gen_user
from tests.helpers import login

MiB = 1024 * 1024


class EndlessBody(io.RawIOBase):
    """A request body of ``size`` bytes produced on demand, counting how much the server read."""

    def __init__(self, size: int):
        self.size, self.read_so_far = size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:  # the test client measures the body by seeking to its end
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.position = self.size if whence == 2 else offset
        return self.position

    def tell(self) -> int:
        return getattr(self, "position", 0)

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.size - self.read_so_far)
        buffer[:n] = b"a" * n
        self.read_so_far += n
        return n


def test_a_200_mib_login_post_is_refused_without_being_read(client):
    body = EndlessBody(200 * MiB)
    response = client.post(
        "/auth/login",
        input_stream=body,
        content_length=body.size,
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 413
    assert body.read_so_far == 0


def test_a_chunked_body_without_length_is_cut_off_at_the_limit(client, app):
    body = EndlessBody(200 * MiB)
    response = client.post(
        "/auth/login",
        input_stream=body,
        content_type="application/x-www-form-urlencoded",
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413
    assert body.read_so_far <= app.config["MAX_CONTENT_LENGTH"] + 128 * 1024


def test_the_rich_menu_upload_has_its_own_smaller_limit(client, app):
    clinic = gen_clinic()
    login(client, gen_user("admin", clinic=clinic))
    with tenant_scope(clinic.id):
        menu = RichMenu(clinic_id=clinic.id, name="基本", areas=[])
        db.session.add(menu)
        db.session.commit()
        menu_id = menu.id
    oversized = io.BytesIO(b"\x89PNG" + b"0" * int(1.5 * MiB))  # under MAX_CONTENT_LENGTH, over the route's
    assert 1.5 * MiB < app.config["MAX_CONTENT_LENGTH"]
    response = client.post(
        f"/c/{clinic.slug}/richmenus/{menu_id}/image",
        data={"image": (oversized, "menu.png"), "csrf_token": csrf_token(client)},
        content_type="multipart/form-data",
    )
    assert response.status_code == 413
    assert "データが大きすぎます" in response.get_data(as_text=True)
    with tenant_scope(clinic.id):
        assert db.session.scalars(sa.select(RichMenu.image)).one() is None
