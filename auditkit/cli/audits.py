"""``auditkit report`` and ``auditkit diff``: commands that read audits, not models."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from auditkit.cli._app import DebugOption, app, fail, guard, reader_may_leave
from auditkit.cli.files import load_audit, write_text


@app.command(short_help="Re-render the HTML report from audit.json alone (no model needed).")
def report(
    audit_json: Annotated[Path, typer.Argument(metavar="AUDIT_JSON", help="An audit.json written by auditkit scan.")],
    output: Annotated[Path, typer.Option("-o", "--output", metavar="PATH", help="HTML file to write.")] = Path("report.html"),
    debug: DebugOption = False,
) -> None:
    """Re-render the HTML report from audit.json alone (no model needed)."""
    with guard(debug):
        from auditkit.render import render_html

        result = load_audit(audit_json)
        write_text(output, render_html(result), "-o")
        typer.echo(f"report: {output.resolve()}")


@app.command(short_help="Compare two audits: are they comparable, and what regressed.")
def diff(
    base: Annotated[Path, typer.Argument(metavar="BASE_JSON", help="Baseline audit.json, or an MLflow run (runs:/RUN_ID) that logged one.")],
    new: Annotated[Path, typer.Argument(metavar="NEW_JSON", help="New audit.json, or an MLflow run (runs:/RUN_ID).")],
    tolerance: Annotated[float, typer.Option(metavar="FLOAT", help="Allowed absolute change toward worse.")] = 0.01,
    tolerance_for: Annotated[list[str] | None, typer.Option("--tolerance-for", metavar="PROBE.METRIC=FLOAT", help="Per-metric tolerance, e.g. adversarial.robust_accuracy=0.03 (repeatable).")] = None,
    markdown: Annotated[Path | None, typer.Option(metavar="PATH", help="Also write the comparison as Markdown (for a PR comment). On a terminal the comparison is shown as tables; piped, as Markdown.")] = None,
    all_metrics: Annotated[bool, typer.Option("--all", help="List unchanged metrics too.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Compare audits of different data or different kinds of model (otherwise exit 2).")] = False,
    debug: DebugOption = False,
) -> None:
    """Compare two audits: first whether they are comparable (data, model, seed, budget,
    version, probes), then what regressed; exit 1 when a metric, a probe or a check regressed,
    2 when they are not comparable (different data or model interface) and --force is not given."""
    with guard(debug):
        from auditkit.diff import compare, render_diff_markdown

        per_metric: dict[str, float] = {}
        for item in tolerance_for or []:
            key, sep, value = item.partition("=")
            try:
                per_metric[key.strip()] = float(value)
            except ValueError:
                sep = ""
            if not sep or not key.strip():
                fail(f"--tolerance-for {item!r}: expected probe.metric=number, e.g. calibration.ece=0.02")
        with tempfile.TemporaryDirectory(prefix="auditkit-diff-") as scratch:
            audits = [load_audit(_audit_file(ref, Path(scratch) / str(i)))
                      for i, ref in enumerate((base, new))]
        changes = compare(
            *audits, tolerance=tolerance, tolerances=per_metric,
            labels=(str(base), str(new)), force=force,
        )
        text = render_diff_markdown(changes, only_changed=not all_metrics)
        if markdown:
            write_text(markdown, text, "--markdown")
        with reader_may_leave():
            show(text)
    raise typer.Exit(1 if changes.regressed else 0)


def _audit_file(ref: Path, scratch: Path) -> Path:
    """An audit.json path; a run reference (``runs:/ID``) is fetched by the tracker's plugin."""
    from auditkit import tracking

    if tracking.uri_tracker(ref) is None:
        return ref
    scratch.mkdir(parents=True, exist_ok=True)
    return tracking.fetch_audit(ref, scratch)


def on_terminal() -> bool:
    import sys

    return sys.stdout.isatty()


def show(markdown_text: str) -> None:
    """Tables sized to the terminal for a person; the Markdown itself when piped (a PR comment,
    a CI log, ``> diff.md``), so scripts read what they always read."""
    if not on_terminal():
        typer.echo(markdown_text)
        return
    from rich.console import Console
    from rich.markdown import Markdown

    Console(highlight=False).print(Markdown(markdown_text))

