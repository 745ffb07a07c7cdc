"""The application object and what every command shares: one-line errors, exit codes, --debug.

Exit codes (DESIGN.md): 0 passed · 1 a gate failed · 2 bad input, one line naming the fix ·
3 a probe errored (the others ran and the report was still written), and also any internal
error of auditkit itself: never 1, which CI reads as "the model failed a gate".
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from auditkit._version import __version__
from auditkit.errors import AuditkitInputError, one_line


class _OneLineErrors(TyperGroup):
    """Flag errors (``--seed -1``, an unknown option) as one line like every other error, not
    Typer's multi-line usage box; the exit code stays click's (2)."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        from typer._click.exceptions import ClickException, NoArgsIsHelpError
        from typer.exceptions import Abort

        from auditkit.tracking import fill_optional_value

        if kwargs.get("args") is not None:
            kwargs["args"] = fill_optional_value(list(kwargs["args"]))
        elif args and args[0] is not None:
            args = (fill_optional_value(list(args[0])), *args[1:])
        else:
            kwargs["args"] = fill_optional_value(sys.argv[1:])
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except NoArgsIsHelpError as exc:  # bare ``auditkit``: the help text is the answer
            exc.show()
            sys.exit(exc.exit_code)
        except ClickException as exc:
            where = getattr(getattr(exc, "ctx", None), "command_path", None)
            hint = f" (see {where} --help)" if where else ""
            typer.echo(f"auditkit: error: {one_line(exc.format_message(), 600)}{hint}", err=True)
            sys.exit(exc.exit_code)
        except Abort:
            typer.echo("auditkit: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=_OneLineErrors,
    add_completion=False,
    no_args_is_help=True,
    help="Audit trained PyTorch models for robustness, calibration, subgroup bias and memorization.",
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

EXIT_BAD_INPUT, EXIT_INTERNAL = 2, 3
EXIT_INTERRUPTED = 130  # the shell's convention for Ctrl-C (128 + SIGINT)
STATE = {"debug": False}

DebugOption = Annotated[
    bool, typer.Option("--debug", help="Show the traceback on errors (also accepted before the command).")
]


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    typer.echo(f"auditkit: error: {message}", err=True)
    raise typer.Exit(code)


def internal_line(exc: BaseException, debug: bool) -> str:
    hint = "" if debug else " (rerun with --debug for the traceback)"
    return f"auditkit: internal error: {type(exc).__name__}: {one_line(exc, 300)}{hint}"


@contextmanager
def guard(debug: bool = False, interrupted: str = "") -> Iterator[None]:
    """Bad input → one line, exit 2. Anything unexpected → one line, exit 3, never a bare
    traceback with exit 1 (which CI would read as a failed gate). ``--debug`` adds the traceback
    and keeps the exit code, so a debug run in CI still means the same thing."""
    STATE["debug"] = STATE["debug"] or debug
    try:
        with _option_warnings_as_lines():
            yield
    except (typer.Exit, typer.Abort, TyperException):
        raise
    except KeyboardInterrupt:
        # click would turn this into exit 1, which CI reads as a failed gate.
        typer.echo(f"auditkit: interrupted{interrupted}", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except AuditkitInputError as exc:
        _traceback_if_debug(exc)
        fail(one_line(exc, 4000))
    except Exception as exc:
        _traceback_if_debug(exc)
        typer.echo(internal_line(exc, STATE["debug"]), err=True)
        raise typer.Exit(EXIT_INTERNAL) from None


@contextmanager
def _option_warnings_as_lines() -> Iterator[None]:
    """A probe option beyond its soft bound is one ``auditkit: warning:`` line, shown once."""
    import warnings

    from auditkit.options import OptionWarning

    shown: set[str] = set()
    with warnings.catch_warnings():
        previous = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
            if not issubclass(category, OptionWarning):
                previous(message, category, filename, lineno, file, line)
            elif str(message) not in shown:
                shown.add(str(message))
                typer.echo(f"auditkit: warning: {message}", err=True)

        warnings.showwarning = show
        warnings.simplefilter("always", OptionWarning)
        yield


def _traceback_if_debug(exc: BaseException) -> None:
    if STATE["debug"]:
        typer.echo("".join(traceback.format_exception(exc)).rstrip(), err=True)


@contextmanager
def reader_may_leave() -> Iterator[None]:
    """`auditkit ... | head` closes the pipe early: the reader's choice, not an error, and the
    exit code (computed before printing) must stay the audit's."""
    try:
        yield
    except BrokenPipeError:
        try:  # later writes (interpreter shutdown flushes stdout) must not raise again
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass


def _version(value: bool) -> None:
    if value:
        typer.echo(f"auditkit {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
    debug: DebugOption = False,
) -> None:
    STATE["debug"] = debug
