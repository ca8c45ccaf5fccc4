"""Operations declared once, as data: the route, its checks and its part of the OpenAPI 3.1 document.

``operation(...)`` registers the Flask view and records what it reads (path, query and header
parameters, body model) and answers (response model, status, errors). The document served at
/api/v1/openapi.json is built from those records and the pydantic models' JSON Schema (2020-12,
which OpenAPI 3.1 uses as is), so the code and the document cannot drift apart.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from flask import Blueprint, Response, g, jsonify, request
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from saas.api.problems import ApiProblem, from_validation
from saas.auth.roles import allows

API_VERSION = "1.0.0"
IDEMPOTENCY_HEADER = "Idempotency-Key"
ERROR_DESCRIPTIONS = {
    401: "No valid API key (missing, unknown or revoked).",
    403: "The key's role may not do this.",
    404: "No such resource within the key's scope.",
    409: "A request with this Idempotency-Key is still being processed.",
    422: "The request is not valid (see `errors`).",
    429: "The key's rate limit is used up; retry after `Retry-After` seconds.",
    503: "The send queue is unreachable; nothing was created.",
}
_CONVERTER = re.compile(r"<(?:(\w+):)?(\w+)>")


@dataclass
class Operation:
    method: str
    rule: str
    endpoint: str
    summary: str
    tag: str
    permission: str | None
    description: str = ""
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    idempotency: str | None = None  # "required" or "optional"
    errors: tuple[int, ...] = ()
    path_params: list[tuple[str, str]] = field(default_factory=list)  # (name, converter)

    @property
    def openapi_path(self) -> str:
        return _CONVERTER.sub(lambda m: "{" + m.group(2) + "}", self.rule)

    @property
    def all_errors(self) -> list[int]:
        codes = {401, 403, 429, *self.errors}
        if self.path_params:
            codes.add(404)
        if self.body or self.query or self.idempotency:
            codes.add(422)
        return sorted(codes)


OPERATIONS: list[Operation] = []


def _without_nul(data):
    """Strings without NUL characters, nested: no database column holds one (Postgres refuses them)."""
    if isinstance(data, str):
        return data.replace("\x00", "")
    if isinstance(data, list):
        return [_without_nul(item) for item in data]
    if isinstance(data, dict):
        return {_without_nul(key): _without_nul(value) for key, value in data.items()}
    return data


def _parse(model: type[BaseModel] | None, data, where: str):
    if model is None:
        return None
    try:
        return model.model_validate(_without_nul(data))
    except ValidationError as error:
        raise from_validation(error, where) from error


def _json_body():
    data = request.get_json(silent=True)
    if data is None:
        raise ApiProblem(422, "The request body must be JSON (Content-Type: application/json).")
    return data


def _answer(result, status: int):
    if isinstance(result, Response):
        return result
    if isinstance(result, tuple):
        result, status = result
    if result is None:
        return Response(status=204)
    response = jsonify(result.model_dump(mode="json") if isinstance(result, BaseModel) else result)
    response.status_code = status
    return response


def operation(bp: Blueprint, method: str, rule: str, *, summary: str, tag: str, permission: str | None, **options):
    """Register an API view and describe it for the OpenAPI document (see :class:`Operation`)."""

    def decorate(view):
        op = Operation(method.upper(), rule, view.__name__, summary, tag, permission, **options)
        op.description = op.description or (view.__doc__ or "").strip()
        op.path_params = [(m.group(2), m.group(1) or "string") for m in _CONVERTER.finditer(rule)]
        OPERATIONS.append(op)

        @functools.wraps(view)
        def wrapped(**kwargs):
            g.api_operation = op
            if op.permission and not allows({g.api_key.role}, op.permission):
                raise ApiProblem(403, f"This key's role ({g.api_key.role}) may not do this ({op.permission}).")
            if op.query is not None:
                kwargs["query"] = _parse(op.query, request.args.to_dict(), "query")
            if op.body is not None:
                kwargs["body"] = _parse(op.body, _json_body(), "body")
            return _answer(view(**kwargs), op.status)

        bp.add_url_rule(rule, endpoint=view.__name__, view_func=wrapped, methods=[op.method])
        return wrapped

    return decorate


# ---- the document -----------------------------------------------------------------------------

PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"in": {"type": "string"}, "pointer": {"type": "string"}, "detail": {"type": "string"}},
            },
        },
    },
}
PATH_SCHEMAS = {
    "int": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
    "string": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,63}$"},
}


def _models() -> list[type[BaseModel]]:
    found = {}
    for op in OPERATIONS:
        for model in (op.body, op.response):
            if model is not None:
                found[model.__name__] = model
    return list(found.values())


def _component_schemas() -> dict:
    pairs = [(model, "validation" if _is_input(model) else "serialization") for model in _models()]
    _, top = models_json_schema(pairs, ref_template="#/components/schemas/{model}")
    return top.get("$defs", {})


def _is_input(model) -> bool:
    return any(op.body is model for op in OPERATIONS)


def _query_parameters(model: type[BaseModel]) -> list[dict]:
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    parameters = []
    for name, prop in schema.get("properties", {}).items():
        prop = {k: v for k, v in prop.items() if k != "title"}
        description = prop.pop("description", "")
        parameters.append(
            {"name": name, "in": "query", "required": name in required, "schema": prop, "description": description}
        )
    return parameters


def _parameters(op: Operation) -> list[dict]:
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": PATH_SCHEMAS.get(kind, PATH_SCHEMAS["string"])}
        for name, kind in op.path_params
    ]
    if op.query is not None:
        parameters += _query_parameters(op.query)
    if op.idempotency:
        parameters.append(
            {
                "name": IDEMPOTENCY_HEADER,
                "in": "header",
                "required": op.idempotency == "required",
                "description": "Retrying with the same key and body replays the first answer instead of sending again.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
            }
        )
    return parameters


def _ref(model: type[BaseModel]) -> dict:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _responses(op: Operation) -> dict:
    responses: dict = {}
    if op.response is None:
        responses[str(op.status)] = {"description": "Done."}
    else:
        responses[str(op.status)] = {
            "description": "OK.",
            "content": {"application/json": {"schema": _ref(op.response)}},
        }
    for code in op.all_errors:
        entry = {
            "description": ERROR_DESCRIPTIONS.get(code, "Error."),
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        if code == 429:
            entry["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}}
        responses[str(code)] = entry
    return responses


def _operation_document(op: Operation) -> dict:
    document = {
        "operationId": op.endpoint,
        "summary": op.summary,
        "description": op.description + (f"\n\nPermission: `{op.permission}`." if op.permission else ""),
        "tags": [op.tag],
        "parameters": _parameters(op),
        "responses": _responses(op),
    }
    if op.body is not None:
        document["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(op.body)}}}
    return document


def openapi_document(server_url: str) -> dict:
    """The OpenAPI 3.1 document of every registered operation."""
    paths: dict = {}
    for op in OPERATIONS:
        paths.setdefault(op.openapi_path, {})[op.method.lower()] = _operation_document(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tsunagu API",
            "version": API_VERSION,
            "description": "REST API for agencies and medical corporations. Authenticate with "
            "`Authorization: Bearer <API key>` (keys are made in the portal: API キー).",
        },
        "servers": [{"url": server_url}],
        "security": [{"apiKey": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer", "bearerFormat": "tsg_…"}},
            "schemas": {**_component_schemas(), "Problem": PROBLEM_SCHEMA},
        },
    }
