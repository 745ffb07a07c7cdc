"""The ``auditkit`` command line. Thin: parse, call the library, write files, exit code.

One module per idea: ``_app`` (the Typer app, one-line errors, exit codes), ``scan`` (scan and
demo, options from ``auditkit.request``), ``audits`` (report, diff), ``listing`` (probes,
generate), ``console`` (the results table), ``files`` (--out and audit files). Importing this
package imports neither torch nor numpy: ``--version``, ``--help`` and flag errors are instant.
"""

from __future__ import annotations

import sys
import traceback

import typer

from auditkit.cli import audits, listing, scan  # noqa: F401 - registers the commands
from auditkit.cli._app import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED, app, internal_line
from auditkit.cli.console import print_result, verdict_line
from auditkit.cli.files import LOCK_NAME, OUT_LOCKED
from auditkit.errors import AuditkitInputError, one_line
from auditkit.request import parse_sets


def _parse_sets(items: list[str]) -> dict:
    """``--set`` items as ``{probe: {option: text}}`` (kept for callers of the old name)."""
    return parse_sets(items)


def main() -> None:
    """Console entry point. Commands handle their own errors; this catches what happens outside
    them (bad input → exit 2, anything else → exit 3), one line unless --debug."""
    debug = "--debug" in sys.argv[1:]
    try:
        app()
    except AuditkitInputError as exc:
        if debug:
            traceback.print_exc()
        typer.echo(f"auditkit: error: {one_line(exc, 4000)}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except Exception as exc:
        if debug:
            traceback.print_exc()
        typer.echo(internal_line(exc, debug), err=True)
        sys.exit(EXIT_INTERNAL)


__all__ = [
    "EXIT_BAD_INPUT", "EXIT_INTERNAL", "EXIT_INTERRUPTED", "LOCK_NAME", "OUT_LOCKED", "app",
    "main", "print_result", "verdict_line",
]
