"""/healthz: database and Redis status as JSON, for load balancers and the ops team."""

from flask import Blueprint, jsonify
from sqlalchemy import text

from saas.extensions import db
from saas.queues import redis_status

bp = Blueprint("health", __name__)


def database_status() -> dict:
    try:
        db.session.execute(text("SELECT 1"))
        return {"ok": True, "dialect": db.engine.dialect.name}
    except Exception as exc:  # any driver error means "down" here
        db.session.rollback()
        return {"ok": False, "error": type(exc).__name__}


@bp.get("/healthz")
def healthz():
    status = {"database": database_status(), "redis": redis_status()}
    healthy = all(part["ok"] for part in status.values())
    return jsonify(status=("ok" if healthy else "degraded"), **status), (200 if healthy else 503)
