"""Tsunagu: LINE Official Accounts for Japanese clinics, as a multi-tenant service."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, request, session
from flask_babel import get_locale

from saas import config as config_module
from saas.extensions import babel, csrf, db, login_manager, migrate

# Capability blueprints, registered in this order; each module exposes ``bp``.
BLUEPRINTS = (
    "saas.auth.views",
    "saas.health",
    "saas.portal.views",
)
# Modules with an ``init_app(app)`` for CLI commands and request hooks.
MODULES = (
    "saas.tenancy.access",
    "saas.errors",
    "saas.assets",
    "saas.cli",
)


def _select_locale() -> str:
    chosen = request.args.get("lang") or session.get("lang")
    if chosen in ("ja", "en"):
        session["lang"] = chosen
        return chosen
    return "ja"


def create_app(config: dict | None = None) -> Flask:
    """Build the app. Does no I/O: no migrations, no network, no Redis connection."""
    import importlib

    from saas.tenancy import scoping

    app = Flask(
        __name__,
        template_folder=str(config_module.ROOT / "frontend" / "templates"),
        static_folder=str(config_module.ROOT / "frontend" / "static"),
        instance_path=str(config_module.INSTANCE_DIR),
    )
    app.config.from_mapping(config_module.from_environment())
    if config:
        app.config.from_mapping(config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)  # home of the embedded SQLite and Redis

    db.init_app(app)
    migrate.init_app(app, db, directory=str(config_module.ROOT / "migrations"), render_as_batch=True)
    csrf.init_app(app)
    babel.init_app(app, locale_selector=_select_locale)
    login_manager.init_app(app)
    login_manager.session_protection = "strong"
    app.jinja_env.globals["get_locale"] = get_locale
    scoping.install(db.session.session_factory.class_)

    _import_models()
    for name in BLUEPRINTS:
        app.register_blueprint(importlib.import_module(name).bp)
    for name in MODULES:
        importlib.import_module(name).init_app(app)
    return app


def _import_models() -> None:
    """Import every capability's models so metadata and migrations see all tables."""
    from saas.auth import models as _auth  # noqa: F401
    from saas.tenancy import models as _tenancy  # noqa: F401
