"""One probe as the report shows it: its tile, its section and its "look at this first" items.

Derived from the probe's audit.json entry alone (``build_view`` in ``render.html`` assembles
the page from these). Names, titles and templates come from plugins: nothing here trusts them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from markupsafe import Markup

from auditkit.render.environment import _partial_template
from auditkit.render.figures import render_figure
from auditkit.render.fmt import (
    as_number,
    clip_words,
    format_metric,
    format_number,
    format_value,
    headline_text,
    threat_model,
)
from auditkit.verdict import grade_items, grade_reason

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
TILE_CHARS = 160  # a tile's reason is cut at a word beyond this; the full text is its tooltip
SEVERITY_ICON = {"critical": "fail", "warning": "warn", "info": "info"}
_SLUG = re.compile(r"[^A-Za-z0-9_-]+")


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
