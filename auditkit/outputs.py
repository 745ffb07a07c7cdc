"""Writing an audit to disk: audit.json first, then every rendering of it.

Results are plain data and know nothing about renderers; this module joins the two.
"""

from __future__ import annotations

from pathlib import Path

from auditkit.render import render_html, render_junit, render_markdown
from auditkit.results import AuditResult

OUTPUT_FILES = ("audit.json", "report.html", "junit.xml", "summary.md")


def write_outputs(result: AuditResult, out_dir: str | Path) -> dict[str, Path]:
    """Write audit.json, report.html, junit.xml and summary.md into ``out_dir``.

    audit.json is written first so nothing computed is ever lost, and the others are rendered
    from the JSON itself, exactly as ``auditkit report`` would.

    Example:
        >>> paths = write_outputs(auditkit.scan(net, (x, y)), "auditkit-out")
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in OUTPUT_FILES}
    result.save_json(paths["audit.json"])
    reread = AuditResult.load(paths["audit.json"])
    paths["report.html"].write_text(render_html(reread), encoding="utf-8", newline="\n")
    paths["junit.xml"].write_text(render_junit(reread), encoding="utf-8", newline="\n")
    paths["summary.md"].write_text(render_markdown(reread), encoding="utf-8", newline="\n")
    return paths


__all__ = ["OUTPUT_FILES", "write_outputs"]
