"""summary.md: a compact table for a pull-request comment or a CI job summary.

GitHub renders HTML inside Markdown, so every user-supplied string is escaped here too: HTML
special characters become entities, Markdown punctuation is backslash-escaped, and pipes and
newlines cannot break the table.
"""

from __future__ import annotations

import re
from typing import Any

from auditkit.counts import gate_counts
from auditkit.render.fmt import (
    format_metric,
    format_number,
    format_seconds,
    format_value,
    one_line,
    threat_model,
)
from auditkit.results import AuditResult
from auditkit.verdict import grade_reason, verdict_basis

GRADE = {
    "passed": "✅ pass",
    "warned": "⚠️ warn",
    "failed": "❌ fail",
    "error": "💥 error",
    "skipped": "⏭️ skipped",
}
VERDICT = {
    "passed": "✅ PASSED",
    "passed with warnings": "⚠️ PASSED WITH WARNINGS",
    "failed": "❌ FAILED",
    "error": "💥 ERROR",
}
MAX_LIST = 10
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#~])")


def text(value: Any, limit: int = 160) -> str:
    """Plain text safe in a table cell: no HTML, no Markdown markup, no pipes, one line."""
    flat = one_line(value, limit)
    flat = flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", flat)


def code(value: Any, limit: int = 120) -> str:
    """An inline code span that survives backticks and pipes in the value."""
    flat = one_line(value, limit).replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") or not flat else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def render_markdown(result: AuditResult) -> str:
    """The audit as a short Markdown summary; a pure function of audit.json."""
    result = AuditResult.from_json(result.to_json())
    model, data, env = result.model, result.data, result.environment
    model_name = (
        str(model.get("path") or model.get("format") or "model")
        .replace("\\", "/")
        .rsplit("/", 1)[-1]
    )
    facts = [
        f"model {code(model_name)} ({text(model.get('format') or 'unknown format')}, "
        f"sha256 {code((model.get('sha256') or 'n/a')[:12])})",
        f"data {text(data.get('name') or 'unnamed')} (n={format_number(data.get('n'))}"
        + (", **synthetic**" if data.get("synthetic") else "")
        + ")",
        f"seed {format_number(env.get('seed', result.settings.get('seed')))}",
        f"budget {text(result.settings.get('budget') or '—')}",
        f"device {text(env.get('device') or '—')}",
        f"auditkit {text(result.auditkit_version or '?')}",
        format_seconds(result.duration_seconds),
    ]
    sizing = (result.settings.get("sizing") or {}).get("summary")
    verdict = result.verdict_text
    lines = [f"## auditkit: {VERDICT.get(verdict, text(verdict).upper())}", ""]
    # The reasons, worst first: the same lines the console prints and the report's header lists.
    reasons = result.verdict_reasons
    for reason in reasons[:MAX_LIST]:
        lines.append(f"- {text(reason.line, 300)}")
    if len(reasons) > MAX_LIST:
        lines.append(f"- … and {len(reasons) - MAX_LIST} more in report.html")
    if reasons:
        lines.append("")
    basis = verdict_basis(
        result.fail_on, result.settings.get("policy"), result.gates, result.probes
    )
    lines += [
        f"Verdict rule: {text(basis, 300)}",
        "",
        " · ".join(facts),
        "",
        # Said when the work or the threads were changed for the clock (else it is in the
        # report's settings only).
        *([text(sizing, 900), ""] if sizing and _sizing_changed(result) else []),
        "| probe | grade | headline | why |",
        "|---|---|---|---|",
    ]
    for name, probe in result.probes.items():
        headline = ""
        if probe.headline and probe.headline in probe.metrics:
            value = format_metric(probe.headline, probe.metrics[probe.headline])
            headline = f"{text(probe.headline)} **{text(value)}**"
            if threat_model(probe):
                headline += f" ({text(threat_model(probe), 120)})"
        if probe.status == "skipped":
            finding = f"skipped: {grade_reason(probe)}"
        else:
            finding = grade_reason(probe)
        lines.append(
            f"| {text(name, 60)} | {GRADE.get(probe.status, text(probe.status))} | {headline} | {text(finding)} |"
        )
    if result.gates:
        held, total = gate_counts(result.gates)
        lines += [
            "",
            f"**Gates**: {held} of {total} hold.",
            "",
            "| gate | rule | value | result |",
            "|---|---|---|---|",
        ]
        for gate in result.gates:
            outcome = (
                "✅ pass" if gate.passed else ("❌ fail" if gate.severity == "fail" else "⚠️ warn")
            )
            lines.append(
                f"| {code(gate.metric)} | {text(gate.rule)} | {format_number(gate.value)} | {outcome} |"
            )
    failed_checks = [
        (name, check)
        for name, p in result.probes.items()
        for check in p.checks
        if check.status == "failed"
    ]
    if failed_checks:
        lines += ["", "**Failed checks**", ""]
        for name, check in failed_checks[:MAX_LIST]:
            numbers = ", ".join(f"{k}={format_value(v)}" for k, v in check.values.items())
            lines.append(
                f"- {text(name, 60)} · {code(check.name)}: {text(check.detail)}"
                + (f" ({text(numbers)})" if numbers else "")
            )
        if len(failed_checks) > MAX_LIST:
            lines.append(f"- … and {len(failed_checks) - MAX_LIST} more in report.html")
    urgent = [
        (name, f)
        for name, p in result.probes.items()
        for f in p.findings
        if f.severity == "critical"
    ]
    if urgent:
        lines += ["", "**Critical findings**", ""]
        for name, finding in urgent[:MAX_LIST]:
            action = f" — {text(finding.action)}" if finding.action else ""
            lines.append(f"- {text(name, 60)}: {text(finding.title)}{action}")
    lines += ["", "Full report: `report.html` (self-contained; open it in any browser).", ""]
    return "\n".join(lines)


def _sizing_changed(result: AuditResult) -> bool:
    plan = result.settings.get("sizing") or {}
    return bool(plan.get("noteworthy") or plan.get("reduced") or plan.get("threads"))
