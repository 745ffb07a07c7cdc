"""Renderers: pure functions of ``audit.json`` (HTML, JUnit XML, Markdown)."""

from __future__ import annotations

from pathlib import Path

from auditkit.render.html import render_html
from auditkit.render.junit import render_junit
from auditkit.render.markdown import render_markdown
from auditkit.results import AuditResult

OUTPUT_FILES = ("audit.json", "report.html", "junit.xml", "summary.md")


def write_outputs(result: AuditResult, out_dir: Path) -> dict[str, Path]:
    """Write the four output files; audit.json first so nothing computed is ever lost."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in OUTPUT_FILES}
    paths["audit.json"].write_text(result.to_json(), encoding="utf-8", newline="\n")
    # Render from the JSON itself, exactly as `auditkit report` would.
    reread = AuditResult.load(paths["audit.json"])
    paths["report.html"].write_text(render_html(reread), encoding="utf-8", newline="\n")
    paths["junit.xml"].write_text(render_junit(reread), encoding="utf-8", newline="\n")
    paths["summary.md"].write_text(render_markdown(reread), encoding="utf-8", newline="\n")
    return paths


__all__ = ["OUTPUT_FILES", "render_html", "render_junit", "render_markdown", "write_outputs"]
