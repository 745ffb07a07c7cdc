"""Renderers: pure functions of ``audit.json`` (HTML, JUnit XML, Markdown).

Writing the files lives in ``auditkit.outputs``.
"""

from __future__ import annotations

from auditkit.render.html import render_html
from auditkit.render.junit import render_junit
from auditkit.render.markdown import render_markdown

__all__ = ["render_html", "render_junit", "render_markdown"]
