"""The sandbox Flask app factory."""

from __future__ import annotations

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from .state import SandboxState


def create_sandbox_app(config: dict | None = None) -> Flask:
    """A separate Flask app playing the LINE platform, its state in memory (thread-safe)."""
    from . import account, coupons, insight, login, messaging, phone, richmenu  # noqa: F401  (register routes on api.bp)
    from .api import bp as line_bp
    from .control_api import bp as control_bp

    app = Flask(__name__)
    app.config.update(JSON_SORT_KEYS=False, MAX_CONTENT_LENGTH=2 * 1024 * 1024)
    app.config.update(config or {})
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    app.extensions["line_sandbox"] = SandboxState()
    app.register_blueprint(line_bp)
    app.register_blueprint(control_bp)
    app.register_blueprint(phone.bp)
    app.register_blueprint(login.bp)

    @app.errorhandler(HTTPException)
    def _as_json(error: HTTPException):
        message = (
            "Not found"
            if error.code == 404 and error.description.startswith("The requested URL")
            else error.description
        )
        return jsonify({"message": message}), error.code

    return app
