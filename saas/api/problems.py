"""RFC 9457 problem details: the one shape of every API error (401, 403, 404, 409, 422, 429)."""

from __future__ import annotations

from flask import Response, jsonify
from pydantic import ValidationError

PROBLEM_TYPE_BASE = "https://tsunagu.example/problems/"
TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    422: "Unprocessable content",
    429: "Too many requests",
    503: "Service unavailable",
}
SLUGS = {401: "unauthorized", 403: "forbidden", 404: "not-found", 409: "conflict", 422: "invalid", 429: "rate-limited"}


class ApiProblem(Exception):
    """Raised anywhere in an API view: becomes a problem response."""

    def __init__(self, status: int, detail: str, *, errors: list[dict] | None = None, headers: dict | None = None):
        super().__init__(detail)
        self.status, self.detail, self.errors, self.headers = status, detail, errors, headers or {}


def problem_response(status: int, detail: str, *, errors: list[dict] | None = None, headers: dict | None = None):
    """An ``application/problem+json`` response."""
    body = {
        "type": PROBLEM_TYPE_BASE + SLUGS.get(status, str(status)),
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    response: Response = jsonify(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _pointer(loc: tuple) -> str:
    return "/" + "/".join(str(part) for part in loc) if loc else ""


def from_validation(error: ValidationError, where: str) -> ApiProblem:
    """A 422 naming each bad field by JSON pointer (``where``: body, query or header)."""
    errors = [
        {"in": where, "pointer": _pointer(e["loc"]), "detail": e["msg"].removeprefix("Value error, ")}
        for e in error.errors(include_url=False, include_input=False)
    ]
    return ApiProblem(422, f"The request {where} is not valid.", errors=errors)
