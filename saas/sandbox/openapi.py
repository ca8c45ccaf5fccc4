"""The contract's second opinion: LINE's own OpenAPI descriptions (``line-openapi``:
messaging-api.yml, webhook.yml, insight.yml), used only when ``LINE_OPENAPI_DIR`` names their folder
(a relative path is taken from the repository root). :mod:`saas.sandbox.contract` calls this module.

OpenAPI 3.0 schemas become JSON Schema: ``nullable`` turns into ``type | null`` and a
``discriminator`` becomes per-type dispatch (``if type == k then $ref mapping[k]``) everywhere
except in a subtype's own ``allOf`` reference to its base, which must stay the plain base.
"""

from __future__ import annotations

import copy
import os
import re
from functools import cache
from pathlib import Path

import yaml
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from saas.config import ROOT
from saas.sandbox.contract import ContractError

SPECS = ("messaging-api.yml", "insight.yml", "webhook.yml")
DISPATCH_SUFFIX = "__dispatch"


def spec_dir() -> Path | None:
    """The folder ``LINE_OPENAPI_DIR`` names, or None when it is unset; a wrong folder is an error."""
    value = os.environ.get("LINE_OPENAPI_DIR")
    if not value:
        return None
    folder = (ROOT / value).resolve()
    if not (folder / SPECS[0]).is_file():
        raise FileNotFoundError(f"LINE_OPENAPI_DIR={value}: no {SPECS[0]} in {folder}")
    return folder


def _spec(name: str) -> dict:
    return _load(spec_dir(), name)


@cache
def _load(folder: Path, name: str) -> dict:
    return yaml.safe_load((folder / name).read_text(encoding="utf-8"))


def _converted(name: str) -> dict:
    return _convert_spec(spec_dir(), name)


@cache
def _convert_spec(folder: Path, name: str) -> dict:
    spec = copy.deepcopy(_load(folder, name))
    schemas = spec.get("components", {}).get("schemas", {})
    discriminated = {n for n, s in schemas.items() if isinstance(s, dict) and "discriminator" in s}
    spec = _convert(spec, discriminated, in_all_of=False)
    for name_ in discriminated:
        base = _load(folder, name)["components"]["schemas"][name_]["discriminator"]
        branches = [
            {
                "if": {"properties": {base["propertyName"]: {"const": key}}, "required": [base["propertyName"]]},
                "then": {"$ref": ref},
            }
            for key, ref in base.get("mapping", {}).items()
        ]
        spec["components"]["schemas"][name_ + DISPATCH_SUFFIX] = {
            "allOf": [{"$ref": f"#/components/schemas/{name_}"}, *branches]
        }
    return spec


def _convert(node, discriminated: set[str], *, in_all_of: bool):
    if isinstance(node, list):
        return [_convert(item, discriminated, in_all_of=in_all_of) for item in node]
    if not isinstance(node, dict):
        return node
    result = {}
    for key, value in node.items():
        if key in {"discriminator", "example", "examples", "externalDocs", "xml"}:
            continue
        result[key] = _convert(value, discriminated, in_all_of=(key == "allOf"))
    ref = result.get("$ref")
    if isinstance(ref, str) and not in_all_of and ref.rsplit("/", 1)[-1] in discriminated:
        result["$ref"] = ref + DISPATCH_SUFFIX
    if result.pop("nullable", False):
        result = {"anyOf": [result, {"type": "null"}]}
    return result


def _registry(name: str) -> Registry:
    return _registry_for(spec_dir(), name)


@cache
def _registry_for(folder: Path, name: str) -> Registry:
    return Registry().with_resource(f"urn:line:{name}", Resource.from_contents(_convert_spec(folder, name), DRAFT7))


def validate_schema(spec: str, schema_name: str, instance) -> None:
    """Validate ``instance`` against ``#/components/schemas/<schema_name>`` of ``spec``."""
    if schema_name not in _converted(spec)["components"]["schemas"]:
        raise KeyError(f"{spec} has no schema {schema_name}")
    _validate(spec, {"$ref": f"urn:line:{spec}#/components/schemas/{schema_name}"}, instance, schema_name)


def _validate(spec: str, schema: dict, instance, what: str) -> None:
    validator = Draft7Validator(schema, registry=_registry(spec))
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors[:10]]
        raise ContractError(f"{what} does not match LINE's OpenAPI:\n  " + "\n  ".join(lines))


def validate_webhook(body: dict) -> None:
    """A webhook request body must be a webhook.yml ``CallbackRequest``."""
    validate_schema("webhook.yml", "CallbackRequest", body)


def _template_regex(template: str) -> re.Pattern:
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")


def _operations() -> list[tuple[str, str, re.Pattern, str, dict]]:
    return _operations_in(spec_dir())


@cache
def _operations_in(folder: Path) -> list[tuple[str, str, re.Pattern, str, dict]]:
    found = []
    for spec in SPECS:
        for template, item in _load(folder, spec).get("paths", {}).items():
            for method, operation in item.items():
                if method in {"get", "post", "put", "delete"}:
                    found.append((spec, method.upper(), _template_regex(template), template, operation))
    # Literal paths before templated ones (e.g. /richmenu/list before /richmenu/{richMenuId}).
    found.sort(key=lambda op: op[3].count("{"))
    return found


def find_operation(method: str, path: str) -> tuple[str, str, dict]:
    """``(spec file, path template, operation)`` of a request, by method and concrete path."""
    for spec, op_method, pattern, template, operation in _operations():
        if op_method == method.upper() and pattern.match(path):
            return spec, template, operation
    raise ContractError(f"{method} {path} is not an operation in LINE's OpenAPI")


def validate_response(method: str, path: str, status: int, body) -> str:
    """Validate one answer (parsed JSON or None) against its operation's declared response.

    Error answers not declared per operation must still be an ``ErrorResponse``. Returns the
    operationId checked."""
    spec, template, operation = find_operation(method, path)
    op_id = operation.get("operationId", template)
    responses = operation.get("responses", {})
    declared = responses.get(str(status))
    if declared is None and status >= 400:
        if body is None:
            raise ContractError(f"{op_id} {status}: error answers must carry an ErrorResponse body")
        validate_schema("messaging-api.yml", "ErrorResponse", body)
        return op_id
    if declared is None:
        raise ContractError(f"{op_id} answered {status}, which LINE's OpenAPI does not declare ({sorted(responses)})")
    content = (declared.get("content") or {}).get("application/json")
    if content is None:
        return op_id
    schema = _convert(content.get("schema", {}), _discriminated(spec), in_all_of=False)
    _validate(spec, _rebase(schema, spec), body, f"{op_id} {status}")
    return op_id


def validate_request(method: str, path: str, body) -> str:
    """Validate a request body against its operation's requestBody schema (JSON only)."""
    spec, template, operation = find_operation(method, path)
    content = ((operation.get("requestBody") or {}).get("content") or {}).get("application/json")
    if content is not None:
        schema = _convert(content.get("schema", {}), _discriminated(spec), in_all_of=False)
        _validate(spec, _rebase(schema, spec), body, f"{operation.get('operationId')} request")
    return operation.get("operationId", template)


def _discriminated(spec: str) -> set[str]:
    schemas = _spec(spec).get("components", {}).get("schemas", {})
    return {n for n, s in schemas.items() if isinstance(s, dict) and "discriminator" in s}


def _rebase(node, spec: str):
    """Point local ``#/...`` refs of an inline schema at the spec's registry resource."""
    if isinstance(node, list):
        return [_rebase(item, spec) for item in node]
    if not isinstance(node, dict):
        return node
    return {
        k: (f"urn:line:{spec}{v}" if k == "$ref" and v.startswith("#") else _rebase(v, spec)) for k, v in node.items()
    }
