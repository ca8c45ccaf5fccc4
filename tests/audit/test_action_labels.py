"""Every action the code records reads as its own words on the audit page and in its filter."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import saas
from saas.audit.labels import ACTION_LABELS, action_label

# record("x.y", …) / audit.record(\n "x.y", …), and the constants some callers pass instead.
RECORDED = re.compile(r'record\(\s*"([a-z_]+\.[a-z_.]+)"')
CONSTANT = re.compile(r'^[A-Z_]+ = "([a-z_]+\.[a-z_.]+)"', re.MULTILINE)


def _recorded_actions() -> set[str]:
    actions = set()
    for path in Path(saas.__file__).parent.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        actions.update(RECORDED.findall(text))
        if "record(" in text:
            actions.update(a for a in CONSTANT.findall(text) if a.split(".")[0] in {"booking", "conversation"})
    return actions


def test_every_recorded_action_has_a_label_and_no_two_actions_share_one(app):
    actions = _recorded_actions()
    assert {"conversation.view", "delivery.send", "coupon.redeemed", "message.unsent"} <= actions
    assert sorted(actions - ACTION_LABELS.keys()) == [], "shown as 「…の操作」 or 「その他の操作」"
    with app.test_request_context():
        by_label = defaultdict(list)
        for action in ACTION_LABELS:
            by_label[action_label(action)].append(action)
    assert {label: codes for label, codes in by_label.items() if len(codes) > 1} == {}


def test_the_english_portal_labels_every_action_in_english(app):
    with app.test_request_context("/?lang=en"):
        untranslated = [a for a in ACTION_LABELS if re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", action_label(a))]
    assert untranslated == []
