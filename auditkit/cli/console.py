"""What a scan prints: the results table, sized to the terminal, and the verdict lines.

At 80 columns the table wraps at words; a metric name is never cut (its column is as wide as
the longest name) and the reason is never shortened.
"""

from __future__ import annotations

from typing import Any

import typer


def verdict_line(result: Any, policy: Any) -> str:
    """The last word of a scan: the verdict as people read it and what it rests on."""
    from auditkit.verdict import verdict_basis

    basis = verdict_basis(
        result.fail_on, policy.source if policy is not None else None, result.gates,
        result.probes,
    )
    return f"auditkit verdict: {result.verdict_text} ({basis})"


def print_result(result: Any, policy: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    from auditkit.verdict import grade_reason

    console = Console(stderr=False, highlight=False)
    rows = []
    for name, probe in result.probes.items():
        headline = ""
        if probe.headline and probe.metrics.get(probe.headline) is not None:
            # Name and value on two lines: the column is only as wide as the longest name.
            headline = f"{probe.headline}\n= {probe.metrics[probe.headline]:.4g}"
        # The same one-line reason as the report's tile (what set the grade), wrapped, whole.
        rows.append((name, probe.status, headline, grade_reason(probe)))
    widest = max([len(line) for row in rows for line in row[2].splitlines()] or [8])
    # width: ratio columns make rich crop a table wider than the console instead of wrapping it.
    table = Table(title="probes", show_lines=console.width < 100, width=console.width)
    table.add_column("probe", overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("headline", min_width=min(widest, console.width // 2), overflow="fold")
    table.add_column("why", ratio=1, overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    if result.gates:
        gates = Table(title="gates")
        for col in ("gate", "rule", "value", "result"):
            gates.add_column(col, overflow="fold")
        for g in result.gates:
            outcome = "pass" if g.passed else ("FAIL" if g.severity == "fail" else "warn")
            value = f"{g.value:.4g}" if isinstance(g.value, float) else str(g.value)
            gates.add_row(g.metric, g.rule, value, outcome)
        console.print(gates)
    # Plain echo, not rich: these lines are what CI logs get grepped for; they must not wrap.
    # The same reasons, in the same order, as summary.md, junit.xml, the report and audit.json.
    for reason in result.verdict_reasons:
        typer.echo(reason.line)
    typer.echo(verdict_line(result, policy))
