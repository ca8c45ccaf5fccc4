"""Issue 10 item 7: the login throttle cannot be used to lock a real user out, and says when the
pause ends. Counted per (email, address) pair and per address; the per-email limit pauses only
addresses where the user never signed in."""

from __future__ import annotations

import re

from tests.conftest import csrf_token
from tests.factories import PASSWORD, gen_clinic, gen_user
from tests.helpers import client_at


def _try(app, address: str, email: str, password: str) -> int:
    client = client_at(app, address)
    data = {"email": email, "password": password, "csrf_token": csrf_token(client)}
    return client.post("/auth/login", data=data).status_code


def test_wrong_passwords_from_elsewhere_do_not_lock_the_user_out(app):
    user = gen_user("sender", clinic=gen_clinic())
    assert _try(app, "192.0.2.10", user.email, PASSWORD) == 302  # the user's usual place
    for _ in range(12):
        _try(app, "203.0.113.66", user.email, "wrong guess")
    assert _try(app, "203.0.113.66", user.email, PASSWORD) == 429  # the attacker's pair is paused
    assert _try(app, "192.0.2.10", user.email, PASSWORD) == 302


def test_guesses_spread_over_many_addresses_pause_only_addresses_new_to_the_user(app):
    user = gen_user("sender", clinic=gen_clinic())
    assert _try(app, "192.0.2.10", user.email, PASSWORD) == 302
    for n in range(app.config["LOGIN_ATTEMPTS_PER_EMAIL"]):
        assert _try(app, f"203.0.113.{n + 1}", user.email, "wrong guess") == 401
    assert _try(app, "203.0.113.200", user.email, PASSWORD) == 429  # a new address waits
    assert _try(app, "192.0.2.10", user.email, PASSWORD) == 302  # the usual one does not


def test_one_address_guessing_many_accounts_is_paused(app):
    for n in range(app.config["LOGIN_ATTEMPTS_PER_ADDRESS"]):
        assert _try(app, "203.0.113.9", f"user{n}@example.jp", "wrong guess") == 401
    user = gen_user("sender", clinic=gen_clinic())
    assert _try(app, "203.0.113.9", user.email, PASSWORD) == 429


def test_the_page_says_when_the_pause_ends(app):
    user = gen_user("sender", clinic=gen_clinic())
    client = client_at(app, "203.0.113.3")
    for _ in range(app.config["LOGIN_ATTEMPTS_PER_MINUTE"]):
        client.post("/auth/login", data={"email": user.email, "password": "x", "csrf_token": csrf_token(client)})
    response = client.post(
        "/auth/login", data={"email": user.email, "password": PASSWORD, "csrf_token": csrf_token(client)}
    )
    assert response.status_code == 429
    assert re.search(r"\d\d:\d\d:\d\d（日本時間）以降にもう一度お試しください", response.get_data(as_text=True))
