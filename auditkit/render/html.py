"""report.html: one self-contained file rendered by jinja2 from audit.json alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from auditkit.results import AuditResult

_PACKAGE_DIR = Path(__file__).resolve().parents[1]
TEMPLATE_DIRS = (
    _PACKAGE_DIR / "templates",  # inside an installed wheel
    _PACKAGE_DIR.parent / "reports" / "templates",  # a source checkout / editable install
)


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(d) for d in TEMPLATE_DIRS if d.is_dir()]),
        autoescape=True,  # every user-supplied string (paths, class and group names) is escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = format_number
    env.filters["pct"] = format_percent
    return env


def format_number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def format_percent(value: Any) -> str:
    return "—" if value is None else f"{100 * float(value):.1f}%"


def render_html(result: AuditResult) -> str:
    """Render the report; the output depends only on ``result`` (i.e. on audit.json)."""
    template = environment().get_template("report.html.j2")
    return template.render(audit=result.to_dict(), result=result)
