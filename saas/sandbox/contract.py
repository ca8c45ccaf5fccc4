"""Validate sandbox answers and webhook bodies against LINE's contract, so the sandbox cannot drift.

On every machine the contract is the official SDK's generated code (line-bot-sdk v3, generated
from LINE's OpenAPI files): each operation's path, method and declared response types as its API
classes state them, and its models for the bodies. When ``LINE_OPENAPI_DIR`` names a folder of
LINE's OpenAPI files (``line-openapi``; CI points it at ``../shared/reference/line-openapi``), every
check is also made against those files (:mod:`saas.sandbox.openapi`), which are stricter in places.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from dataclasses import dataclass, field
from functools import cache
from types import ModuleType

from pydantic.v1 import ValidationError


class ContractError(AssertionError):
    """An answer or webhook body that LINE's contract does not allow."""


@dataclass(frozen=True)
class Operation:
    """One Messaging API / Insight operation as the SDK declares it."""

    method: str
    template: str
    name: str  # the SDK's method name, e.g. get_rich_menu_list
    responses: dict[str, str]  # status → model name ("object": any JSON object); {} for bodiless answers
    request_model: str | None
    module: ModuleType = field(compare=False, repr=False)

    def model(self, name: str):
        """The SDK model class ``name`` of this operation's API (e.g. linebot.v3.messaging.models)."""
        return getattr(importlib.import_module(self.module.__name__.split(".api.")[0] + ".models"), name)


def _openapi() -> ModuleType | None:
    """The OpenAPI-file validator when ``LINE_OPENAPI_DIR`` is set, else None."""
    from saas.sandbox import openapi

    return openapi if openapi.spec_dir() is not None else None


def _sdk_modules() -> list[ModuleType]:
    from linebot.v3.insight.api import insight
    from linebot.v3.messaging.api import messaging_api, messaging_api_blob

    return [messaging_api, messaging_api_blob, insight]


def _assigned(function: ast.FunctionDef, name: str) -> list[ast.expr]:
    """Every value assigned to ``name`` in a generated method body."""
    return [
        node.value
        for node in ast.walk(function)
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == name
    ]


def _request_model(function: ast.FunctionDef) -> str | None:
    """The model of the body parameter (``_body_params = _params['push_message_request']``)."""
    annotations = {arg.arg: arg.annotation for arg in function.args.args}
    for value in _assigned(function, "_body_params"):
        if isinstance(value, ast.Subscript):
            annotation = annotations.get(ast.literal_eval(value.slice))
            if isinstance(annotation, ast.Name):
                return annotation.id
    return None


def _operation(function: ast.FunctionDef, module: ModuleType) -> Operation | None:
    """Read one generated ``*_with_http_info`` method: its ``call_api(path, method, ...)`` and maps."""
    call = next(
        (n for n in ast.walk(function) if isinstance(n, ast.Call) and getattr(n.func, "attr", None) == "call_api"),
        None,
    )
    responses = _assigned(function, "_response_types_map")
    if call is None or not responses:
        return None
    return Operation(
        method=ast.literal_eval(call.args[1]),
        template=ast.literal_eval(call.args[0]),
        name=function.name.removesuffix("_with_http_info"),
        responses=ast.literal_eval(responses[0]),
        request_model=_request_model(function),
        module=module,
    )


@cache
def operations() -> list[Operation]:
    """Every operation of the SDK's Messaging API, content (blob) and Insight clients."""
    found = []
    for module in _sdk_modules():
        for node in ast.walk(ast.parse(inspect.getsource(module))):
            if isinstance(node, ast.FunctionDef) and node.name.endswith("_with_http_info"):
                operation = _operation(node, module)
                if operation is not None:
                    found.append(operation)
    # Literal paths before templated ones (e.g. /richmenu/list before /richmenu/{richMenuId}).
    return sorted(found, key=lambda op: op.template.count("{"))


@cache
def _pattern(template: str) -> re.Pattern:
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")


def find_operation(method: str, path: str) -> Operation:
    """The SDK operation a request is, by method and concrete path."""
    for operation in operations():
        if operation.method == method.upper() and _pattern(operation.template).match(path):
            return operation
    raise ContractError(f"{method} {path} is not an operation of LINE's Messaging API (line-bot-sdk)")


def _check_model(model, body, what: str) -> None:
    """Parse ``body`` with an SDK model; a body it refuses is drift."""
    if model is None:
        return
    try:
        model.from_dict(body)
    except ValidationError as exc:
        raise ContractError(f"{what} does not match line-bot-sdk's {exc.model.__name__}:\n  {_describe(exc)}") from exc
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ContractError(f"{what} does not match line-bot-sdk's {model.__name__}: {exc}") from exc


def _describe(exc: ValidationError) -> str:
    """Errors with LINE's field names (``basicId``), not the SDK's Python names (``basic_id``)."""
    lines = []
    for error in exc.errors()[:10]:
        location = [exc.model.__fields__[part].alias if part in exc.model.__fields__ else part for part in error["loc"]]
        lines.append(f"{'/'.join(map(str, location))}: {error['msg']}")
    return "\n  ".join(lines)


def _response_model(operation: Operation, status: int, body):
    """The SDK model an answer must parse as (None: nothing to parse), or ContractError."""
    declared = operation.responses.get(str(status))
    if declared is None and status >= 400:
        if body is None:
            raise ContractError(f"{operation.name} {status}: error answers must carry an ErrorResponse body")
        return operation.model("ErrorResponse")
    if declared is None and not operation.responses and 200 <= status < 300 and body in (None, {}):
        return None  # the SDK declares no body for this operation's success
    if declared is None:
        raise ContractError(
            f"{operation.name} answered {status}, which LINE's API does not declare ({sorted(operation.responses)})"
        )
    if declared == "object":
        if not isinstance(body, dict):
            raise ContractError(f"{operation.name} {status}: the answer must be a JSON object")
        return None
    return None if declared == "bytearray" else operation.model(declared)


def validate_response(method: str, path: str, status: int, body) -> str:
    """Validate one answer (parsed JSON or None) against its operation's declared response.

    Error answers not declared per operation must still be an ``ErrorResponse``. Returns the
    SDK name of the operation checked."""
    operation = find_operation(method, path)
    _check_model(_response_model(operation, status, body), body, f"{operation.name} {status}")
    if openapi := _openapi():
        openapi.validate_response(method, path, status, body)
    return operation.name


def validate_request(method: str, path: str, body) -> str:
    """Validate a request body against its operation's request model (JSON bodies only)."""
    operation = find_operation(method, path)
    if operation.request_model is not None and isinstance(body, dict):
        _check_model(operation.model(operation.request_model), body, f"{operation.name} request")
    if openapi := _openapi():
        openapi.validate_request(method, path, body)
    return operation.name


def validate_webhook(body: dict) -> None:
    """A webhook request body must be a ``CallbackRequest`` (each event checked by its type)."""
    from linebot.v3.webhooks.models import CallbackRequest

    _check_model(CallbackRequest, body, "webhook body")
    if openapi := _openapi():
        openapi.validate_webhook(body)
