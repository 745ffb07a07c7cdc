"""``auditkit probes`` and ``auditkit generate``: what is installed, and the plugin generators."""

from __future__ import annotations

from typing import Annotated

import typer

from auditkit.cli._app import DebugOption, app, fail, guard, reader_may_leave


@app.command("probes")
def list_probes(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also list each probe's metrics and options.")] = False,
    debug: DebugOption = False,
) -> None:
    """List installed probes (built-in and plugins): source, what each budget level means."""
    with guard(debug), reader_may_leave():
        from auditkit.options import describe_options, format_option
        from auditkit.registry import discover_generators, discover_probes

        for name, entry in discover_probes().items():
            state = "ok" if entry.loaded else f"ERROR {entry.error}"
            title = getattr(entry.obj, "description", "") if entry.loaded else ""
            typer.echo(f"{name:14} {entry.distribution} {entry.version:8} {state:4} {title}")
            if not entry.loaded:
                continue
            for level, meaning in getattr(entry.obj, "budget_levels", {}).items():
                typer.echo(f"    {level:9} {meaning}")
            if verbose:
                for metric, spec in getattr(entry.obj, "metrics", {}).items():
                    better = f"{spec.direction} is better" if spec.direction else "no better side"
                    typer.echo(f"    metric    {name}.{metric} ({better}): {spec.description}")
                for row in describe_options(entry.obj):
                    typer.echo(format_option(name, row))
        generators = discover_generators()
        if generators:
            typer.echo("\ngenerators (auditkit generate NAME):")
            for name, entry in generators.items():
                state = "ok" if entry.loaded else f"ERROR {entry.error}"
                typer.echo(f"{name:14} {entry.distribution} {entry.version:8} {state}")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def generate(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Generator provided by a plugin.")],
    debug: DebugOption = False,
) -> None:
    """Run a plugin generator (e.g. a graph data set or an architecture search)."""
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
