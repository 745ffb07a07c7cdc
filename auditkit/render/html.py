"""report.html: one self-contained file rendered by jinja2 from audit.json alone.

The page needs nothing beyond itself: styles are inline, figures are inline SVG (or PNG
``data:`` URIs for pixel galleries), and there is no script at all, so the Content-Security-Policy
can be ``default-src 'none'``. Rendering is deterministic: no render-time clock, stable order,
fixed number formats; ``auditkit report audit.json`` reproduces the original byte for byte.

This room assembles the page; each probe's tile and section are ``render.probe_view`` and the
jinja2 environment (templates, plugin partials) is ``render.environment``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from auditkit.counts import gate_counts
from auditkit.render import svg
from auditkit.render.environment import TEMPLATE_DIRS, environment
from auditkit.render.fmt import format_number, format_percent
from auditkit.render.probe_view import (
    LOOK_FIRST_ORDER,
    PROBE_INFO,
    STATUS_ICON,
    _look_first,
    _probe_view,
    metric_meaning,
    not_applicable,
    probe_title,
)
from auditkit.results import AuditResult
from auditkit.verdict import verdict_basis, verdict_reasons, verdict_text

# No scripts, no fetches: styles inline, images only as data: URIs. (frame-ancestors and sandbox
# are ignored in a <meta> policy and make Chromium log errors, so they are left out.)
CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

# Colours as data so a test can check their contrast (WCAG AA: 4.5:1 for text, 3:1 for marks).
PALETTES: dict[str, dict[str, str]] = {
    "light": {
        "bg": "#ffffff",
        "fg": "#1f2328",
        "muted": "#57606a",
        "panel": "#f6f8fa",
        "border": "#d0d7de",
        "grid": "#e6e9ed",
        "link": "#0550ae",
        "pass": "#1a7f37",
        "warn": "#9a6700",
        "fail": "#cf222e",
        "error": "#8250df",
        "skip": "#57606a",
        "info": "#0969da",
        "heat": "#0a3069",
        "on-heat": "#ffffff",
        "neg": "#82071e",
        "c0": "#0072b2",
        "c1": "#c04f00",
        "c2": "#00795a",
        "c3": "#a8347f",
        "c4": "#8a5a00",
        "c5": "#4b5fc9",
        "c6": "#5c6b00",
        "c7": "#3d4852",
    },
    "dark": {
        "bg": "#0d1117",
        "fg": "#e6edf3",
        "muted": "#9198a1",
        "panel": "#161b22",
        "border": "#3d444d",
        "grid": "#272e38",
        "link": "#4493f8",
        "pass": "#3fb950",
        "warn": "#d29922",
        "fail": "#f85149",
        "error": "#ab7df8",
        "skip": "#9198a1",
        "info": "#4493f8",
        "heat": "#a5d6ff",
        "on-heat": "#0d1117",
        "neg": "#ffa198",
        "c0": "#56b4e9",
        "c1": "#f0884a",
        "c2": "#3fc59a",
        "c3": "#e08ec4",
        "c4": "#e6b422",
        "c5": "#a5b4fc",
        "c6": "#c8d86a",
        "c7": "#c9d1d9",
    },
}
# An audit.json written before fail_on existed was judged by its gates alone.
LEGACY_FAIL_ON = "never"


def _gate_view(gate: Mapping[str, Any]) -> dict[str, Any]:
    passed = bool(gate.get("passed"))
    severity = str(gate.get("severity") or "fail")
    status = "passed" if passed else ("failed" if severity == "fail" else "warned")
    return {
        "metric": str(gate.get("metric", "")),
        "rule": str(gate.get("rule", "")),
        "value": format_number(gate.get("value")),
        "status": status,
        "severity": severity,
        "detail": str(gate.get("detail") or ""),
    }


def build_view(audit: Mapping[str, Any]) -> dict[str, Any]:
    """Everything the template shows, derived from the audit.json dictionary alone."""
    raw = [
        (str(name), probe)
        for name, probe in (audit.get("probes") or {}).items()
        if isinstance(probe, Mapping)
    ]
    # Probes that do not apply to this kind of model get one line, not a tile and a section.
    inapplicable = [
        {"name": name, "title": probe_title(name, probe), "applies_to": not_applicable(probe)}
        for name, probe in raw
        if not_applicable(probe)
    ]
    kept = [(i, name, probe) for i, (name, probe) in enumerate(raw) if not not_applicable(probe)]
    probes = [_probe_view(name, probe, i) for i, name, probe in kept]
    gates = [_gate_view(g) for g in audit.get("gates") or [] if isinstance(g, Mapping)]
    counts = {s: sum(p["status"] == s for p in probes) for s in STATUS_ICON}
    # "What to look at first": exactly the failed and warned items, worst first. A probe's
    # failed/warned checks and findings under its grade, failed gates; nothing from a passed tile.
    urgent = [
        item
        for view, (_, _, probe) in zip(probes, kept, strict=True)
        for item in _look_first(view, probe)
    ]
    for gate in gates:
        if gate["status"] in ("failed", "warned"):
            urgent.append({"probe": None, "gate": gate, "status": gate["status"],
                           "text": gate["detail"] or f"{gate['metric']} {gate['rule']}",
                           "source": "gate", "action": ""})
    urgent.sort(key=lambda item: LOOK_FIRST_ORDER.get(item["status"], 2))
    reasons = verdict_reasons(
        dict(raw), [g for g in audit.get("gates") or [] if isinstance(g, Mapping)],
        str(audit.get("fail_on") or LEGACY_FAIL_ON),
    )
    model = dict(audit.get("model") or {})
    data = dict(audit.get("data") or {})
    env = dict(audit.get("environment") or {})
    settings = dict(audit.get("settings") or {})
    verdict = str(audit.get("verdict") or "error")
    shown = verdict_text(verdict, reasons)
    path = model.get("path")
    return {
        "verdict": verdict,
        "verdict_text": shown,
        "verdict_class": "warned" if shown == "passed with warnings" else verdict,
        "verdict_icon": {"passed": "pass", "failed": "fail"}.get(verdict, "error")
        if shown != "passed with warnings"
        else "warn",
        "verdict_reasons": [r.line for r in reasons],
        "verdict_basis": verdict_basis(
            str(audit.get("fail_on") or LEGACY_FAIL_ON), settings.get("policy"),
            audit.get("gates") or [], audit.get("probes") or {},
        ),
        "probes": probes,
        "not_applicable": inapplicable,
        "sizing_summary": _sizing_summary(settings.get("sizing")),
        "gates": gates,
        # Gates not holding, counted as every output counts them (auditkit.counts).
        "gates_failed": len(gates) - gate_counts(audit.get("gates") or [])[0],
        "counts": counts,
        "urgent": urgent,
        "model_name": Path(str(path)).name
        if path
        else str(model.get("format") or "in-memory model"),
        "model": model,
        "data": data,
        "environment": env,
        "settings": settings,
        "options": json.dumps(settings.get("options") or {}, sort_keys=True, ensure_ascii=False),
        "audit": audit,
        "csp": CONTENT_SECURITY_POLICY,
        "palettes": PALETTES,
        "series_styles": svg.SERIES_STYLES,
    }


def _sizing_summary(sizing: Any) -> str:
    """The recorded work plan's sentence ("" when the work was not sized)."""
    if not isinstance(sizing, Mapping):
        return ""
    return " ".join(str(sizing.get("summary") or "").split())


def render_html(result: AuditResult) -> str:
    """Render the report; the output depends only on ``result`` (i.e. on audit.json).

    The result goes through its JSON form first, so rendering an in-memory result and
    re-rendering its saved audit.json give the same bytes.
    """
    audit = json.loads(result.to_json())
    template = environment().get_template("report.html.j2")
    return template.render(view=build_view(audit), audit=audit)


__all__ = [
    "CONTENT_SECURITY_POLICY",
    "PALETTES",
    "PROBE_INFO",
    "TEMPLATE_DIRS",
    "build_view",
    "environment",
    "format_number",
    "format_percent",
    "metric_meaning",
    "not_applicable",
    "probe_title",
    "render_html",
]
