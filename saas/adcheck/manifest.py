"""The manifest section ``organization.adcheck``: the organization's rule overrides, export and apply.

The list is the whole set: a rule the file lists is set as written, a rule it leaves out goes
back to the shipped rule. Exporting and applying the result changes nothing (idempotent).
"""

from __future__ import annotations

from collections.abc import Callable

from saas.adcheck import overrides
from saas.adcheck.services import overrides_for


def export(organization):
    """The organization's overrides as a manifest section (empty when it uses the shipped rules)."""
    from saas.manifests.schema import AdcheckSpec, AdRuleOverrideSpec

    specs = []
    for row in overrides_for(organization.id):
        state = overrides.state_of(row)
        specs.append(AdRuleOverrideSpec(id=row.rule_id, **state))
    return AdcheckSpec(rules=specs)


def apply(organization, spec, change: Callable[[str], None]) -> None:
    """Bring the organization's overrides in line with the section; each change is reported."""
    listed = set()
    for rule in spec.rules:
        listed.add(rule.id)
        wanted = {
            "enabled": rule.enabled,
            "severity": rule.severity,
            "extra_phrases": list(dict.fromkeys(rule.extra_phrases)),
            "allowed_phrases": list(dict.fromkeys(rule.allowed_phrases)),
        }
        if overrides.put(organization.id, rule.id, wanted):
            change(f"法人 {organization.slug}.adcheck.{rule.id}: {wanted!r}")
    for rule_id in overrides.reset_missing(organization.id, listed):
        change(f"法人 {organization.slug}.adcheck.{rule_id}: 標準に戻す")
