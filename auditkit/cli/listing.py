"""``auditkit probes`` and ``auditkit generate``: what is installed, and the plugin generators."""

from __future__ import annotations

from typing import Annotated

import typer

from auditkit.cli._app import DebugOption, app, fail, guard, reader_may_leave


@app.command("probes", short_help="List installed probes and generators; --verbose: metrics, options.")
def list_probes(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also list each probe's metrics and options.")] = False,
    debug: DebugOption = False,
) -> None:
    """List installed probes (built-in and plugins): source, what each budget level means."""
    with guard(debug), reader_may_leave():
        from auditkit.options import describe_options, format_option
        from auditkit.registry import discover_generators, discover_probes

        say = _wrapped()
        for name, entry in discover_probes().items():
            state = "ok" if entry.loaded else f"ERROR {entry.error}"
            title = getattr(entry.obj, "description", "") if entry.loaded else ""
            say(f"{name:14} {entry.distribution} {entry.version:8} {state:4} {title}", 15)
            if not entry.loaded:
                continue
            for level, meaning in getattr(entry.obj, "budget_levels", {}).items():
                say(f"    {level:9} {meaning}", 14)
            if verbose:
                for metric, spec in getattr(entry.obj, "metrics", {}).items():
                    better = f"{spec.direction} is better" if spec.direction else "no better side"
                    say(f"    metric    {name}.{metric} ({better}): {spec.description}", 14)
                for row in describe_options(entry.obj):
                    say(format_option(name, row), 14)
        generators = discover_generators()
        if generators:
            typer.echo("\ngenerators (auditkit generate NAME):")
            for name, entry in generators.items():
                state = "ok" if entry.loaded else f"ERROR {entry.error}"
                say(f"{name:14} {entry.distribution} {entry.version:8} {state}", 15)


def _wrapped():
    """``say(line, indent)``: on a terminal (or with ``COLUMNS`` set), the line wrapped at words
    to its width, continuation lines indented under the text they continue (only a word longer
    than a line is split). Piped, one line per item, as scripts and grep expect."""
    import os
    import shutil
    import sys
    import textwrap

    if not (sys.stdout.isatty() or os.environ.get("COLUMNS")):
        return lambda line, indent: typer.echo(line)
    width = max(shutil.get_terminal_size().columns, 40)

    def say(line: str, indent: int) -> None:
        typer.echo(textwrap.fill(line, width, subsequent_indent=" " * indent,
                                 break_on_hyphens=False))

    return say


HELP_FLAGS = ("--help", "-h")


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,  # ``generate NAME --help`` is the generator's own help
    short_help="Run a plugin generator: a graph model, an architecture search (NAME --help).",
)
def generate(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(metavar="NAME", help="Generator provided by a plugin.")] = None,
    debug: DebugOption = False,
) -> None:
    """Run a plugin generator (e.g. a graph data set or an architecture search); NAME --help
    shows its options."""
    if name is None or name in HELP_FLAGS:
        _generate_help(ctx)
        raise typer.Exit(0 if name is not None or HELP_FLAGS[0] in ctx.args else 2)
    with guard(debug):
        from auditkit.registry import discover_generators

        generators = discover_generators()
        entry = generators.get(name)
        if entry is None:
            available = ", ".join(generators) or (
                "none installed; plugins live under plugins/ in the auditkit repository (see "
                "plugins/README.md), installed with pip install -e plugins/<name>"
            )
            fail(f"generate {name}: unknown generator (available: {available})")
        if not entry.loaded:
            fail(f"generate {name}: plugin failed to load ({entry.error})")
        code = entry.obj(list(ctx.args))
    raise typer.Exit(int(code or 0))


def _generate_help(ctx: typer.Context) -> None:
    """Usage, then each installed generator with one line (read without importing it)."""
    import shutil
    import textwrap

    from auditkit.cli.generators import listing

    width = min(shutil.get_terminal_size().columns, 100)
    typer.echo(f"Usage: {ctx.command_path} NAME [GENERATOR OPTIONS]\n")
    typer.echo(textwrap.fill(ctx.command.help or "", width, initial_indent="  ",
                             subsequent_indent="  "))
    generators = listing()
    typer.echo("\nGenerators (auditkit generate NAME --help for each one's options):")
    if not generators:
        typer.echo("  none installed; see plugins/README.md")
    pad = max([len(n) for n in generators] or [0]) + 4
    for gen, line in generators.items():
        typer.echo(textwrap.fill(line or "(no description)", width, initial_indent=f"  {gen:<{pad - 2}}",
                                 subsequent_indent=" " * pad))
