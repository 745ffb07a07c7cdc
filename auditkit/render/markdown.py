"""summary.md: a compact table for a pull-request comment or a CI job summary."""

from __future__ import annotations

from auditkit.results import AuditResult

_ICON = {"passed": "✅ pass", "warned": "⚠️ warn", "failed": "❌ fail", "error": "💥 error", "skipped": "⏭️ skipped"}


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def render_markdown(result: AuditResult) -> str:
    model = result.model
    lines = [
        f"## auditkit: {result.verdict.upper()}",
        "",
        f"Model `{_cell(model.get('path') or model.get('format'))}` "
        f"(sha256 `{(model.get('sha256') or '')[:12]}`) on `{_cell(result.data.get('name'))}` "
        f"(n={result.data.get('n')}), seed {result.environment.get('seed')}, "
        f"budget {result.settings.get('budget')}.",
        "",
        "| probe | grade | headline | finding |",
        "|---|---|---|---|",
    ]
    for name, probe in result.probes.items():
        headline = ""
        if probe.headline and probe.headline in probe.metrics:
            headline = f"{probe.headline} = {_fmt(probe.metrics[probe.headline])}"
        finding = probe.summary or probe.error or probe.skip_reason or ""
        lines.append(f"| {name} | {_ICON.get(probe.status, probe.status)} | {_cell(headline)} | {_cell(finding)} |")
    if result.gates:
        lines += ["", "| gate | rule | value | result |", "|---|---|---|---|"]
        for gate in result.gates:
            outcome = "✅ pass" if gate.passed else ("❌ fail" if gate.severity == "fail" else "⚠️ warn")
            lines.append(f"| `{gate.metric}` | {_cell(gate.rule)} | {_fmt(gate.value)} | {outcome} |")
    failed_checks = [
        f"- **{name}.{c.name}**: {_cell(c.detail)}"
        for name, p in result.probes.items() for c in p.checks if c.status == "failed"
    ]
    if failed_checks:
        lines += ["", "**Failed checks**", "", *failed_checks]
    lines.append("")
    return "\n".join(lines)
