"""The portal's Content-Security-Policy allows no inline script: templates must not need one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

TEMPLATES = Path(__file__).resolve().parent.parent / "frontend" / "templates"
INLINE_HANDLER = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\b(src|nonce)=)[^>]*>", re.IGNORECASE)


@pytest.mark.parametrize("template", sorted(TEMPLATES.rglob("*.html")), ids=lambda p: str(p.relative_to(TEMPLATES)))
def test_template_has_no_inline_script_the_csp_would_block(template):
    source = template.read_text(encoding="utf-8")
    assert not INLINE_HANDLER.search(source), "inline event handlers are blocked by the CSP: use portal.js"
    assert not INLINE_SCRIPT.search(source), 'inline <script> needs nonce="{{ csp_nonce() }}" or a static file'
