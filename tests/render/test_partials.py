"""Report partials: a probe's own section is loaded only from an installed probe plugin.

audit.json is untrusted input (it may come from anyone); naming a template in it must not make
the report import an arbitrary package or read an arbitrary file.
"""

from __future__ import annotations

import pytest

from auditkit.render import render_html
from auditkit.results import AuditResult, ProbeResult


def _audit(template: str) -> AuditResult:
    probe = ProbeResult(name="custom", status="passed", metrics={"score": 0.5},
                        summary="a custom probe", report_template=template)
    return AuditResult(model={"format": "nn.Module"}, data={"name": "toy", "n": 1},
                       environment={}, probes={"custom": probe})


@pytest.mark.parametrize("template", [
    "json:__init__.py",  # an installed package that provides no probe
    "auditkit_example:../pyproject.toml",  # a plugin, but outside its package
    "/etc/passwd",
    "no-colon",
])
def test_a_template_from_outside_the_probe_plugins_is_never_loaded(template):
    html = render_html(_audit(template))
    assert "custom.score" in html  # the generic section stands
    assert "not available here" in html
    assert "def dumps" not in html and "root:" not in html and "[project]" not in html


def test_without_a_template_there_is_no_note():
    html = render_html(_audit(""))
    assert "custom.score" in html and "not available here" not in html
