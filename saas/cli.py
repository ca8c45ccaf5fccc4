"""Top-level commands: create-admin, demo, worker, cron, dev."""

from __future__ import annotations

import click
import sqlalchemy as sa
from flask import Flask, current_app

from saas.common import settle_startup_heap
from saas.extensions import db
from saas.jobs import WORKER_MODES
from saas.queues import WORKER_QUEUES


@click.command("create-admin")
@click.option("--email", prompt=True)
@click.option("--name", default="管理者")
@click.password_option()
def create_admin(email: str, name: str, password: str) -> None:
    """Create a platform owner who can see and manage every tenant."""
    from saas.auth import services
    from saas.auth.roles import Role
    from saas.tenancy.services import add_membership

    if services.get_user_by_email(email):
        raise click.ClickException(f"{email} は既に登録されています")
    user = services.create_user(email, name, password)
    add_membership(user, Role.OWNER)
    db.session.commit()
    click.echo(f"プラットフォーム管理者 {email} を作成しました。初回ログイン時に二要素認証を設定してください。")


@click.command("demo")
def demo() -> None:
    """Load the demo tenants and one staff user per role, and print the logins."""
    from saas import demo as demo_data
    from saas.config import ROOT
    from saas.manifests.apply import apply_file, manifest_files
    from saas.tenancy.scoping import platform_scope

    for path in manifest_files(ROOT / "tenants"):  # the demo tenants are manifests
        with platform_scope("tenant manifests"):
            apply_file(path)
    with platform_scope("demo loader"):
        users = demo_data.load_staff()
        db.session.commit()
    click.echo("デモデータを読み込みました / Demo data loaded.")
    click.echo(f"  パスワード (all users): {demo_data.DEMO_PASSWORD}")
    for user in users:
        roles = ", ".join(sorted(user.roles))
        two_factor = "  (二要素認証: 初回ログイン時に設定)" if user.needs_two_factor else ""
        click.echo(f"  {user.email:<28} {roles}{two_factor}")


@click.command("worker")
@click.option(
    "--queues",
    "queue_list",
    default=",".join(WORKER_QUEUES),
    show_default=True,
    help="Comma-separated queues, served in this order.",
)
@click.option(
    "--mode",
    type=click.Choice(WORKER_MODES),
    default="fork",
    show_default=True,
    help="fork: each job in a child process; simple: jobs in this process (no fork, for short jobs).",
)
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@click.option(
    "--nice",
    "niceness",
    type=click.IntRange(0, 19),
    default=0,
    show_default=True,
    help="Lower this worker's CPU priority by this much: bulk workers yield the cores to the urgent-only worker.",
)
def worker(queue_list: str, mode: str, burst: bool, niceness: int) -> None:
    """Run an RQ worker (with RQ's scheduler) that survives Redis restarts by reconnecting."""
    import os

    from saas.jobs import run_worker
    from saas.queues import parse_queue_names

    try:
        names = parse_queue_names(queue_list)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--queues") from error
    sa.orm.configure_mappers()  # once here, not inside the first job (a tenth of a second of CPU)
    if niceness:  # inherited by RQ's scheduler and, in fork mode, by every job's child
        os.nice(niceness)
    settle_startup_heap()  # before any fork: jobs' children share these pages as well
    run_worker(current_app._get_current_object(), names, mode=mode, burst=burst)


@click.command("cron")
def cron() -> None:
    """Run RQ's cron for the periodic jobs in saas/cron.py (the sweeper among them); survives Redis restarts."""
    from saas.jobs import run_cron

    run_cron(current_app._get_current_object())


def init_app(app: Flask) -> None:
    for command in (create_admin, demo, worker, cron):
        app.cli.add_command(command)
    if app.config["SANDBOX_ENABLED"]:
        from saas.devserver import dev

        app.cli.add_command(dev)
