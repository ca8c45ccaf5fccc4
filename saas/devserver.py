"""``flask dev``: the whole product on one machine with no services installed.

Starts (or attaches to) the embedded Redis, runs the LINE sandbox and the Stripe stand-in on ports
of their own, migrates the
database, loads the demo tenants and serves the portal. Every other process of the ``Procfile``
(workers, ``rq cron``) runs as a child, so a process added there runs in the demo too. Ctrl+C or
SIGTERM stops the children and the embedded Redis. Development and demo only: a deployment runs
the Procfile's processes instead.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import click
import requests
import sqlalchemy as sa
from flask import Flask, current_app
from werkzeug.serving import make_server

from saas.procfile import Children, procfile_entries

HEALTH_TIMEOUT = 120  # seconds the demo patients wait for the portal's /healthz
# Procfile entries this process covers itself instead of starting them.
IN_PROCESS = {"release": "migrations, run before anything starts", "web": "the portal, served by flask dev"}


# The sandbox counts a send's statistics at once; LINE takes a while, so production first asks an hour after.
DEMO_SETTINGS = {"INSIGHT_FIRST_SYNC_MINUTES": "2"}


def sandbox_settings(sandbox_url: str, public_url: str) -> dict[str, str]:
    """Configuration pointing every LINE host the app knows (``LINE_*_BASE``) at the sandbox."""
    from saas.config import from_environment

    hosts = {name: sandbox_url for name in from_environment() if re.fullmatch(r"LINE_\w+_BASE", name)}
    return {**hosts, "PUBLIC_BASE_URL": public_url}


def stripe_settings(stripe_url: str) -> dict[str, str]:
    """Configuration pointing the ``stripe`` library at the stand-in, with test-mode keys of its own."""
    import secrets

    return {
        "STRIPE_API_BASE": stripe_url,
        "STRIPE_SECRET_KEY": "sk_test_tsunagu_sandbox",
        "STRIPE_WEBHOOK_SECRET": "whsec_sandbox_" + secrets.token_hex(16),
    }


def _serve_in_thread(wsgi_app, port: int):
    server = make_server("127.0.0.1", port, wsgi_app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM and SIGINT both stop flask dev the way Ctrl+C does


@click.command("dev")
@click.option("--port", envvar="PORT", default=5000, show_default=True, help="Portal port (0: any free port).")
@click.option(
    "--sandbox-port", envvar="SANDBOX_PORT", default=5001, show_default=True, help="LINE sandbox port (0: any)."
)
@click.option(
    "--stripe-port",
    envvar="STRIPE_SANDBOX_PORT",
    type=int,
    default=None,
    help="Stripe stand-in port (default: the LINE sandbox's port + 1, or any free port when that is 0).",
)
def dev(port: int, sandbox_port: int, stripe_port: int | None) -> None:
    """Run the portal, the Procfile's workers and cron, the LINE sandbox and the Stripe stand-in with the demo tenants."""
    from saas.queues import stop_embedded_servers

    # SIGINT too: a shell starting `make start &` hands its children SIGINT ignored, and Ctrl+C must still work.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _raise_interrupt)
    children = Children()
    try:
        stripe_port = stripe_port if stripe_port is not None else (sandbox_port + 1 if sandbox_port else 0)
        _run(current_app._get_current_object(), port, (sandbox_port, stripe_port), children)
    except KeyboardInterrupt:
        pass
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):  # a second Ctrl+C must not cut the clean-up short
            signal.signal(signum, signal.SIG_IGN)
        click.echo("\n停止しています / Stopping: " + (", ".join(children.names) or "-") + ", embedded Redis")
        children.stop()
        stop_embedded_servers()
        click.echo("停止しました / Stopped.")


def _run(app: Flask, port: int, sandbox_ports: tuple[int, int], children: Children) -> None:
    from flask_migrate import upgrade

    from saas.demo import connect_demo_channels, demo_followers, deploy_demo_menus, follow_demo_patients

    sandbox = _serve_in_thread(_sandbox_app(), sandbox_ports[0])
    sandbox_url = f"http://127.0.0.1:{sandbox.server_port}"
    stripe = _serve_in_thread(_stripe_sandbox_app(), sandbox_ports[1])
    stripe_url = f"http://127.0.0.1:{stripe.server_port}"
    portal = make_server("127.0.0.1", port, app, threaded=True)
    public_url = f"http://127.0.0.1:{portal.server_port}"
    settings = sandbox_settings(sandbox_url, public_url) | stripe_settings(stripe_url) | DEMO_SETTINGS
    app.config.update(settings)
    _connect_stripe_webhook(stripe_url, public_url, settings["STRIPE_WEBHOOK_SECRET"])
    upgrade()
    if _demo_loaded():  # portal edits since the first start are kept: the manifests are not applied again
        click.echo(
            "デモデータは前回のものを使います（instance/ を削除すると最初から） / Demo data kept from the last start."
        )
    else:
        click.get_current_context().invoke(app.cli.get_command(click.get_current_context(), "demo"))
    channels = connect_demo_channels(sandbox_url, public_url)
    known = demo_followers()
    deploy_demo_menus()
    for name, command in procfile_entries():
        if name not in IN_PROCESS:
            children.start(name, command, _child_env(app, settings))
    ready = threading.Thread(
        target=_announce_when_ready,
        args=(public_url, sandbox_url, stripe_url, lambda: follow_demo_patients(sandbox_url, channels, known)),
    )
    ready.daemon = True
    ready.start()
    portal.serve_forever()


def _demo_loaded() -> bool:
    from saas.extensions import db
    from saas.tenancy.models import Clinic
    from saas.tenancy.scoping import platform_scope

    with platform_scope("demo check"):
        return db.session.scalar(sa.select(sa.func.count(Clinic.id))) > 0


def _sandbox_app():
    from saas.sandbox import create_sandbox_app

    return create_sandbox_app()


def _stripe_sandbox_app():
    from saas.stripe_sandbox import create_stripe_sandbox_app

    return create_stripe_sandbox_app()


def _connect_stripe_webhook(stripe_url: str, public_url: str, secret: str) -> None:
    from saas.stripe_sandbox.control import StripeSandboxControl

    StripeSandboxControl(stripe_url).set_webhook(f"{public_url}/webhooks/stripe", secret)


def _child_env(app: Flask, settings: dict[str, str]) -> dict[str, str]:
    from saas.queues import redis_url_for

    return {**os.environ, **settings, "REDIS_URL": redis_url_for(app), "FLASK_APP": "saas", "PYTHONUNBUFFERED": "1"}


def wait_for_health(url: str, timeout: float = HEALTH_TIMEOUT) -> bool:
    """Poll ``url``/healthz until it answers 200 (or ``timeout`` seconds pass)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/healthz", timeout=5).status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.2)
    return False


def _announce_when_ready(public_url: str, sandbox_url: str, stripe_url: str, follow) -> None:
    if not wait_for_health(public_url):
        click.echo(
            f"ポータルが {HEALTH_TIMEOUT} 秒以内に応答しません / portal not healthy: {public_url}/healthz", err=True
        )
        return
    for problem in follow():
        click.echo(f"注意 / warning: demo follow not accepted: {problem}", err=True)
    _print_welcome(public_url, sandbox_url, stripe_url)


def _print_welcome(public_url: str, sandbox_url: str, stripe_url: str) -> None:
    from saas.demo import DEMO_PASSWORD, STAFF

    lines = [
        "",
        "=" * 72,
        f"  ポータル / Portal:                      {public_url}",
        f"  電話シミュレーター / Sandbox phone:     {sandbox_url}/_sandbox/phone",
        f"  Stripe（テスト用の代役） / Stripe sandbox: {stripe_url}",
        f"  デモのログイン / Demo logins (password: {DEMO_PASSWORD})",
        *(f"    {email:<28} {role.value}" for email, _name, role, _scope, _slug in STAFF),
        "  停止: Ctrl+C / Stop with Ctrl+C",
        "=" * 72,
        f"準備完了 / Ready: {public_url}",
    ]
    click.echo("\n".join(lines))
