"""``auditkit scan`` and ``auditkit demo``: the options come from ``auditkit.request``.

The scan command's signature is built from :class:`~auditkit.request.ScanRequest` (one Typer
option per field with flags), so a new option is declared there once. Every check that needs
neither the model nor the data runs before torch is imported.
"""

from __future__ import annotations

import dataclasses
import inspect
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

import typer

from auditkit.cli._app import STATE, DebugOption, app, guard, reader_may_leave
from auditkit.cli.console import print_result
from auditkit.cli.files import out_lock, prepare_out, save
from auditkit.request import BUDGET_HELP, FAIL_ON_HELP, QUIET_HELP, ScanRequest

MODEL_ARGUMENT = typer.Argument(metavar="MODEL", help="Model file (format sniffed from content).")
_PLAIN = {"bool": bool, "int": int, "float": float, "str": str, "Path": Path}


def _typer_type(field: dataclasses.Field) -> Any:
    """What Typer parses for a field: its declared cli_type, else its plain type, else text."""
    declared = field.metadata["cli_type"]
    if declared is not None:
        return declared
    return _PLAIN.get(str(field.type).replace(" | None", "").strip(), str)


def _option_parameter(field: dataclasses.Field) -> inspect.Parameter:
    meta = field.metadata
    kind = _typer_type(field)
    extra = {"min": meta["min"]} if meta["min"] is not None else {}
    if kind is not bool:
        extra["metavar"] = meta["metavar"]
    info = typer.Option(*meta["flags"], help=meta["help"], **extra)
    default = meta["cli_default"]
    annotation = kind if default is not None else kind | None
    return inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[annotation, info])


def _with_request_options(run: Any) -> Any:
    """``run(model, request, debug)`` as a Typer command whose options are the request's fields."""

    def command(model: Path, debug: bool = False, **values: Any) -> None:
        run(model, values, debug)

    params = [
        inspect.Parameter("model", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                          annotation=Annotated[Path, MODEL_ARGUMENT]),
        *(_option_parameter(f) for f in ScanRequest.cli_fields()),
        inspect.Parameter("debug", inspect.Parameter.KEYWORD_ONLY, default=False,
                          annotation=DebugOption),
    ]
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = run.__doc__
    command.__name__ = run.__name__
    return command


def scan(model: Path, values: dict[str, Any], debug: bool) -> None:
    """Audit MODEL and write audit.json, report.html, junit.xml and summary.md to --out.

    Under torchrun --nproc_per_node=K -m auditkit scan ... the work is split across K
    processes; rank 0 writes the outputs."""
    with guard(debug, " (finished probes are kept in --out; add --resume to reuse them)"), \
            ExitStack() as held:
        # Every check that needs neither the model nor the data comes first, before torch.
        request = ScanRequest.from_cli(values)
        if request.policy is None:
            from auditkit.gates import find_policy_file

            request.policy = find_policy_file(Path.cwd())
        loaded_policy = request.validate()
        tracker = _tracker_for(request.mlflow, request.mlflow_run)
        from auditkit import distributed
        from auditkit.api import scan as run_scan
        from auditkit.progress import Progress

        _, request.device = distributed.setup(request.device)
        main_rank = distributed.is_main()
        out = request.out
        if main_rank:
            prepare_out(out)
            held.enter_context(out_lock(out))
        keywords = request.api_keywords() | {
            "policy": loaded_policy,
            # Checkpoints are always written, so an interrupted scan can be resumed; --resume
            # only decides whether they are read.
            "checkpoint_dir": out if main_rank else None,
            "progress": Progress(quiet=request.quiet) if main_rank else Progress(False),
            "debug": STATE["debug"],
        }
        result = run_scan(model, request.data, **keywords)
        if main_rank:
            code = finish(result, out, loaded_policy)
            if tracker is not None:  # after the files: a tracker failure loses no audit
                run_id = tracker.log_audit(out, _tracking_uri(request.mlflow), run_id=request.mlflow_run)
                typer.echo(f"mlflow: logged to run {run_id}")
        else:
            from auditkit.gates import exit_code

            code = exit_code(result)
        distributed.teardown()
    raise typer.Exit(code)


app.command("scan", short_help="Audit MODEL; write audit.json, report.html, junit.xml, summary.md.")(
    _with_request_options(scan))


def _tracking_uri(value: str | None) -> str | None:
    from auditkit.tracking import OPTIONAL_VALUES

    return None if value in (None, OPTIONAL_VALUES["--mlflow"]) else value


def _tracker_for(mlflow: str | None, run_id: str | None) -> Any:
    """The MLflow plugin when --mlflow / --mlflow-run is given (exit 2 naming the install when
    it is missing), its store and run checked before the audit; None otherwise."""
    if mlflow is None and run_id is None:
        return None
    from auditkit.tracking import tracker

    plugin = tracker("mlflow", "--mlflow-run" if mlflow is None else "--mlflow")
    plugin.check_target(_tracking_uri(mlflow), run_id)
    return plugin


def finish(result: Any, out: Path, policy: Any) -> int:
    """Save the outputs, print the verdict table and where the report is; the exit code."""
    from auditkit.gates import exit_code

    paths = save(result, out)
    code = exit_code(result)
    with reader_may_leave():
        print_result(result, policy)
        typer.echo(f"report: {paths['report.html'].resolve()}")
    return code


@app.command(short_help="Train a small CNN on the bundled digits and scan it.")
def demo(
    out: Annotated[Path, typer.Option(metavar="PATH", help="Output folder (the trained model is saved there too).")] = Path("auditkit-out"),
    budget: Annotated[str, typer.Option(metavar="fast|standard|thorough", help=BUDGET_HELP)] = "fast",
    seed: Annotated[int, typer.Option(min=0, metavar="INTEGER", help="Seed for training and the audit.")] = 0,
    device: Annotated[str, typer.Option(metavar="auto|cpu|cuda", help="Where the model runs (auto: cuda when available).")] = "auto",
    fail_on: Annotated[str | None, typer.Option("--fail-on", metavar="failed|warned|never", help=FAIL_ON_HELP)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help=QUIET_HELP)] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Reuse the probes an earlier (or interrupted) demo finished in --out.")] = False,
    debug: DebugOption = False,
) -> None:
    """Train a small CNN on the bundled digits, save it, and scan it with every probe."""
    with guard(debug), ExitStack() as held:
        request = ScanRequest(budget=budget, seed=seed, device=device, fail_on=fail_on)
        request.validate()
        from auditkit.api import scan as run_scan
        from auditkit.demo import build_demo_model
        from auditkit.progress import Progress

        prepare_out(out)
        held.enter_context(out_lock(out))  # the trained model is saved there first
        model_path = out / "digits-cnn.pt2"
        typer.echo(f"training a small CNN on scikit-learn's bundled digits → {model_path}")
        build_demo_model(model_path, seed=seed, progress=Progress(quiet=quiet))
        result = run_scan(  # checkpoints in --out: `scan ... --out OUT --resume` reuses them
            model_path, None, budget=budget, seed=seed, device=device,
            progress=Progress(quiet=quiet), debug=STATE["debug"], fail_on=fail_on,
            checkpoint_dir=out, resume=resume,
        )
        code = finish(result, out, None)
    raise typer.Exit(code)
