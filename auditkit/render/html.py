"""report.html: one self-contained file rendered by jinja2 from audit.json alone.

The page needs nothing beyond itself: styles are inline, figures are inline SVG (or PNG
``data:`` URIs for pixel galleries), and there is no script at all, so the Content-Security-Policy
can be ``default-src 'none'``. Rendering is deterministic: no render-time clock, stable order,
fixed number formats; ``auditkit report audit.json`` reproduces the original byte for byte.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from auditkit.counts import gate_counts
from auditkit.render import svg
from auditkit.render.figures import badge, render_figure
from auditkit.render.fmt import (
    as_number,
    clip_words,
    format_metric,
    format_number,
    format_percent,
    format_seconds,
    format_value,
    headline_text,
    threat_model,
)
from auditkit.results import AuditResult
from auditkit.verdict import (
    grade_items,
    grade_reason,
    verdict_basis,
    verdict_reasons,
    verdict_text,
)

_PACKAGE_DIR = Path(__file__).resolve().parents[1]
TEMPLATE_DIRS = (
    _PACKAGE_DIR / "templates",  # inside an installed wheel
    _PACKAGE_DIR.parent / "reports" / "templates",  # a source checkout / editable install
)

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

# Built-in probes: display title and the question each answers (plugins fall back to their name).
PROBE_INFO: dict[str, tuple[str, str]] = {
    "performance": (
        "Clean performance",
        "How often is the model right on the audit data, per class?",
    ),
    "adversarial": (
        "Adversarial robustness",
        "Do small, deliberate input changes flip its answers, and can the attack numbers be trusted?",
    ),
    "calibration": (
        "Calibration & uncertainty",
        "Does its confidence match how often it is right, and does it know what it doesn't know?",
    ),
    "bias": ("Subgroup bias", "Does it fail some groups of examples more than others?"),
    "memorization": (
        "Memorization capacity",
        "Can this architecture memorize noise at this data size?",
    ),
}

_BETTER = {"higher": "higher is better", "lower": "lower is better"}


def metric_meaning(metric: str, probe: Mapping[str, Any]) -> str:
    """What the probe declared about ``metric`` (stored in audit.json as ``metric_info``)."""
    info = (probe.get("metric_info") or {}).get(metric) or {}
    text = str(info.get("description") or "")
    better = _BETTER.get(str(info.get("direction")))
    return f"{text} ({better})" if text and better else text


STATUS_ICON = {
    "passed": "pass",
    "warned": "warn",
    "failed": "fail",
    "error": "error",
    "skipped": "skip",
}
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
LOOK_FIRST_ORDER = {"failed": 0, "error": 0, "warned": 1}
# An audit.json written before fail_on existed was judged by its gates alone.
LEGACY_FAIL_ON = "never"
TILE_CHARS = 160  # a tile's reason is cut at a word beyond this; the full text is its tooltip
SEVERITY_ICON = {"critical": "fail", "warning": "warn", "info": "info"}
_SLUG = re.compile(r"[^A-Za-z0-9_-]+")


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The report's jinja2 environment (autoescaping, strict undefined, shared filters)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(d) for d in TEMPLATE_DIRS if d.is_dir()]),
        autoescape=True,  # every user-supplied string (paths, class and group names) is escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["fmt"] = format_number
    env.filters["pct"] = format_percent
    env.filters["seconds"] = format_seconds
    env.filters["value"] = format_value
    env.globals["badge"] = badge
    env.globals["icon"] = svg.icon
    return env


def _plugin_packages() -> set[str]:
    """Top-level packages that provide a probe through the ``auditkit.probes`` entry point.

    audit.json is untrusted input: a report partial is loaded only from these (importing a
    package runs its code, so the JSON must not be able to name any installed package).
    """
    from auditkit.registry import PROBE_GROUP, iter_entry_points

    return {ep.module.partition(".")[0] for ep in iter_entry_points(PROBE_GROUP)}


@functools.lru_cache(maxsize=32)
def _partial_template(spec: str) -> jinja2.Template | None:
    """The Jinja partial ``package:relative/path`` a probe declared, or None if unavailable."""
    import importlib.resources

    package, sep, relative = spec.partition(":")
    parts = Path(relative).parts
    if not sep or not relative or Path(relative).is_absolute() or ".." in parts:
        return None
    if package.partition(".")[0] not in _plugin_packages():
        return None
    try:
        text = importlib.resources.files(package).joinpath(*parts).read_text(encoding="utf-8")
        return environment().from_string(text)
    except Exception:  # missing file, uninstalled plugin, a template that does not compile
        return None


def _partial(probe: Mapping[str, Any], view: Mapping[str, Any]) -> tuple[Markup | None, str]:
    """The probe's own report section (contract: variables ``probe`` and ``view``), and a note
    when it was declared but could not be shown (the generic section stands either way)."""
    spec = probe.get("report_template")
    if not spec:
        return None, ""
    template = _partial_template(str(spec))
    missing = f"This probe's own report section ({spec}) is not available here; install the " \
        "plugin that provides it and re-render with auditkit report."
    if template is None:
        return None, missing
    try:
        return Markup(template.render(probe=probe, view=view)), ""
    except Exception:  # a broken partial must not take the report down
        return None, missing


def slug(name: str, index: int) -> str:
    """A safe, unique HTML id for a probe section (names come from plugins: never trust them)."""
    cleaned = _SLUG.sub("-", name).strip("-")[:40]
    return f"probe-{cleaned}" if cleaned and cleaned == name else f"probe-{index}-{cleaned or 'x'}"


def _findings(probe: Mapping[str, Any]) -> list[dict[str, Any]]:
    findings = []
    for f in probe.get("findings") or []:
        if not isinstance(f, Mapping):
            continue
        severity = str(f.get("severity") or "info")
        findings.append(
            {
                "severity": severity,
                "title": str(f.get("title") or ""),
                "why": str(f.get("why") or ""),
                "action": str(f.get("action") or ""),
                "icon": SEVERITY_ICON.get(severity, "info"),
                "label": severity.upper(),
            }
        )
    return sorted(findings, key=lambda f: SEVERITY_ORDER.get(f["severity"], 3))


def _one_liner(probe: Mapping[str, Any]) -> tuple[str, str]:
    """The tile's sentence and its full text: the check or finding that set the grade (the
    probe's summary when it passed). Cut at a word, never inside one; the full text is the
    tooltip."""
    status = probe.get("status")
    reason = grade_reason(probe)
    if status == "error":
        reason = f"Error: {probe.get('error') or 'the probe failed'}"
    elif status == "skipped":
        reason = f"Skipped: {reason}"
    full = " ".join(str(reason).split())
    return clip_words(full, TILE_CHARS)[0], full


def _look_first(probe_view: Mapping[str, Any], probe: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The probe's failed and warned items, worst first; the first is its tile's reason."""
    status = str(probe.get("status") or "")
    if status not in ("failed", "warned", "error"):
        return []
    if status == "error":
        return [{"probe": probe_view, "status": "error", "text": probe_view["one_liner_full"],
                 "source": "error", "action": "fix the cause and re-run this probe"}]
    actions = {
        str(f.get("title") or ""): str(f.get("action") or "")
        for f in probe.get("findings") or []
        if isinstance(f, Mapping)
    }
    items = []
    for item_status, source, text in grade_items(probe):
        items.append(
            {
                "probe": probe_view,
                "status": item_status,
                "text": text,
                "source": source,
                "action": actions.get(text, "") if source == "finding" else "",
            }
        )
    if not items:  # graded without a check or finding to show for it: its summary is the reason
        items.append({"probe": probe_view, "status": status, "text": probe_view["one_liner_full"],
                      "source": "summary", "action": ""})
    return items


def _unmeasured(name: str, probe: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A probe's unmeasured metrics as one sentence per reason instead of rows of dashes."""
    metrics = probe.get("metrics") or {}
    missing = [m for m, v in metrics.items() if as_number(v) is None]
    if not missing:
        return []
    from auditkit.gates import unmeasured_reason
    from auditkit.results import ProbeResult

    details = probe.get("details") if isinstance(probe.get("details"), Mapping) else {}
    told = details.get("unmeasured") if isinstance(details.get("unmeasured"), Mapping) else {}
    groups: dict[str, list[str]] = {}
    try:
        result = ProbeResult.from_dict({"name": name, **probe})
        # One sentence per reason the probe gave in its own words, and one for all the rest
        # (the first of them speaks for all: e.g. the bias probe's "no sensitive columns").
        rest = [m for m in missing if not told.get(m)]
        for metric in missing:
            if told.get(metric):
                groups.setdefault(unmeasured_reason(name, metric, result), []).append(metric)
            elif metric == rest[0]:
                groups.setdefault(unmeasured_reason(name, metric, result), []).extend(rest)
    except (KeyError, TypeError, ValueError):
        groups = {"": missing}
    return [{"names": [f"{name}.{m}" for m in names], "why": why} for why, names in groups.items()]


def _checks(probe: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for check in probe.get("checks") or []:
        if not isinstance(check, Mapping):
            continue
        values = check.get("values") or {}
        rows.append(
            {
                "name": str(check.get("name", "")),
                "status": str(check.get("status", "")),
                "detail": str(check.get("detail") or ""),
                "values": [(str(k), format_value(v)) for k, v in values.items()]
                if isinstance(values, Mapping)
                else [("value", format_value(values))],
            }
        )
    return rows


def probe_title(name: str, probe: Mapping[str, Any]) -> str:
    """Every probe has a title: a built-in's own, the one a plugin declared (recorded in
    audit.json), else its name in words ("noise_robustness" → "Noise Robustness")."""
    if name in PROBE_INFO:
        return PROBE_INFO[name][0]
    declared = " ".join(str(probe.get("title") or "").split())
    if declared:
        return declared
    words = [w for w in re.split(r"[_\-\s]+", name) if w]
    return " ".join(w[:1].upper() + w[1:] for w in words) or name


def not_applicable(probe: Mapping[str, Any]) -> str | None:
    """What a skipped probe applies to, when it was skipped because the model is of another
    kind (``details.not_applicable``, set by the runner from ``Probe.not_applicable``)."""
    details = probe.get("details")
    if probe.get("status") != "skipped" or not isinstance(details, Mapping):
        return None
    phrase = " ".join(str(details.get("not_applicable") or "").split())
    return phrase or None


def _probe_view(name: str, probe: Mapping[str, Any], index: int) -> dict[str, Any]:
    title = probe_title(name, probe)
    question = PROBE_INFO.get(name, ("", ""))[1]
    findings = _findings(probe)
    checks = _checks(probe)
    status = str(probe.get("status") or "error")
    ident = slug(name, index)
    metrics = probe.get("metrics") or {}
    details = probe.get("details") or {}
    traceback = details.get("traceback") if isinstance(details, Mapping) else None
    check_counts = {
        s: sum(c["status"] == s for c in checks) for s in ("passed", "warned", "failed", "skipped")
    }
    one_liner, one_liner_full = _one_liner(probe)
    unmeasured = _unmeasured(name, probe)
    view = {
        "name": name,
        "id": ident,
        "title": title,
        "question": question,
        "status": status,
        "icon": STATUS_ICON.get(status, "info"),
        # Its section starts open when it needs attention, collapsed otherwise.
        "open": status in ("failed", "warned", "error"),
        "label": {
            "passed": "PASS",
            "warned": "WARN",
            "failed": "FAIL",
            "error": "ERROR",
            "skipped": "SKIPPED",
        }.get(status, status.upper()),
        "headline": headline_text(probe),
        "threat_model": threat_model(probe),
        "one_liner": one_liner,
        "one_liner_full": one_liner_full,
        "unmeasured": unmeasured,
        "summary": str(probe.get("summary") or ""),
        "error": probe.get("error"),
        "traceback": traceback if isinstance(traceback, str) else None,
        "skip_reason": probe.get("skip_reason"),
        "seconds": probe.get("seconds"),
        "findings": findings,
        "n_urgent": sum(f.get("severity") in ("critical", "warning") for f in findings),
        "checks": checks,
        "check_counts": check_counts,
        "checks_title": "Validity checklist" if name == "adversarial" else "Checks",
        "metrics": [
            {
                "name": str(metric),
                "value": format_number(value),
                "readable": format_metric(str(metric), value),
                "meaning": metric_meaning(str(metric), probe),
                "headline": metric == probe.get("headline"),
            }
            for metric, value in metrics.items()
            if as_number(value) is not None or not unmeasured
        ],
        "figures": [
            render_figure(figure, f"f{index}-{j}")
            for j, figure in enumerate(probe.get("figures") or [])
        ],
    }
    view["partial"], view["partial_note"] = _partial(probe, view)
    return view


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
    "build_view",
    "environment",
    "format_number",
    "format_percent",
    "render_html",
]
