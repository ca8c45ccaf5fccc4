"""Standard forms (問診票, 来院後アンケート, 予防接種の希望) a clinic creates its own from.

They are data (``data/standard_forms.yaml``, the manifest's ``forms`` format), not library
items: the shared library holds texts (FAQ answers, templates), while a form is a structure
the clinic adapts (its own fields, tags, wording) once it is copied.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml
from flask_babel import lazy_gettext as _l

from saas.forms import services
from saas.forms.manifest import raw_questions
from saas.forms.models import Form
from saas.manifests.schema import FormSpec

DATA = Path(__file__).with_name("data") / "standard_forms.yaml"
PRESETS = {
    "intake": _l("標準の問診票"),
    "survey": _l("来院後アンケート"),
    "vaccination": _l("予防接種の希望"),
}


@cache
def specs() -> dict[str, FormSpec]:
    data = yaml.safe_load(DATA.read_text(encoding="utf-8"))
    return {key: FormSpec.model_validate(value) for key, value in data.items()}


def _free_name(name: str) -> str:
    taken = {form.name for form in services.all_forms()}
    candidate, number = name, 2
    while candidate in taken:
        candidate, number = f"{name} {number}", number + 1
    return candidate


def create(key: str) -> Form:
    """A new form of the clinic from the standard one ``key`` (KeyError when unknown)."""
    spec = specs()[key]

    def fail(path: str, reason: str):
        raise services.FormProblem(reason)

    return services.save_form(
        Form(questions=[]),
        name=_free_name(spec.name),
        purpose=spec.purpose,
        description=spec.description,
        thanks=spec.thanks,
        questions=raw_questions(spec.questions, fail, "preset"),
    )
