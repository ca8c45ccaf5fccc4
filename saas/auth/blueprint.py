"""The auth blueprint, shared by the sign-in views and the account pages."""

from flask import Blueprint

bp = Blueprint("auth", __name__, url_prefix="/auth")
