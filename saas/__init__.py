"""Tsunagu: LINE Official Accounts for Japanese clinics, as a multi-tenant service."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, has_request_context, request, session
from flask_babel import get_locale
from werkzeug.routing import IntegerConverter

from saas import config as config_module
from saas.common import BIG_ID_MAX
from saas.extensions import babel, csrf, db, login_manager, migrate

# Packages that are not capabilities: the sandboxes (LINE, Stripe) are never imported by product code.
NOT_CAPABILITIES = {"sandbox", "stripe_sandbox", "translations"}
# Modules with an ``init_app(app)`` for request hooks and CLI commands, beside the capabilities'.
MODULES = ("saas.tenancy.access", "saas.errors", "saas.assets", "saas.cli")


def capability_packages() -> list[str]:
    """Every subpackage of saas/, auth first: its session rules run before all other hooks."""
    import pkgutil

    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if m.ispkg and m.name not in NOT_CAPABILITIES)
    return sorted(names, key=lambda name: name != "auth")


def _optional_module(name: str):
    import importlib
    import importlib.util

    return importlib.import_module(name) if importlib.util.find_spec(name) else None


def _select_locale() -> str:
    if not has_request_context():  # jobs, CLI: texts stay in Japanese
        return "ja"
    chosen = request.args.get("lang") or session.get("lang")
    if chosen in ("ja", "en"):
        session["lang"] = chosen
        return chosen
    return "ja"


def create_app(config: dict | None = None) -> Flask:
    """Build the app. Does no I/O: no migrations, no network, no Redis connection.

    Raises ``saas.config.ConfigurationError`` outside development and tests (``SANDBOX_ENABLED``,
    ``TESTING``) when SECRET_KEY or an independent ENCRYPTION_KEY is missing.
    """
    import importlib

    from saas import database
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
    config_module.settle_secrets(app.config)  # refuses to start a deployment without its own secrets
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)  # home of the embedded SQLite and Redis
    _trust_proxies(app)
    app.url_map.converters["int"] = BoundedInt  # before any route is added

    database.install()
    db.init_app(app)
    migrate.init_app(app, db, directory=str(config_module.ROOT / "migrations"), render_as_batch=True)
    csrf.init_app(app)
    babel.init_app(app, locale_selector=_select_locale)
    login_manager.init_app(app)
    login_manager.session_protection = "strong"
    app.jinja_env.globals["get_locale"] = get_locale
    scoping.install(db.session.session_factory.class_)

    _register_capabilities(app)
    app.register_blueprint(importlib.import_module("saas.health").bp)
    for name in MODULES:
        importlib.import_module(name).init_app(app)
    return app


class BoundedInt(IntegerConverter):
    """``<int:...>`` up to the largest key a table holds: a larger id is a 404, never an overflow.

    One bound for every route: 64-bit keys (``BigId``: messages, audit events, form answers...)
    reach 2**63-1, so a lookup in a 32-bit INTEGER table may still get an id Postgres cannot
    compare; ``saas.errors`` answers that 404 as well.
    """

    def __init__(self, url_map, *args, **kwargs) -> None:
        kwargs.setdefault("max", BIG_ID_MAX)
        super().__init__(url_map, *args, **kwargs)


def _trust_proxies(app: Flask) -> None:
    """Behind TRUSTED_PROXIES proxies, take the client address and scheme from their X-Forwarded-* headers."""
    from werkzeug.middleware.proxy_fix import ProxyFix

    count = int(app.config.get("TRUSTED_PROXIES") or 0)
    if count > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count)


def _register_capabilities(app: Flask) -> None:
    """Each capability package may have models.py, views.py (``bp``) and cli.py (``init_app``)."""
    for package in capability_packages():
        _optional_module(f"saas.{package}.models")
        views = _optional_module(f"saas.{package}.views")
        if views is not None and hasattr(views, "bp"):
            app.register_blueprint(views.bp)
        commands = _optional_module(f"saas.{package}.cli")
        if commands is not None:
            commands.init_app(app)
