"""``flask dev``: the whole product on one machine with no services installed.

Starts (or attaches to) the embedded Redis, migrates the database, loads the demo tenants,
runs the LINE sandbox on its own port, a worker process with RQ's scheduler, and the portal.
Development and demo only: a deployment runs the Procfile's processes instead.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import sys
import threading

import click
from flask import current_app
from werkzeug.serving import make_server, run_simple


def _serve_in_thread(wsgi_app, port: int):
    server = make_server("127.0.0.1", port, wsgi_app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _start_sandbox(port: int) -> str:
    from saas.sandbox import create_sandbox_app

    _serve_in_thread(create_sandbox_app(), port)
    return f"http://127.0.0.1:{port}"


def _start_worker(env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flask", "--app", "saas", "worker"], env=env)


@click.command("dev")
@click.option("--port", default=5000, show_default=True, help="Portal port.")
@click.option("--sandbox-port", default=5001, show_default=True, help="LINE sandbox port.")
def dev(port: int, sandbox_port: int) -> None:
    """Run portal + worker + LINE sandbox with the demo tenants (development only)."""
    from flask_migrate import upgrade

    from saas.queues import redis_url_for

    app = current_app._get_current_object()
    sandbox_url = _start_sandbox(sandbox_port)
    public_url = f"http://127.0.0.1:{port}"
    app.config.update(LINE_API_BASE=sandbox_url, LINE_DATA_API_BASE=sandbox_url, PUBLIC_BASE_URL=public_url)
    env = {
        **os.environ,
        "REDIS_URL": redis_url_for(app),
        "LINE_API_BASE": sandbox_url,
        "LINE_DATA_API_BASE": sandbox_url,
        "PUBLIC_BASE_URL": public_url,
    }
    upgrade()
    click.get_current_context().invoke(app.cli.get_command(click.get_current_context(), "demo"))
    _connect_demo_channels(app, sandbox_url, public_url)
    worker = _start_worker(env)
    click.echo(f"\nポータル / Portal:        {public_url}")
    click.echo(f"LINEサンドボックス / Sandbox phone: {sandbox_url}/_sandbox/phone")
    try:
        run_simple("127.0.0.1", port, app, threaded=True, use_reloader=False)
    finally:
        worker.terminate()


DEMO_PATIENTS = ["山田 花子", "佐藤 健太", "鈴木 美咲", "高橋 大輔", "田中 さくら"]


def _demo_user_id(clinic_slug: str, index: int) -> str:
    return "U" + hashlib.sha256(f"{clinic_slug}:{index}".encode()).hexdigest()[:32]


def _connect_demo_channels(app, sandbox_url: str, public_url: str) -> None:
    """Give every demo clinic a sandbox channel and virtual patients who follow it.

    The sandbox keeps its state in memory, so channels and patients are registered again
    on every start, with the same ids, credentials and webhook URLs as before.
    """
    import sqlalchemy as sa

    from saas.extensions import db
    from saas.sandbox.control import SandboxControl
    from saas.tenancy.models import Clinic

    control = SandboxControl(sandbox_url)
    clinics = db.session.scalars(sa.select(Clinic).order_by(Clinic.id)).all()
    for clinic in clinics:
        if not clinic.line_connected:
            clinic.line_channel_id = str(2000000000 + clinic.id)
            clinic.line_channel_secret = secrets.token_hex(16)
            clinic.line_access_token = secrets.token_urlsafe(32)
            clinic.line_bot_user_id = "U" + hashlib.sha256(clinic.slug.encode()).hexdigest()[:32]
    db.session.commit()
    for clinic in clinics:
        control.add_channel(
            clinic.line_channel_id,
            clinic.line_channel_secret,
            clinic.line_access_token,
            bot_user_id=clinic.line_bot_user_id,
            webhook_url=f"{public_url}/webhooks/line/{clinic.webhook_key}",
        )
        for index, name in enumerate(DEMO_PATIENTS):
            control.add_patient(clinic.line_channel_id, name, user_id=_demo_user_id(clinic.slug, index))
    threading.Thread(target=_follow_all, args=(control, clinics), daemon=True).start()


def _follow_all(control, clinics) -> None:
    """Once the portal answers webhooks, let every virtual patient add their clinic as a friend."""
    import time

    time.sleep(2)
    for clinic in clinics:
        for index in range(len(DEMO_PATIENTS)):
            control.follow(clinic.line_channel_id, _demo_user_id(clinic.slug, index))
