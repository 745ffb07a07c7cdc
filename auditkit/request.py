"""The scan request, declared once: every option of ``auditkit scan`` and ``auditkit.scan``.

Each field of :class:`ScanRequest` carries its type, its default, its command-line flag(s), its
help and, where the flag's text is not already the value, a parser from text. ``auditkit scan``
builds its Typer options from these fields, ``auditkit.scan`` takes its keywords (names and
defaults) from them, and validation reads the same object, so adding an option is one edit here.

Fields come in three kinds:

* **both**: an ``auditkit.scan`` keyword with a flag (``budget`` / ``--budget``);
* **API only** (``flags=()``): objects no flag can spell (``progress``, ``metadata``);
* **CLI only** (``api=False``): flags the command composes into an API value (``--input-shape``
  into ``metadata``, ``--out`` into ``checkpoint_dir``; see :meth:`ScanRequest.api_keywords`).

This module must stay cheap to import: the command line reads it before it may import torch.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from auditkit.errors import AuditkitInputError

DEFAULT_SEED = 0  # auditkit.pipeline.DEFAULT_SEED; pinned by tests/test_request.py
MAX_SEED = 2**63 - 1  # torch.manual_seed overflows beyond 64 bits


# --- parsers from text: each bad value is one line naming the fix ---------------------------


def parse_floats(text: str, flag: str, example: str = "0.5,0.5,0.5") -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise AuditkitInputError(f"{flag} {text!r}: expected comma-separated numbers, e.g. {example}") from None
    if not all(math.isfinite(v) for v in values):
        raise AuditkitInputError(f"{flag} {text!r}: every value must be a finite number, e.g. {example}")
    return values


def parse_shape(text: str, flag: str) -> tuple[int, ...]:
    """Whole positive sizes only: ``1.5,8,8`` is a mistake, not a shape to truncate."""
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isdigit() and int(p) > 0 for p in parts):
        raise AuditkitInputError(f"{flag} {text!r}: expected positive whole numbers, e.g. 3,32,32 (C,H,W)")
    return tuple(int(p) for p in parts)


def parse_box(text: str, flag: str) -> tuple[float, float]:
    box = parse_floats(text, flag, "0,1")
    if len(box) != 2 or box[0] >= box[1]:
        raise AuditkitInputError(f"{flag} {text!r}: expected two numbers low,high with low < high, e.g. 0,1")
    return box[0], box[1]


def parse_std(text: str, flag: str) -> tuple[float, ...]:
    values = parse_floats(text, flag)
    if any(v <= 0 for v in values):
        raise AuditkitInputError(f"{flag} {text!r}: every std must be a positive number, e.g. 0.25")
    return values


def parse_names(text: str, flag: str, example: str) -> list[str]:
    """A comma-separated list; an empty one (``--probes ,``) is a mistake, not "everything"."""
    names = [p.strip() for p in text.split(",") if p.strip()]
    if not names:
        raise AuditkitInputError(f"{flag} {text!r}: no names given; list some, e.g. {flag} {example}")
    return names


def parse_sets(items: Sequence[str], flag: str = "--set") -> dict[str, dict[str, Any]]:
    """``--set probe.key=value`` as ``{probe: {key: "value"}}``; the values stay the strings
    the user typed, and the probe's option schema parses them (``auditkit.options``)."""
    options: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        probe, dot, name = key.partition(".")
        if not sep or not dot or not name.strip() or not probe.strip():
            raise AuditkitInputError(f"{flag} {item!r}: expected probe.option=value, e.g. adversarial.eps=0.1")
        options.setdefault(probe.strip(), {})[name.strip()] = raw
    return options


def parse_positive(value: float, flag: str, unit: str, example: str) -> float:
    if not (math.isfinite(value) and value > 0):
        raise AuditkitInputError(f"{flag} {value:g}: use a positive number of {unit}, e.g. {example}")
    return value


def parse_recorded_cost(path: Path, flag: str) -> dict[str, Any]:
    """The model cost an earlier scan recorded (``settings.sizing.cost`` of its audit.json)."""
    import json

    try:
        cost = json.loads(Path(path).read_text(encoding="utf-8"))["settings"]["sizing"]["cost"]
        if not isinstance(cost, dict):
            raise TypeError
    except OSError as exc:
        raise AuditkitInputError(f"{flag} {path}: cannot read it ({exc.strerror or exc})") from None
    except (ValueError, KeyError, TypeError):
        raise AuditkitInputError(
            f"{flag} {path}: no recorded cost (settings.sizing.cost) in this file; "
            "pass an audit.json written by auditkit scan") from None
    from auditkit.sizing import Cost  # checks the fields; imported only when the flag is given

    try:
        Cost.from_dict(cost)
    except (ValueError, KeyError, TypeError):
        raise AuditkitInputError(
            f"{flag} {path}: no recorded cost (settings.sizing.cost) in this file; "
            "pass an audit.json written by auditkit scan") from None
    return dict(cost)


# --- the declaration ---------------------------------------------------------------------------


def option(
    default: Any = None,
    *flags: str,
    help: str = "",  # noqa: A002 - the word every CLI library uses
    metavar: str | None = None,
    parse: Callable[..., Any] | None = None,
    api: bool = True,
    cli_type: Any = None,
    cli_default: Any = dataclasses.MISSING,
    min: float | None = None,  # noqa: A002
    factory: Callable[[], Any] | None = None,
) -> Any:
    """One scan option. ``flags`` empty: API only; ``api=False``: command line only.

    ``parse(text, flag)`` turns what the user typed into the value (raising
    ``AuditkitInputError`` with one line naming the fix); ``cli_type`` is what Typer reads
    before that (``str`` unless the field's own type is a plain bool/int/float/Path).
    """
    meta = {"flags": flags, "help": help, "metavar": metavar, "parse": parse, "api": api,
            "cli_type": cli_type, "cli_default": default if cli_default is dataclasses.MISSING
            else cli_default, "min": min}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


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


@dataclasses.dataclass
class ScanRequest:
    """Everything a scan is asked to do, apart from the model itself.

    The field order is the order of ``auditkit scan --help``; the API keywords keep the order
    of the documented ``auditkit.scan`` signature (:data:`API_ORDER`).
    """

    data: Any = option(None, "--data", metavar="SPEC", help="Built-in name (digits, ...), .npz/.pt file, image folder or CSV/parquet table. Default: the data set named in the model file.")
    probes: Sequence[Any] | None = option(None, "--probes", metavar="NAME,NAME", parse=lambda t, f: parse_names(t, f, "performance,adversarial"), help="Comma-separated probes to run (default: every installed probe; see auditkit probes).")
    budget: str = option("standard", "--budget", metavar="fast|standard|thorough", help=BUDGET_HELP)
    out: Path = option(Path("auditkit-out"), "--out", api=False, metavar="PATH", help="Output folder for audit.json, report.html, junit.xml and summary.md.")
    policy: Any = option(None, "--policy", metavar="PATH", cli_type=Path, help="Policy TOML with [gates], [checks] and fail_on. Default: ./auditkit.toml, else the [tool.auditkit] table of ./pyproject.toml; none: the probes' own grades decide.")
    fail_on: str | None = option(None, "--fail-on", metavar="failed|warned|never", help=FAIL_ON_HELP)
    seed: int = option(DEFAULT_SEED, "--seed", min=0, metavar="INTEGER", help="Seed for splits, attacks and retraining; same seed, same metrics.")
    device: str = option("auto", "--device", metavar="auto|cpu|cuda", help="Where the model runs (auto: cuda when available).")
    arch: Any = option(None, "--arch", metavar="SPEC", cli_type=str, help="Network for weight-only files: torchvision:NAME or package.module:factory.")
    unsafe_pickle: bool = option(False, "--unsafe-pickle", help="Allow a pickled nn.Module (runs code from the file; only for files you trust).")
    load_timeout: float = option(60.0, "--load-timeout", api=False, metavar="SECONDS", parse=lambda v, f: parse_positive(v, f, "seconds", "60"), help="Seconds loading a model file may take (TorchScript and raw pickles load in a limited child process first).")
    load_memory: float = option(8.0, "--load-memory", api=False, metavar="GB", parse=lambda v, f: parse_positive(v, f, "GB", "8"), help="GB loading a model file may use, and the most an archive may unpack to.")
    allow_native_code: bool = option(False, "--allow-native-code", api=False, help="Accept archives carrying shared objects / AOTInductor packages (auditkit still never loads them).")
    resume: bool | None = option(None, "--resume", cli_default=False, help="Reuse probe results an earlier (or interrupted) scan finished in --out.")
    quiet: bool = option(False, "--quiet", "-q", api=False, help=QUIET_HELP)
    target: str | None = option(None, "--target", metavar="COLUMN", help="Label column of a table.")
    sensitive: Sequence[str] | None = option(None, "--sensitive", metavar="COLUMN,COLUMN", parse=lambda t, f: parse_names(t, f, "sex,age"), help="Comma-separated sensitive-feature columns of a table (the bias probe's groups).")
    keep_sensitive_features: bool = option(False, "--keep-sensitive-features", help="The model was trained with the sensitive columns as inputs; keep them as features too.")
    groups_file: Any = option(None, "--groups-file", metavar="PATH", cli_type=Path, help="Sidecar CSV of group columns for an image folder (column 'path').")
    train_data: Any = option(None, "--train-data", metavar="SPEC", cli_type=str, help="The model's training data (same forms as --data); gives memorization.generalization_gap.")
    input_shape: tuple[int, ...] | None = option(None, "--input-shape", api=False, metavar="C,H,W", parse=parse_shape, help="Shape of one example, e.g. 3,32,32 (default: from the model file).")
    input_range: tuple[float, float] | None = option(None, "--input-range", api=False, metavar="LOW,HIGH", parse=parse_box, help="Input box, e.g. 0,1 (images) or 0,255 (default: from the model file, else 0,1).")
    mean: tuple[float, ...] | None = option(None, "--mean", api=False, metavar="FLOAT,...", parse=parse_floats, help="Per-channel mean applied inside the adapter, e.g. 0.485,0.456,0.406.")
    std: tuple[float, ...] | None = option(None, "--std", api=False, metavar="FLOAT,...", parse=parse_std, help="Per-channel std applied inside the adapter, e.g. 0.229,0.224,0.225.")
    options: Mapping[str, Mapping[str, Any]] | None = option(None, "--set", metavar="PROBE.OPTION=VALUE", cli_type=list[str], parse=parse_sets, help="Probe option, e.g. adversarial.eps=0.1 (repeatable; auditkit probes --verbose lists them).")
    max_minutes: float | None = option(None, "--max-minutes", min=0.1, metavar="MINUTES", help="Limit on probe time instead of the budget's (fast about 1 min, standard about 10): each probe's work is sized to the model's measured cost.")
    cost: Mapping[str, Any] | None = option(None, "--cost-from", metavar="PATH", cli_type=Path, parse=parse_recorded_cost, help="Size the work with the cost recorded in an earlier audit.json instead of measuring (same cost, same plan: for diffs).")
    mlflow: str | None = option(None, "--mlflow", api=False, metavar="[TRACKING_URI]", help="Also log the audit to MLflow (metrics auditkit.PROBE.METRIC, verdict tags, the four files): a new run in an experiment named after the model. TRACKING_URI: sqlite:///mlflow.db, a folder or a server; alone: MLflow's default store. Needs auditkit-mlflow.")
    mlflow_run: str | None = option(None, "--mlflow-run", api=False, metavar="RUN_ID", help="Log into this existing MLflow run instead of a new one (implies --mlflow).")
    # API only: objects no flag spells; the command line composes them from the flags above.
    metadata: Any = option(None, help="Overrides for the model's embedded metadata (ModelMetadata).")
    load_limits: Any = option(None, help="Limits for loading a model file (LoadLimits).")
    checkpoint_dir: str | Path | None = option(None, help="Folder for each finished probe's checkpoint.")
    progress: Any = option(False, help="A Progress, or True for the default display.")
    debug: bool = option(False, help="Tracebacks for probe errors.")
    size_to_clock: bool = option(True, help="Size each probe's work to max_minutes (False: the budget as declared).")

    # -- reading the declaration --------------------------------------------------------------

    @classmethod
    def cli_fields(cls) -> list[dataclasses.Field]:
        return [f for f in dataclasses.fields(cls) if f.metadata["flags"]]

    @classmethod
    def from_cli(cls, values: Mapping[str, Any]) -> ScanRequest:
        """The request from Typer's values (keyed by field name), each parsed from its text."""
        kwargs: dict[str, Any] = {}
        for f in cls.cli_fields():
            value = values.get(f.name, f.metadata["cli_default"])
            if f.metadata["cli_type"] == list[str] and value is None:
                value = []  # a repeatable flag given no times
            parse = f.metadata["parse"]
            if parse is not None and value is not None:
                value = parse(value, f.metadata["flags"][0])
            kwargs[f.name] = value
        return cls(**kwargs)

    def api_keywords(self) -> dict[str, Any]:
        """The ``auditkit.scan`` keywords this request stands for (CLI-only fields composed)."""
        kwargs = {f.name: getattr(self, f.name) for f in api_fields()}
        if kwargs["metadata"] is None and any(
                getattr(self, k) is not None for k in ("input_shape", "input_range", "mean", "std")):
            from auditkit.loading import ModelMetadata

            kwargs["metadata"] = ModelMetadata(input_shape=self.input_shape, input_range=self.input_range,
                                               mean=self.mean, std=self.std)
        if kwargs["load_limits"] is None:
            from auditkit.loading.safety import GiB, LoadLimits

            kwargs["load_limits"] = LoadLimits(timeout_s=self.load_timeout,
                                               memory_bytes=int(self.load_memory * GiB),
                                               allow_native_code=self.allow_native_code)
        return kwargs

    def validate(self) -> Any:
        """Everything that needs neither the model nor the data; the loaded policy (or None)."""
        if self.fail_on is not None:  # before the probes are imported (and torch with them)
            from auditkit.verdict import check_fail_on

            check_fail_on(self.fail_on)
        check_light_options(self.options, self.budget)
        if self.policy is not None:
            from auditkit.gates import check_policy_syntax

            check_policy_syntax(self.policy)
        return validate_request(probes=self.probes, budget=self.budget, seed=self.seed,
                                device=self.device, options=self.options, policy=self.policy)


# The documented order of ``auditkit.scan``'s keywords (after ``model, data``).
API_ORDER = (
    "probes", "budget", "seed", "device", "policy", "options", "metadata", "arch",
    "unsafe_pickle", "load_limits", "target", "sensitive", "groups_file", "train_data",
    "keep_sensitive_features", "checkpoint_dir", "resume", "progress", "debug", "max_minutes",
    "size_to_clock", "cost", "fail_on",
)


def api_fields() -> list[dataclasses.Field]:
    """The keyword fields of ``auditkit.scan``: documented ones in their order, then new ones."""
    api = {f.name: f for f in dataclasses.fields(ScanRequest) if f.metadata["api"] and f.name != "data"}
    return [api[n] for n in API_ORDER if n in api] + [f for n, f in api.items() if n not in API_ORDER]


def api_signature(model_annotation: Any = "Any") -> inspect.Signature:
    """``scan(model, data=None, *, <every API field with its default>)``."""
    data = next(f for f in dataclasses.fields(ScanRequest) if f.name == "data")
    params = [
        inspect.Parameter("model", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=model_annotation),
        inspect.Parameter("data", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=data.default,
                          annotation=data.type),
    ]
    params += [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default,
                                 annotation=f.type) for f in api_fields()]
    return inspect.Signature(params, return_annotation="AuditResult")


def check_keywords(keywords: Mapping[str, Any]) -> None:
    """Reject a keyword ``auditkit.scan`` does not take, as Python would for a written-out signature."""
    known = {f.name for f in api_fields()}
    for name in keywords:
        if name not in known:
            raise TypeError(f"scan() got an unexpected keyword argument {name!r}")


def spec_name(spec: Any) -> str:
    """A probe's name, whether given as a name, a Probe class or an instance."""
    if isinstance(spec, str):
        return spec
    return str(getattr(spec, "name", "") or getattr(spec, "__name__", type(spec).__name__))



#: Built-in probes whose option schema imports nothing heavy: their ``--set`` values are
#: checked before torch is imported. (The corruptions probe's schema names its catalog, which
#: needs torch; its values are checked a moment later with every other probe's.)
LIGHT_OPTIONS = {
    "adversarial": "AdversarialOptions",
    "bias": "BiasOptions",
    "calibration": "CalibrationOptions",
    "memorization": "MemorizationOptions",
    "performance": "PerformanceOptions",
}


def check_light_options(options: Mapping[str, Mapping[str, Any]] | None, budget: str) -> None:
    """Type-check ``--set`` values of built-in probes from their option schemas alone, so
    ``--set adversarial.eps=abc`` is exit 2 before torch loads (seconds on a cold start).

    The full check (every probe, plugins, the policy's options) still runs in
    :func:`validate_request`; this one only moves the common mistakes earlier.
    """
    import importlib
    import warnings
    from types import SimpleNamespace

    from auditkit.options import parse_options
    from auditkit.probes.base import check_budget

    if not options:
        return
    check_budget(budget)
    for probe, raw in options.items():
        if probe not in LIGHT_OPTIONS:
            continue
        schema = getattr(importlib.import_module(f"auditkit.probes.{probe}.options"),
                         LIGHT_OPTIONS[probe])
        with warnings.catch_warnings():  # "large value" warnings come once, from the full check
            warnings.simplefilter("ignore")
            parse_options(SimpleNamespace(name=probe, Options=schema), raw, budget)


def validate_request(
    *,
    probes: Sequence[Any] | None = None,
    budget: str = "standard",
    seed: int = DEFAULT_SEED,
    device: str | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    policy: Any = None,
) -> Any:
    """Check everything about an audit that needs neither the model nor the data.

    Budget, probe names, per-probe options (``--set``, the policy's ``[checks.<probe>]``
    tables) and the policy are validated against the probes that will actually run, so a typo
    is exit 2 in a second instead of an error after a long audit. Returns the loaded policy
    (``None`` without one).
    """
    from auditkit.adapters import resolve_device
    from auditkit.gates import check_selection, load_policy, merged_options
    from auditkit.pipeline import select_probes

    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise AuditkitInputError(f"--seed {seed!r}: use a whole number >= 0")
    if seed > MAX_SEED:  # torch.manual_seed overflows beyond 64 bits
        raise AuditkitInputError(f"--seed {seed}: use a whole number from 0 to {MAX_SEED} (2**63 - 1)")
    if device is not None:
        resolve_device(device)
    if probes is not None and not list(probes):
        raise AuditkitInputError(
            "--probes: no probe names given; list some (e.g. performance,adversarial) or leave "
            "the flag out to run every probe"
        )
    selected, broken = select_probes(probes, budget, options)
    names = [p.name for p in selected] + [b.name for b in broken]
    for probe in options or {}:
        if probe not in names:
            raise AuditkitInputError(
                f"--set {probe}.…: probe {probe!r} is not selected by --probes (selected: "
                f"{', '.join(names)}); add it to --probes or drop the option"
            )
    if policy is None:
        return None
    direct = {
        spec_name(s): dict(getattr(s, "metrics", {}))
        for s in probes or []
        if not isinstance(s, str)
    }
    loaded = load_policy(policy, extra_metrics=direct)
    check_selection(loaded, names)
    # Options for probes this run does not select configure nothing; the rest must be valid.
    from_policy = {p: o for p, o in loaded.options.items() if p in names}
    if from_policy:
        try:
            select_probes(probes, budget, from_policy)
        except AuditkitInputError as exc:
            raise AuditkitInputError(f"{loaded.source} [checks]: {exc}") from None
        select_probes(probes, budget, merged_options(loaded, options))
    return loaded
