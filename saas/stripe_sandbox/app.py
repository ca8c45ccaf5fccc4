"""The Stripe stand-in's Flask app factory."""

from __future__ import annotations

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from . import objects
from .state import StripeState


def create_stripe_sandbox_app(config: dict | None = None) -> Flask:
    """A separate Flask app playing Stripe for the calls Tsunagu makes; state in memory."""
    from .api import bp as api_bp
    from .control_api import bp as control_bp
    from .pages import bp as pages_bp

    app = Flask(__name__)
    app.config.update(config or {})
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    app.extensions["stripe_sandbox"] = StripeState()
    app.register_blueprint(api_bp)
    app.register_blueprint(control_bp)
    app.register_blueprint(pages_bp)

    @app.errorhandler(HTTPException)
    def _as_stripe_error(error: HTTPException):
        code = "resource_missing" if error.code == 404 else None
        return jsonify(objects.error(error.description or error.name, code=code)), error.code

    return app
