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
import sqlalchemy as sa
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

    from saas.queues import redis_url_for, stop_embedded_servers

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
    _deploy_demo_menus(_all_clinics())
    worker = _start_worker(env)
    click.echo(f"\nポータル / Portal:        {public_url}")
    click.echo(f"LINEサンドボックス / Sandbox phone: {sandbox_url}/_sandbox/phone")
    try:
        run_simple("127.0.0.1", port, app, threaded=True, use_reloader=False)
    finally:
        worker.terminate()
        worker.wait(timeout=10)
        stop_embedded_servers()


def _all_clinics():
    from saas.extensions import db
    from saas.tenancy.models import Clinic

    return db.session.scalars(sa.select(Clinic).order_by(Clinic.id)).all()


DEMO_PATIENTS = ["山田 花子", "佐藤 健太", "鈴木 美咲", "高橋 大輔", "田中 さくら"]


def _demo_user_id(clinic_slug: str, index: int) -> str:
    return "U" + hashlib.sha256(f"{clinic_slug}:{index}".encode()).hexdigest()[:32]


def _connect_demo_channels(app, sandbox_url: str, public_url: str) -> None:
    """Give every demo clinic a sandbox channel and virtual patients who follow it.

    The sandbox keeps its state in memory, so channels and patients are registered again
    on every start, with the same ids, credentials and webhook URLs as before.
    """
    from saas.extensions import db
    from saas.sandbox.control import SandboxControl

    control = SandboxControl(sandbox_url)
    clinics = _all_clinics()
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
            display_name=clinic.name,
            webhook_url=f"{public_url}/webhooks/line/{clinic.webhook_key}",
        )
        for index, name in enumerate(DEMO_PATIENTS):
            control.add_patient(clinic.line_channel_id, name, user_id=_demo_user_id(clinic.slug, index))
        _enable_demo_booking(control, clinic)
    channels = [(clinic.line_channel_id, clinic.slug) for clinic in clinics]
    threading.Thread(target=_follow_all, args=(control, channels), daemon=True).start()


def _enable_demo_booking(control, clinic) -> None:
    """Native booking with a sandbox LINE Login channel, so the booking page works offline."""
    from saas.booking import services as booking
    from saas.booking.models import BookingMode
    from saas.extensions import db
    from saas.tenancy.scoping import tenant_scope

    with tenant_scope(clinic.id):
        settings = booking.get_settings(clinic.id)
        if not settings.login_channel_id:
            settings.mode = BookingMode.NATIVE
            settings.login_channel_id = str(1600000000 + clinic.id)
            settings.login_channel_secret = secrets.token_hex(16)
        db.session.commit()
        control.add_login_channel(
            settings.login_channel_id, settings.login_channel_secret, bot_channel_id=clinic.line_channel_id
        )


def _deploy_demo_menus(clinics) -> None:
    """Every demo clinic gets the six-area rich menu (予約, 診療時間, アクセス, FAQ, オンライン診療,
    採用情報) as its default, deployed to the sandbox on each start."""
    from saas.extensions import db
    from saas.richmenu import services as richmenu
    from saas.richmenu.layouts import preset_areas
    from saas.richmenu.models import RichMenu
    from saas.tenancy.scoping import tenant_scope

    for clinic in clinics:
        with tenant_scope(clinic.id):
            group = richmenu.get_organization_links(clinic.organization_id)
            base = f"https://{clinic.organization.slug}.example.jp"  # for groups whose manifest has none
            richmenu.set_organization_links(
                clinic.organization_id,
                recruitment_url=group.recruitment_url or f"{base}/recruit",
                online_consultation_url=group.online_consultation_url or f"{base}/online",
            )
            menu = db.session.scalars(sa.select(RichMenu).where(RichMenu.is_default.is_(True))).first()
            if menu is None:
                size, areas = preset_areas("full6")
                menu = RichMenu(name="基本メニュー", size=size, areas=areas, is_default=True)
                db.session.add(menu)
            db.session.commit()
            richmenu.deploy(clinic, menu)


def _follow_all(control, channels: list[tuple[str, str]]) -> None:
    """Once the portal answers webhooks, let every virtual patient add their clinic as a friend."""
    import time

    time.sleep(2)
    for channel_id, slug in channels:
        for index in range(len(DEMO_PATIENTS)):
            control.follow(channel_id, _demo_user_id(slug, index))
