"""The report's jinja2 environment, and the probe partials it may load.

Where templates come from is one question with one answer for the page and for plugins (the NAS
plugin renders its section with this environment): the package's own templates, and a probe's
``report_template`` only from a package that provides a probe (audit.json is untrusted input).
"""

from __future__ import annotations

import functools
from pathlib import Path

import jinja2

from auditkit.render import svg
from auditkit.render.figures import badge
from auditkit.render.fmt import format_number, format_percent, format_seconds, format_value

_PACKAGE_DIR = Path(__file__).resolve().parents[1]
TEMPLATE_DIRS = (
    _PACKAGE_DIR / "templates",  # inside an installed wheel
    _PACKAGE_DIR.parent / "reports" / "templates",  # a source checkout / editable install
)


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
