"""The ``auditkit`` command line. Thin: parse, call the library, write files, exit code."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from auditkit._version import __version__
from auditkit.errors import AuditkitInputError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Audit trained PyTorch models for robustness, calibration, subgroup bias and memorization.",
    pretty_exceptions_enable=False,
)

_STATE = {"debug": False}


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"auditkit: error: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def _input_errors() -> Iterator[None]:
    """Bad input becomes one line and exit 2; --debug keeps the traceback."""
    try:
        yield
    except AuditkitInputError as exc:
        if _STATE["debug"]:
            raise
        _fail(str(exc))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"auditkit {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    _STATE["debug"] = debug


def _floats(text: str | None, flag: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        _fail(f"{flag} {text!r}: expected comma-separated numbers, e.g. 0.5,0.5,0.5")
    return None


def _parse_sets(items: list[str]) -> dict[str, dict[str, Any]]:
    import json

    options: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        probe, dot, name = key.partition(".")
        if not sep or not dot or not name:
            _fail(f"--set {item!r}: expected probe.option=value, e.g. adversarial.eps=0.1")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        options.setdefault(probe, {})[name] = value
    return options


def _load_audit(path: Path):
    """Read an audit.json or exit 2 with one line saying what is wrong."""
    from auditkit.results import AuditResult

    try:
        return AuditResult.load(path)
    except FileNotFoundError:
        _fail(f"{path}: no such file")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        _fail(f"{path}: not an auditkit audit.json ({type(exc).__name__}: {exc})")


def _print_gates(result) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=False, highlight=False, soft_wrap=True)
    table = Table(title=f"auditkit verdict: {result.verdict}", show_lines=False)
    for col in ("probe", "status", "headline", "finding"):
        table.add_column(col, overflow="fold")
    for name, probe in result.probes.items():
        headline = ""
        if probe.headline and probe.metrics.get(probe.headline) is not None:
            headline = f"{probe.headline} = {probe.metrics[probe.headline]:.4g}"
        finding = probe.summary or probe.error or probe.skip_reason or ""
        if len(finding) > 140:
            finding = finding[:139].rsplit(" ", 1)[0] + " …"
        table.add_row(name, probe.status, headline, finding)
    console.print(table)
    if result.gates:
        gates = Table(title="gates")
        for col in ("gate", "rule", "value", "result"):
            gates.add_column(col)
        for g in result.gates:
            outcome = "pass" if g.passed else ("FAIL" if g.severity == "fail" else "warn")
            value = f"{g.value:.4g}" if isinstance(g.value, float) else str(g.value)
            gates.add_row(g.metric, g.rule, value, outcome)
        console.print(gates)
        for g in result.failures:
            console.print(f"gate failed: {g.detail}")


def _run_scan(out: Path, **kwargs: Any) -> int:
    from auditkit.api import scan
    from auditkit.gates import exit_code
    from auditkit.progress import Progress

    result = scan(progress=Progress(), debug=_STATE["debug"], **kwargs)
    paths = result.save(out)
    _print_gates(result)
    typer.echo(f"report: {paths['report.html'].resolve()}")
    return exit_code(result)


@app.command()
def scan(
    model: Annotated[Path, typer.Argument(help="Model file (format sniffed from content).")],
    data: Annotated[str | None, typer.Option(help="Built-in name, .npz/.pt, image folder, CSV/parquet. Default: the data set named in the model file.")] = None,
    probes: Annotated[str | None, typer.Option(help="Comma-separated probes (default: all).")] = None,
    budget: Annotated[str, typer.Option(help="fast | standard | thorough")] = "standard",
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("auditkit-out"),
    policy: Annotated[Path | None, typer.Option(help="Policy TOML (default: ./auditkit.toml or [tool.auditkit] in ./pyproject.toml).")] = None,
    seed: Annotated[int, typer.Option(help="Seed; same seed, same metrics.")] = 0,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    arch: Annotated[str | None, typer.Option(help="Network for weight-only files: torchvision:NAME or module:factory.")] = None,
    unsafe_pickle: Annotated[bool, typer.Option("--unsafe-pickle", help="Allow a pickled nn.Module (runs code from the file).")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Reuse probe results already finished in --out.")] = False,
    target: Annotated[str | None, typer.Option(help="Label column of a table.")] = None,
    sensitive: Annotated[str | None, typer.Option(help="Comma-separated sensitive-feature columns.")] = None,
    groups_file: Annotated[Path | None, typer.Option(help="Sidecar CSV of group columns for an image folder (column 'path').")] = None,
    train_data: Annotated[str | None, typer.Option(help="The model's training data (same forms as --data); gives memorization.generalization_gap.")] = None,
    input_shape: Annotated[str | None, typer.Option(help="Shape of one example, e.g. 3,32,32.")] = None,
    input_range: Annotated[str | None, typer.Option(help="Input box, e.g. 0,1 (images) or 0,255.")] = None,
    mean: Annotated[str | None, typer.Option(help="Per-channel mean applied inside the adapter.")] = None,
    std: Annotated[str | None, typer.Option(help="Per-channel std applied inside the adapter.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Probe option, e.g. adversarial.eps=0.1 (repeatable).")] = None,
) -> None:
    """Audit MODEL and write audit.json, report.html, junit.xml and summary.md to --out."""
    from auditkit.gates import find_policy_file, load_policy
    from auditkit.loading import ModelMetadata

    with _input_errors():
        shape = _floats(input_shape, "--input-shape")
        box = _floats(input_range, "--input-range")
        if box is not None and len(box) != 2:
            _fail(f"--input-range {input_range!r}: expected two numbers, low,high")
        metadata = ModelMetadata(
            input_shape=tuple(int(s) for s in shape) if shape else None,
            input_range=box,
            mean=_floats(mean, "--mean"),
            std=_floats(std, "--std"),
        )
        policy_path = policy or find_policy_file(Path.cwd())
        loaded_policy = load_policy(policy_path) if policy_path else None  # validate before work
        code = _run_scan(
            out,
            model=model,
            data=data,
            probes=[p.strip() for p in probes.split(",") if p.strip()] if probes else None,
            budget=budget,
            seed=seed,
            device=device,
            policy=loaded_policy,
            options=_parse_sets(set_ or []),
            metadata=metadata,
            arch=arch,
            unsafe_pickle=unsafe_pickle,
            target=target,
            sensitive=[s.strip() for s in sensitive.split(",")] if sensitive else None,
            groups_file=groups_file,
            train_data=train_data,
            checkpoint_dir=out if resume else None,
        )
    raise typer.Exit(code)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("auditkit-out"),
    budget: Annotated[str, typer.Option(help="fast | standard | thorough")] = "fast",
    seed: Annotated[int, typer.Option(help="Seed for training and the audit.")] = 0,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
) -> None:
    """Train a small CNN on the bundled digits, save it, and scan it with every probe."""
    from auditkit.demo import build_demo_model

    out.mkdir(parents=True, exist_ok=True)
    model_path = out / "digits-cnn.pt2"
    typer.echo(f"training a small CNN on scikit-learn's bundled digits → {model_path}")
    build_demo_model(model_path, seed=seed)
    with _input_errors():
        code = _run_scan(out, model=model_path, data=None, budget=budget, seed=seed, device=device)
    raise typer.Exit(code)


@app.command()
def report(
    audit_json: Annotated[Path, typer.Argument(help="An audit.json written by auditkit scan.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="HTML file to write.")] = Path("report.html"),
) -> None:
    """Re-render the HTML report from audit.json alone (no model needed)."""
    from auditkit.render import render_html

    result = _load_audit(audit_json)
    output.write_text(render_html(result), encoding="utf-8")
    typer.echo(f"report: {output.resolve()}")


@app.command()
def diff(
    base: Annotated[Path, typer.Argument(help="Baseline audit.json.")],
    new: Annotated[Path, typer.Argument(help="New audit.json.")],
    tolerance: Annotated[float, typer.Option(help="Allowed absolute change toward worse.")] = 0.01,
    tolerance_for: Annotated[list[str] | None, typer.Option("--tolerance-for", help="Per-metric tolerance, e.g. adversarial.robust_accuracy=0.03.")] = None,
    markdown: Annotated[Path | None, typer.Option(help="Also write the comparison as Markdown.")] = None,
    all_metrics: Annotated[bool, typer.Option("--all", help="List unchanged metrics too.")] = False,
) -> None:
    """Compare two audits; exit 1 when a metric regressed beyond tolerance."""
    from auditkit.diff import diff_results, render_diff_markdown

    per_metric: dict[str, float] = {}
    for item in tolerance_for or []:
        key, sep, value = item.partition("=")
        try:
            per_metric[key] = float(value)
        except ValueError:
            _fail(f"--tolerance-for {item!r}: expected probe.metric=number")
        if not sep:
            _fail(f"--tolerance-for {item!r}: expected probe.metric=number")
    changes = diff_results(_load_audit(base), _load_audit(new), tolerance=tolerance, tolerances=per_metric)
    text = render_diff_markdown(changes, only_changed=not all_metrics)
    typer.echo(text)
    if markdown:
        markdown.write_text(text, encoding="utf-8")
    raise typer.Exit(1 if any(c.regression for c in changes) else 0)


@app.command("probes")
def list_probes() -> None:
    """List installed probes (built-in and plugins) with their source distribution."""
    from auditkit.registry import discover_generators, discover_probes

    for name, entry in discover_probes().items():
        state = "ok" if entry.loaded else f"ERROR {entry.error}"
        title = getattr(entry.obj, "description", "") if entry.loaded else ""
        typer.echo(f"{name:14} {entry.distribution} {entry.version:8} {state:4} {title}")
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
) -> None:
    """Run a plugin generator (e.g. a graph data set or an architecture search)."""
    from auditkit.registry import discover_generators

    generators = discover_generators()
    entry = generators.get(name)
    if entry is None:
        available = ", ".join(generators) or "none installed (pip install auditkit-graph / auditkit-nas)"
        _fail(f"generate {name}: unknown generator (available: {available})")
    if not entry.loaded:
        _fail(f"generate {name}: plugin failed to load ({entry.error})")
    with _input_errors():
        code = entry.obj(list(ctx.args))
    raise typer.Exit(int(code or 0))


def main() -> None:
    """Console entry point: bad input is one line and exit 2 unless --debug."""
    try:
        app()
    except AuditkitInputError as exc:  # raised outside a command's own handler
        if "--debug" in sys.argv:
            raise
        typer.echo(f"auditkit: error: {exc}", err=True)
        sys.exit(2)
