"""Portal pages of step delivery (ステップ配信)."""

from __future__ import annotations

from flask import Blueprint

from saas.steps import events  # noqa: F401  (registers the follow/unfollow/tag/booking/postback triggers)

bp = Blueprint("steps", __name__)
