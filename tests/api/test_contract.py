"""Schemathesis against the running app: every operation of the OpenAPI document, with generated
valid and invalid inputs, must answer without a server error and conform to the document
(status codes, content types, headers and bodies), with real rows of the key's clinic in the URLs."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from saas.api import views  # noqa: F401  (registers every operation)
from saas.api.spec import OPERATIONS
from saas.autoreply.models import AutoReplyRule
from saas.delivery.models import Delivery
from saas.extensions import db
from saas.friends.models import Friend
from saas.schedule.models import Closure
from saas.tenancy.scoping import tenant_scope
from tests.api.support import make_key
from tests.delivery.support import connected_clinic

CURRENT_KEY: dict[str, str] = {}


@schemathesis.auth()
class ApiKeyAuth:
    """The test's API key on every generated call (schemathesis then also probes calls without it)."""

    def get(self, case, context):
        return CURRENT_KEY["token"]

    def set(self, case, data, context):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


# Every operation the app declares (the document is built from the same list), valid and invalid inputs.
LABELS = sorted({(op.method, op.openapi_path) for op in OPERATIONS})
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
# Bodies checked beyond what a JSON Schema can say answer 422 to some schema-valid input: LINE
# message objects (saas.messaging), a manifest naming another clinic, a clinic's own field keys,
# regular expressions that do not compile, a closure ending before it starts. These operations
# keep every other check (no 5xx, documented statuses, conforming bodies).
CHECKED_BEYOND_SCHEMA = {
    "create_delivery",
    "apply_manifest",
    "set_fields",
    "create_rule",
    "update_rule",
    "create_closure",
}


@pytest.fixture
def api_clinic(sandbox, app):
    """A connected clinic with one friend, rule and closure, an admin key for it, and no rate limit in the way."""
    from datetime import date

    before, app.config["API_RATE_LIMIT"] = app.config.get("API_RATE_LIMIT"), (100_000, 1)
    clinic = connected_clinic(sandbox, "1900000001")
    with tenant_scope(clinic.id):
        rows = {
            "friend_id": Friend(line_user_id="U" + "f" * 32, display_name="患者", consent_marketing=True),
            "rule_id": AutoReplyRule(
                name="駐車場", keywords=["駐車場"], messages=[{"type": "text", "text": "あります"}]
            ),
            "closure_id": Closure(starts_on=date(2030, 1, 6), ends_on=date(2030, 1, 6)),
            "delivery_id": Delivery(status="done", messages=[{"type": "text", "text": "お知らせ"}], skipped={}),
        }
        db.session.add_all(rows.values())
        db.session.commit()
        ids = {name: row.id for name, row in rows.items()}
    yield {"slug": clinic.slug, "token": make_key("admin", clinic=clinic), "ids": ids}
    app.config["API_RATE_LIMIT"] = before


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
@pytest.mark.parametrize(("method", "path"), LABELS, ids=lambda v: v.lower() if v.isupper() else v)
def test_every_operation_conforms_and_never_fails_on_generated_input(live_server, api_clinic, method, path, mode):
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/v1/openapi.json")
    operation = schema[path][method]
    # The key, and its clinic's real rows in the URL, so generated queries and bodies reach the code.
    names = {name for name, _ in next(op for op in OPERATIONS if op.openapi_path == path).path_params}
    fixed = {
        name: value for name, value in {"clinic_slug": api_clinic["slug"], **api_clinic["ids"]}.items() if name in names
    }
    CURRENT_KEY["token"] = api_clinic["token"]
    schema.config.generation.update(with_security_parameters=False)  # ApiKeyAuth sends the key
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=fixed)
    excluded = [positive_data_acceptance] if operation.definition.raw["operationId"] in CHECKED_BEYOND_SCHEMA else []

    @given(case=strategy)
    # derandomize: the same generated inputs every run (a CI run must not depend on the draw)
    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True)
    def call(case):
        case.call_and_validate(excluded_checks=excluded)

    try:
        call()
    except Unsatisfiable:
        assert mode == GenerationMode.NEGATIVE, "valid input must always be possible"
        pytest.skip("every input of this operation is fixed (key, clinic, ids): nothing left to make invalid")
