"""``/l/<code>``: the patient's tap. One indexed lookup and one insert (one statement on Postgres), a 302; no session, no login."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request

from saas.links import services
from saas.links.previews import is_preview

bp = Blueprint("links", __name__)


@bp.get("/l/<code>")
def follow(code: str):
    """Redirect to the URL behind the code at once and count the click (previews are not counted)."""
    url = services.follow(code, count=not is_preview(request)) if services.is_code(code) else None
    if url is None:
        return render_template("links/not_found.html"), 404
    response = redirect(url, 302)
    response.headers["Cache-Control"] = "no-store"  # every tap comes back here to be counted
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
