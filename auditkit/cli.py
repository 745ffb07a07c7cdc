"""The ``auditkit`` command line. Thin: parse, call the library, write files, exit code.

Exit codes (DESIGN.md): 0 passed · 1 a gate failed · 2 bad input, one line naming the fix ·
3 a probe errored (the others ran and the report was still written), and also any internal
error of auditkit itself: never 1, which CI reads as "the model failed a gate".
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import traceback
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
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
_STATE = {"debug": False}

DebugOption = Annotated[
    bool, typer.Option("--debug", help="Show the traceback on errors (also accepted before the command).")
]


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    typer.echo(f"auditkit: error: {message}", err=True)
    raise typer.Exit(code)


def _internal_line(exc: BaseException, debug: bool) -> str:
    hint = "" if debug else " (rerun with --debug for the traceback)"
    return f"auditkit: internal error: {type(exc).__name__}: {one_line(exc, 300)}{hint}"


@contextmanager
def _guard(debug: bool = False, interrupted: str = "") -> Iterator[None]:
    """Bad input → one line, exit 2. Anything unexpected → one line, exit 3, never a bare
    traceback with exit 1 (which CI would read as a failed gate). ``--debug`` adds the traceback
    and keeps the exit code, so a debug run in CI still means the same thing."""
    _STATE["debug"] = _STATE["debug"] or debug
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
        _fail(one_line(exc, 4000))
    except Exception as exc:
        _traceback_if_debug(exc)
        typer.echo(_internal_line(exc, _STATE["debug"]), err=True)
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
    if _STATE["debug"]:
        typer.echo("".join(traceback.format_exception(exc)).rstrip(), err=True)


@contextmanager
def _reader_may_leave() -> Iterator[None]:
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
    _STATE["debug"] = debug


# --- flag parsing: each bad value is one line naming the fix -------------------------------


def _floats(text: str | None, flag: str, example: str = "0.5,0.5,0.5") -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        _fail(f"{flag} {text!r}: expected comma-separated numbers, e.g. {example}")
    if not all(math.isfinite(v) for v in values):
        _fail(f"{flag} {text!r}: every value must be a finite number, e.g. {example}")
    return values


def _shape(text: str | None) -> tuple[int, ...] | None:
    """Whole positive sizes only: ``1.5,8,8`` is a mistake, not a shape to truncate."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isdigit() and int(p) > 0 for p in parts):
        _fail(f"--input-shape {text!r}: expected positive whole numbers, e.g. 3,32,32 (C,H,W)")
    return tuple(int(p) for p in parts)


def _box(text: str | None) -> tuple[float, float] | None:
    box = _floats(text, "--input-range", "0,1")
    if box is None:
        return None
    if len(box) != 2 or box[0] >= box[1]:
        _fail(f"--input-range {text!r}: expected two numbers low,high with low < high, e.g. 0,1")
    return box[0], box[1]


def _names(text: str | None, flag: str, example: str) -> list[str] | None:
    """A comma-separated list; an empty one (``--probes ,``) is a mistake, not "everything"."""
    if text is None:
        return None
    names = [p.strip() for p in text.split(",") if p.strip()]
    if not names:
        _fail(f"{flag} {text!r}: no names given; list some, e.g. {flag} {example}")
    return names


def _parse_sets(items: list[str]) -> dict[str, dict[str, Any]]:
    """``--set probe.key=value`` as ``{probe: {key: "value"}}``; the values stay the strings
    the user typed, and the probe's option schema parses them (``auditkit.options``)."""
    options: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        probe, dot, name = key.partition(".")
        if not sep or not dot or not name or not probe:
            _fail(f"--set {item!r}: expected probe.option=value, e.g. adversarial.eps=0.1")
        options.setdefault(probe.strip(), {})[name.strip()] = raw
    return options


def _prepare_out(out: Path) -> None:
    """Make sure the outputs can be written before spending minutes on an audit.

    Nothing is created here: a scan that stops on bad input leaves no empty folder behind.
    """
    if out.exists() and not out.is_dir():
        _fail(f"--out {out}: is a file, not a folder; pass a folder (it is created if missing)")
    nearest = out.absolute()
    while not nearest.exists():  # the folder that would hold the new one
        nearest = nearest.parent
    if not nearest.is_dir():
        _fail(f"--out {out}: cannot create it, {nearest} is a file; pass another folder")
    try:
        with tempfile.TemporaryFile(dir=nearest):
            pass
    except OSError as exc:
        _fail(f"--out {out}: cannot write in {nearest} ({exc.strerror or exc}); pass a writable folder")


LOCK_NAME = ".auditkit-checkpoint/lock"  # beside the checkpoints it protects
OUT_LOCKED = (
    "--out {out}: another auditkit run (PID {pid}) is writing there; wait for it to finish or "
    "pass another --out"
)


@contextmanager
def _out_lock(out: Path) -> Iterator[None]:
    """One run at a time per output folder: a second scan into the same --out exits 2 naming
    the first one's PID (it would overwrite the reports and share checkpoint names).

    The lock is ``flock`` on ``--out/.auditkit-checkpoint/lock``: the kernel drops it when the holder dies,
    even by SIGKILL, so ``--resume`` after a kill is never blocked. A folder this run created
    and left holding only the lock file is removed again.
    """
    try:
        import fcntl
    except ImportError:  # no flock (Windows): runs are not serialized
        yield
        return
    created = not out.exists()
    lock = out / LOCK_NAME
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock, "a+", encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        _fail(f"--out {out}: cannot create it ({exc.strerror or exc}); pass a writable folder")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        _fail(OUT_LOCKED.format(out=out, pid=holder))
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    try:
        yield
    finally:
        if created and [p.name for p in out.iterdir()] == [lock.parent.name] and [
            p.name for p in lock.parent.iterdir()
        ] == [lock.name]:
            lock.unlink(missing_ok=True)
            with suppress(OSError):
                lock.parent.rmdir()
                out.rmdir()
        handle.close()


def _load_limits(load_timeout: float, load_memory: float, allow_native_code: bool):
    from auditkit.loading.safety import GiB, LoadLimits

    if not (math.isfinite(load_memory) and load_memory > 0):
        _fail(f"--load-memory {load_memory:g}: use a positive number of GB, e.g. 8")
    if not (math.isfinite(load_timeout) and load_timeout > 0):
        _fail(f"--load-timeout {load_timeout:g}: use a positive number of seconds, e.g. 60")
    return LoadLimits(timeout_s=load_timeout, memory_bytes=int(load_memory * GiB),
                      allow_native_code=allow_native_code)


def _save(result, out: Path) -> dict[str, Path]:
    try:
        from auditkit.outputs import write_outputs

        return write_outputs(result, out)
    except OSError as exc:
        _fail(f"--out {out}: could not write the outputs ({exc.strerror or exc})")


def _write_text(path: Path, content: str, flag: str) -> None:
    try:
        path.write_text(content, encoding="utf-8")
    except IsADirectoryError:
        _fail(f"{flag} {path}: is a directory; pass a file name, e.g. {path / 'report.html'}")
    except FileNotFoundError:
        _fail(f"{flag} {path}: folder {path.parent} does not exist; create it or pick another path")
    except OSError as exc:
        _fail(f"{flag} {path}: cannot write it ({exc.strerror or exc})")


def _load_audit(path: Path):
    """Read an audit.json or exit 2 with one line saying what is wrong."""
    from auditkit.bounds.auditfile import read_audit

    try:
        return read_audit(path)  # bounded JSON, and an audit or refused (#24)
    except FileNotFoundError:
        _fail(f"{path}: no such file")
    except IsADirectoryError:
        _fail(f"{path}: is a directory; pass the audit.json inside it")
    except OSError as exc:
        _fail(f"{path}: cannot read it ({exc.strerror or exc})")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        _fail(f"{path}: not an auditkit audit.json ({type(exc).__name__}: {one_line(exc, 200)})")


# --- console output --------------------------------------------------------------------------


def verdict_line(result, policy) -> str:
    """The last word of a scan: the verdict as people read it and what it rests on."""
    from auditkit.verdict import verdict_basis

    basis = verdict_basis(
        result.fail_on, policy.source if policy is not None else None, result.gates,
        result.probes,
    )
    return f"auditkit verdict: {result.verdict_text} ({basis})"


def _print_result(result, policy) -> None:
    from rich.console import Console
    from rich.table import Table

    from auditkit.verdict import grade_reason

    console = Console(stderr=False, highlight=False, soft_wrap=True)
    table = Table(title="probes", show_lines=False)
    for col in ("probe", "status", "headline", "why"):
        table.add_column(col, overflow="fold")
    for name, probe in result.probes.items():
        headline = ""
        if probe.headline and probe.metrics.get(probe.headline) is not None:
            headline = f"{probe.headline} = {probe.metrics[probe.headline]:.4g}"
        # The same one-line reason as the report's tile: what set the grade.
        finding = grade_reason(probe)
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
    # Plain echo, not rich: these lines are what CI logs get grepped for; they must not wrap.
    # The same reasons, in the same order, as summary.md, junit.xml, the report and audit.json.
    for reason in result.verdict_reasons:
        typer.echo(reason.line)
    typer.echo(verdict_line(result, policy))


# --- commands --------------------------------------------------------------------------------


# Help text is plain (rich_markup_mode=None): rich markup would eat "[tool.auditkit]". Metavars
# say what users type: INTEGER, PATH, TEXT, or the accepted words.
BUDGET_HELP = (
    "How much work each probe does: fast (fewer attack steps, restarts, bootstrap rounds and "
    "epochs), standard, thorough (the most of each); auditkit probes lists what each level "
    "means per probe."
)
FAIL_ON_HELP = (
    "Which probe grades fail the audit (exit 1): failed (default: a failed probe fails it; a "
    "warned one passes with warnings), warned (warnings fail it too), never (only policy gates "
    "fail it). Overrides fail_on in the policy file."
)
QUIET_HELP = "No progress display or progress lines on stderr (the results table still prints)."


@app.command()
def scan(
    model: Annotated[Path, typer.Argument(metavar="MODEL", help="Model file (format sniffed from content).")],
    data: Annotated[str | None, typer.Option(metavar="SPEC", help="Built-in name (digits, ...), .npz/.pt file, image folder or CSV/parquet table. Default: the data set named in the model file.")] = None,
    probes: Annotated[str | None, typer.Option(metavar="NAME,NAME", help="Comma-separated probes to run (default: every installed probe; see auditkit probes).")] = None,
    budget: Annotated[str, typer.Option(metavar="fast|standard|thorough", help=BUDGET_HELP)] = "standard",
    out: Annotated[Path, typer.Option(metavar="PATH", help="Output folder for audit.json, report.html, junit.xml and summary.md.")] = Path("auditkit-out"),
    policy: Annotated[Path | None, typer.Option(metavar="PATH", help="Policy TOML with [gates], [checks] and fail_on. Default: ./auditkit.toml, else the [tool.auditkit] table of ./pyproject.toml; none: the probes' own grades decide.")] = None,
    fail_on: Annotated[str | None, typer.Option("--fail-on", metavar="failed|warned|never", help=FAIL_ON_HELP)] = None,
    seed: Annotated[int, typer.Option(min=0, metavar="INTEGER", help="Seed for splits, attacks and retraining; same seed, same metrics.")] = 0,
    device: Annotated[str, typer.Option(metavar="auto|cpu|cuda", help="Where the model runs (auto: cuda when available).")] = "auto",
    arch: Annotated[str | None, typer.Option(metavar="SPEC", help="Network for weight-only files: torchvision:NAME or package.module:factory.")] = None,
    unsafe_pickle: Annotated[bool, typer.Option("--unsafe-pickle", help="Allow a pickled nn.Module (runs code from the file; only for files you trust).")] = False,
    load_timeout: Annotated[float, typer.Option(metavar="SECONDS", help="Seconds loading a model file may take (TorchScript and raw pickles load in a limited child process first).")] = 60.0,
    load_memory: Annotated[float, typer.Option(metavar="GB", help="GB loading a model file may use, and the most an archive may unpack to.")] = 8.0,
    allow_native_code: Annotated[bool, typer.Option("--allow-native-code", help="Accept archives carrying shared objects / AOTInductor packages (auditkit still never loads them).")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Reuse probe results an earlier (or interrupted) scan finished in --out.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help=QUIET_HELP)] = False,
    target: Annotated[str | None, typer.Option(metavar="COLUMN", help="Label column of a table.")] = None,
    sensitive: Annotated[str | None, typer.Option(metavar="COLUMN,COLUMN", help="Comma-separated sensitive-feature columns of a table (the bias probe's groups).")] = None,
    keep_sensitive_features: Annotated[bool, typer.Option("--keep-sensitive-features", help="The model was trained with the sensitive columns as inputs; keep them as features too.")] = False,
    groups_file: Annotated[Path | None, typer.Option(metavar="PATH", help="Sidecar CSV of group columns for an image folder (column 'path').")] = None,
    train_data: Annotated[str | None, typer.Option(metavar="SPEC", help="The model's training data (same forms as --data); gives memorization.generalization_gap.")] = None,
    input_shape: Annotated[str | None, typer.Option(metavar="C,H,W", help="Shape of one example, e.g. 3,32,32 (default: from the model file).")] = None,
    input_range: Annotated[str | None, typer.Option(metavar="LOW,HIGH", help="Input box, e.g. 0,1 (images) or 0,255 (default: from the model file, else 0,1).")] = None,
    mean: Annotated[str | None, typer.Option(metavar="FLOAT,...", help="Per-channel mean applied inside the adapter, e.g. 0.485,0.456,0.406.")] = None,
    std: Annotated[str | None, typer.Option(metavar="FLOAT,...", help="Per-channel std applied inside the adapter, e.g. 0.229,0.224,0.225.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", metavar="PROBE.OPTION=VALUE", help="Probe option, e.g. adversarial.eps=0.1 (repeatable; auditkit probes --verbose lists them).")] = None,
    max_minutes: Annotated[float | None, typer.Option(min=0.1, metavar="MINUTES", help="Limit on probe time instead of the budget's (fast about 1 min, standard about 10): each probe's work is sized to the model's measured cost.")] = None,
    cost_from: Annotated[Path | None, typer.Option(metavar="PATH", help="Size the work with the cost recorded in an earlier audit.json instead of measuring (same cost, same plan: for diffs).")] = None,
    mlflow: Annotated[str | None, typer.Option("--mlflow", metavar="[TRACKING_URI]", help="Also log the audit to MLflow (metrics auditkit.PROBE.METRIC, verdict tags, the four files): a new run in an experiment named after the model. TRACKING_URI: sqlite:///mlflow.db, a folder or a server; alone: MLflow's default store. Needs auditkit-mlflow.")] = None,
    mlflow_run: Annotated[str | None, typer.Option("--mlflow-run", metavar="RUN_ID", help="Log into this existing MLflow run instead of a new one (implies --mlflow).")] = None,
    debug: DebugOption = False,
) -> None:
    """Audit MODEL and write audit.json, report.html, junit.xml and summary.md to --out.

    Under torchrun --nproc_per_node=K -m auditkit scan ... the work is split across K
    processes; rank 0 writes the outputs."""
    with _guard(debug, " (finished probes are kept in --out; add --resume to reuse them)"), \
            ExitStack() as held:
        from auditkit.api import scan as run_scan
        from auditkit.api import validate_request
        from auditkit.gates import find_policy_file
        from auditkit.loading import ModelMetadata
        from auditkit.progress import Progress
        from auditkit.verdict import check_fail_on

        # Every check that needs neither the model nor the data comes first.
        metadata = ModelMetadata(
            input_shape=_shape(input_shape),
            input_range=_box(input_range),
            mean=_floats(mean, "--mean"),
            std=_floats(std, "--std"),
        )
        if metadata.std is not None and any(v <= 0 for v in metadata.std):
            _fail(f"--std {std!r}: every std must be a positive number, e.g. 0.25")
        probe_names = _names(probes, "--probes", "performance,adversarial")
        options = _parse_sets(set_ or [])
        limits = _load_limits(load_timeout, load_memory, allow_native_code)
        policy_path = policy or find_policy_file(Path.cwd())
        loaded_policy = validate_request(
            probes=probe_names, budget=budget, seed=seed, device=device, options=options,
            policy=policy_path,
        )
        if fail_on is not None:
            check_fail_on(fail_on)
        recorded_cost = _recorded_cost(cost_from) if cost_from is not None else None
        tracker = _tracker_for(mlflow, mlflow_run)
        from auditkit import distributed

        _, device = distributed.setup(device)
        main_rank = distributed.is_main()
        if main_rank:
            _prepare_out(out)
            held.enter_context(_out_lock(out))
        result = run_scan(
            model,
            data,
            probes=probe_names,
            budget=budget,
            seed=seed,
            device=device,
            policy=loaded_policy,
            options=options,
            metadata=metadata,
            arch=arch,
            unsafe_pickle=unsafe_pickle,
            load_limits=limits,
            target=target,
            sensitive=_names(sensitive, "--sensitive", "sex,age"),
            keep_sensitive_features=keep_sensitive_features,
            groups_file=groups_file,
            train_data=train_data,
            # Checkpoints are always written, so an interrupted scan can be resumed; --resume
            # only decides whether they are read.
            checkpoint_dir=out if main_rank else None,
            resume=resume,
            progress=Progress(quiet=quiet) if main_rank else Progress(False),
            debug=_STATE["debug"],
            fail_on=fail_on,
            max_minutes=max_minutes,
            cost=recorded_cost,
        )
        if main_rank:
            code = _finish(result, out, loaded_policy)
            if tracker is not None:  # after the files: a tracker failure loses no audit
                run_id = tracker.log_audit(out, _tracking_uri(mlflow), run_id=mlflow_run)
                typer.echo(f"mlflow: logged to run {run_id}")
        else:
            from auditkit.gates import exit_code

            code = exit_code(result)
        distributed.teardown()
    raise typer.Exit(code)


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


def _recorded_cost(path: Path) -> dict[str, Any]:
    """The model cost an earlier scan recorded (``settings.sizing.cost`` of its audit.json)."""
    import json

    from auditkit.sizing import Cost

    try:
        cost = json.loads(path.read_text(encoding="utf-8"))["settings"]["sizing"]["cost"]
        Cost.from_dict(cost)
    except OSError as exc:
        _fail(f"--cost-from {path}: cannot read it ({exc.strerror or exc})")
    except (ValueError, KeyError, TypeError):
        _fail(f"--cost-from {path}: no recorded cost (settings.sizing.cost) in this file; "
              "pass an audit.json written by auditkit scan")
    return dict(cost)


def _finish(result: Any, out: Path, policy: Any) -> int:
    """Save the outputs, print the verdict table and where the report is; the exit code."""
    from auditkit.gates import exit_code

    paths = _save(result, out)
    code = exit_code(result)
    with _reader_may_leave():
        _print_result(result, policy)
        typer.echo(f"report: {paths['report.html'].resolve()}")
    return code


@app.command()
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
    with _guard(debug), ExitStack() as held:
        from auditkit.api import scan as run_scan
        from auditkit.api import validate_request
        from auditkit.demo import build_demo_model
        from auditkit.progress import Progress
        from auditkit.verdict import check_fail_on

        validate_request(budget=budget, seed=seed, device=device)
        if fail_on is not None:
            check_fail_on(fail_on)
        _prepare_out(out)
        held.enter_context(_out_lock(out))  # the trained model is saved there first
        model_path = out / "digits-cnn.pt2"
        typer.echo(f"training a small CNN on scikit-learn's bundled digits → {model_path}")
        build_demo_model(model_path, seed=seed, progress=Progress(quiet=quiet))
        result = run_scan(  # checkpoints in --out: `scan ... --out OUT --resume` reuses them
            model_path, None, budget=budget, seed=seed, device=device,
            progress=Progress(quiet=quiet), debug=_STATE["debug"], fail_on=fail_on,
            checkpoint_dir=out, resume=resume,
        )
        code = _finish(result, out, None)
    raise typer.Exit(code)


@app.command()
def report(
    audit_json: Annotated[Path, typer.Argument(metavar="AUDIT_JSON", help="An audit.json written by auditkit scan.")],
    output: Annotated[Path, typer.Option("-o", "--output", metavar="PATH", help="HTML file to write.")] = Path("report.html"),
    debug: DebugOption = False,
) -> None:
    """Re-render the HTML report from audit.json alone (no model needed)."""
    with _guard(debug):
        from auditkit.render import render_html

        result = _load_audit(audit_json)
        _write_text(output, render_html(result), "-o")
        typer.echo(f"report: {output.resolve()}")


@app.command()
def diff(
    base: Annotated[Path, typer.Argument(metavar="BASE_JSON", help="Baseline audit.json, or an MLflow run (runs:/RUN_ID) that logged one.")],
    new: Annotated[Path, typer.Argument(metavar="NEW_JSON", help="New audit.json, or an MLflow run (runs:/RUN_ID).")],
    tolerance: Annotated[float, typer.Option(metavar="FLOAT", help="Allowed absolute change toward worse.")] = 0.01,
    tolerance_for: Annotated[list[str] | None, typer.Option("--tolerance-for", metavar="PROBE.METRIC=FLOAT", help="Per-metric tolerance, e.g. adversarial.robust_accuracy=0.03 (repeatable).")] = None,
    markdown: Annotated[Path | None, typer.Option(metavar="PATH", help="Also write the comparison as Markdown.")] = None,
    all_metrics: Annotated[bool, typer.Option("--all", help="List unchanged metrics too.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Compare audits of different data or different kinds of model (otherwise exit 2).")] = False,
    debug: DebugOption = False,
) -> None:
    """Compare two audits: first whether they are comparable (data, model, seed, budget,
    version, probes), then what regressed; exit 1 when a metric, a probe or a check regressed,
    2 when they are not comparable (different data or model interface) and --force is not given."""
    with _guard(debug):
        from auditkit.diff import compare, render_diff_markdown

        per_metric: dict[str, float] = {}
        for item in tolerance_for or []:
            key, sep, value = item.partition("=")
            try:
                per_metric[key.strip()] = float(value)
            except ValueError:
                sep = ""
            if not sep or not key.strip():
                _fail(f"--tolerance-for {item!r}: expected probe.metric=number, e.g. calibration.ece=0.02")
        with tempfile.TemporaryDirectory(prefix="auditkit-diff-") as scratch:
            audits = [_load_audit(_audit_file(ref, Path(scratch) / str(i)))
                      for i, ref in enumerate((base, new))]
        changes = compare(
            *audits, tolerance=tolerance, tolerances=per_metric,
            labels=(str(base), str(new)), force=force,
        )
        text = render_diff_markdown(changes, only_changed=not all_metrics)
        if markdown:
            _write_text(markdown, text, "--markdown")
        with _reader_may_leave():
            typer.echo(text)
    raise typer.Exit(1 if changes.regressed else 0)


def _audit_file(ref: Path, scratch: Path) -> Path:
    """An audit.json path; a run reference (``runs:/ID``) is fetched by the tracker's plugin."""
    from auditkit import tracking

    if tracking.uri_tracker(ref) is None:
        return ref
    scratch.mkdir(parents=True, exist_ok=True)
    return tracking.fetch_audit(ref, scratch)


@app.command("probes")
def list_probes(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also list each probe's metrics and options.")] = False,
    debug: DebugOption = False,
) -> None:
    """List installed probes (built-in and plugins): source, what each budget level means."""
    with _guard(debug), _reader_may_leave():
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
    with _guard(debug):
        from auditkit.registry import discover_generators

        generators = discover_generators()
        entry = generators.get(name)
        if entry is None:
            available = ", ".join(generators) or (
                "none installed; plugins live under plugins/ in the auditkit repository (see "
                "plugins/README.md), installed with pip install -e plugins/<name>"
            )
            _fail(f"generate {name}: unknown generator (available: {available})")
        if not entry.loaded:
            _fail(f"generate {name}: plugin failed to load ({entry.error})")
        code = entry.obj(list(ctx.args))
    raise typer.Exit(int(code or 0))


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
        typer.echo(_internal_line(exc, debug), err=True)
        sys.exit(EXIT_INTERNAL)
