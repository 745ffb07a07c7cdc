"""Run probes over a shared context: one clean forward pass, isolation, seeds, checkpoints."""

from __future__ import annotations

import datetime as _dt
import hashlib
import platform
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from auditkit import errors
from auditkit._version import __version__
from auditkit.adapters.base import ModelAdapter
from auditkit.checkpoints import _Checkpoint, _checkpoint_key, _upstream, _watching_reads
from auditkit.context import AuditContext, derive_seed, diagnostic_sample_size
from auditkit.data.core import AuditData, make_splits
from auditkit.errors import AuditkitInputError
from auditkit.probes.base import Probe, check_budget
from auditkit.progress import Progress
from auditkit.registry import discover_probes
from auditkit.results import AuditResult, ProbeResult, compute_verdict

DEFAULT_SEED = 0


def describe_splits(splits: Mapping[str, np.ndarray], seed: int) -> dict[str, Any]:
    """Record the split rule, sizes and an index hash (the indices follow from the seed)."""
    return {
        "rule": "seeded permutation (numpy default_rng(seed)), first 30% → calibration",
        "seed": seed,
        **{
            name: {"n": int(len(idx)), "sha256": hashlib.sha256(idx.tobytes()).hexdigest()[:16]}
            for name, idx in splits.items()
        },
    }


@contextmanager
def preserved_random_state() -> Iterator[None]:
    """Run a block with its own seeds and leave the caller's global RNG states as they were.

    Probes seed the global generators (dropout and some libraries draw from them); an audit
    called from a user's training script must not change what that script draws next.
    """
    import random

    python_state = random.getstate()
    numpy_state = np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _environment(adapter: ModelAdapter, seed: int) -> dict[str, Any]:
    env = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(adapter.device),
        "seed": seed,
        "threads": torch.get_num_threads(),
    }
    if adapter.device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(adapter.device)
    from auditkit import distributed

    if distributed.state().active:
        env["world_size"] = distributed.state().world_size
        env["backend"] = distributed.state().backend
    return env


ProbeSpec = str | Probe | type[Probe]


def select_probes(
    names: Sequence[ProbeSpec] | None,
    budget: str,
    options: Mapping[str, Mapping[str, Any]] | None,
) -> tuple[list[Probe], list[ProbeResult]]:
    """Instantiate the requested probes; plugins that fail to load become error results.

    ``names`` holds registry names and, for the Python API and tests, ``Probe`` instances or
    subclasses (used as given, without a registry lookup).
    """
    check_budget(budget)
    entries = discover_probes()
    wanted: list[ProbeSpec] = list(dict.fromkeys(names)) if names else list(entries)
    direct = {_spec_name(s) for s in wanted if not isinstance(s, str)}
    unknown = [n for n in wanted if isinstance(n, str) and n not in entries]
    if unknown:
        raise AuditkitInputError(
            f"--probes {','.join(unknown)}: unknown probe (available: {', '.join(entries)})"
        )
    options = dict(options or {})
    stray = [n for n in options if n not in entries and n not in direct]
    if stray:
        raise AuditkitInputError(
            f"--set {stray[0]}.…: unknown probe {stray[0]!r} (available: {', '.join(entries)})"
        )
    probes, broken = [], []
    for spec in wanted:
        if isinstance(spec, Probe):
            probes.append(spec)
            continue
        if isinstance(spec, str):
            entry = entries[spec]
            name, cls = spec, entry.obj
            if not entry.loaded:
                broken.append(_broken(name, f"plugin failed to load: {entry.error}"))
                continue
        else:
            name, cls = _spec_name(spec), spec
        if not (isinstance(cls, type) and issubclass(cls, Probe)):
            broken.append(_broken(name, f"plugin is not a Probe subclass: {cls!r}"))
            continue
        try:
            probes.append(cls(budget=budget, **dict(options.get(name, {}))))
        except AuditkitInputError:
            raise  # unknown or invalid options are the user's to fix (exit 2)
        except Exception as exc:  # a plugin's constructor must not take the audit down
            broken.append(_broken(name, f"probe failed to start: {type(exc).__name__}: {exc}"))
    return probes, broken


def _spec_name(spec: Probe | type[Probe]) -> str:
    return str(getattr(spec, "name", "") or getattr(spec, "__name__", type(spec).__name__))


def _broken(name: str, message: str) -> ProbeResult:
    return ProbeResult(name=name, status="error", error=message, summary=message)


def run_probe(probe: Probe, context: AuditContext, *, debug: bool = False) -> ProbeResult:
    """Run one probe in isolation: an exception becomes ``status: error``, never a crash.

    The result records the options the probe ran with and its report partial, whatever
    happened, so audit.json says how every probe was configured.
    """
    from dataclasses import replace

    started = time.perf_counter()
    recorded = {
        "options": probe.resolved_options(),
        "report_template": getattr(probe, "report_template", None),
        "title": str(getattr(probe, "title", "") or ""),
    }
    try:
        applies_to = probe.not_applicable(context)
        if applies_to:
            reason = f"not applicable to this model: applies to {applies_to}"
            return ProbeResult(name=probe.name, status="skipped", skip_reason=reason, summary=reason,
                               details={"not_applicable": applies_to}, **recorded)
        reason = probe.skip_reason(context)
        if reason:
            return ProbeResult(
                name=probe.name, status="skipped", skip_reason=reason, summary=reason, **recorded
            )
        seed_everything(derive_seed(context.seed, probe.name))
        result = probe.run(context)
        if not isinstance(result, ProbeResult):
            raise TypeError(f"run() returned a {type(result).__name__}, not a ProbeResult")
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        if debug:
            raise
        message = f"{type(exc).__name__}: {exc}"
        return ProbeResult(
            name=probe.name,
            status="error",
            error=message,
            summary=f"the probe crashed: {message}",
            details={"traceback": traceback.format_exc(limit=8)},
            seconds=round(time.perf_counter() - started, 4),
            **recorded,
        )
    # Rounded here, as audit.json stores it, so a result survives a JSON round trip unchanged.
    seconds = result.seconds or (time.perf_counter() - started)
    return replace(
        result, name=probe.name, seconds=round(float(seconds), 4),
        metric_info={**declared_metric_info(probe, result.metrics), **result.metric_info},
        options=result.options or recorded["options"],
        report_template=result.report_template or recorded["report_template"],
        title=result.title or recorded["title"],
    )


def ran_only(plan: Any, results: Mapping[str, ProbeResult]) -> Any:
    """The work plan without the probes that were then skipped: the recorded plan (and the
    report's sizing sentence) describes only work that happened."""
    from dataclasses import replace

    ran = {name for name, r in results.items() if r.status != "skipped"}

    def keep(d: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in d.items() if k in ran}

    return replace(
        plan, estimates=keep(plan.estimates), default_estimates=keep(plan.default_estimates),
        reasons=keep(plan.reasons), errors=keep(plan.errors),
        unfit=[n for n in plan.unfit if n in ran], not_sized=[n for n in plan.not_sized if n in ran],
    )


def declared_metric_info(
    probe: Probe | type[Probe], metrics: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """What ``probe`` declares (direction, description) about each metric it reported; stored
    in audit.json so the report explains every metric from the JSON alone."""
    return {
        metric: {"direction": spec.direction, "description": spec.description}
        for metric, spec in getattr(probe, "metrics", {}).items()
        if metric in metrics
    }


def build_context(
    adapter: ModelAdapter,
    data: AuditData,
    *,
    seed: int = DEFAULT_SEED,
    budget: str = "standard",
    progress: Progress | None = None,
) -> AuditContext:
    """Validate model against data, diagnose the adapter and do the one shared clean pass.

    Probe tests use this directly: ``probe.run(build_context(adapter, data, budget="fast"))``.
    """
    if tuple(data.input_shape) != tuple(adapter.input_shape):
        raise AuditkitInputError(shape_mismatch_message(data, adapter.input_shape))
    if not len(data):
        raise AuditkitInputError(f"data {data.name}: no examples to audit")
    # The one label check (loaders only check that labels are integers): checked before any
    # forward pass, since an out-of-range label would crash the gradient check.
    if int(data.y.min()) < 0:
        raise AuditkitInputError(
            f"data {data.name} has label {int(data.y.min())}; labels must be class indices "
            "0..K-1"
        )
    if int(data.y.max()) >= adapter.num_classes:
        raise AuditkitInputError(
            f"data {data.name} has label {int(data.y.max())} but the model has only "
            f"{adapter.num_classes} outputs; check --data and the model's classes"
        )
    # The adapter is diagnosed on the first examples (output kind, randomness, gradients).
    sample = data.x[: min(len(data), diagnostic_sample_size(data.input_shape))]
    if hasattr(adapter, "diagnose"):
        adapter.diagnose(sample, data.y[: len(sample)])

    from auditkit import distributed

    # The single shared clean pass (split across ranks under torchrun, gathered on each).
    clean_logits = distributed.predict_logits(adapter, data.x)
    if clean_logits.ndim != 2 or clean_logits.shape != (len(data), adapter.num_classes):
        raise AuditkitInputError(
            f"model returns outputs of shape {tuple(clean_logits.shape)} for {len(data)} "
            f"examples; expected ({len(data)}, {adapter.num_classes})"
        )
    # NaN logits would turn every metric into NaN (or a silently wrong number) downstream.
    broken = int((~torch.isfinite(clean_logits)).any(dim=1).sum())
    if broken:
        raise AuditkitInputError(
            f"the model returns NaN/inf logits for {broken} of {len(data)} audit examples; "
            "check normalization (--mean/--std) and the model"
        )
    context = AuditContext(
        adapter=adapter,
        data=data,
        seed=seed,
        budget=budget,
        splits=make_splits(len(data), seed),
        clean_logits=clean_logits,
        progress=progress or Progress(False),
    )
    return context


def shape_mismatch_message(data: AuditData, model_shape: Sequence[int]) -> str:
    """The one-line error for data whose examples do not have the model's input shape.

    For a table it points at ``--keep-sensitive-features`` when the widths differ by exactly
    the sensitive columns (``api.build_adapter`` reports the same mismatch the same way).
    """
    hint: dict[str, Any] = {}
    if data.feature_names is not None and data.groups:
        columns = list(data.groups)
        hint = {
            "sensitive": columns,
            "sensitive_kept": all(c in data.feature_names for c in columns),
        }
    return errors.shape_mismatch(tuple(data.input_shape), tuple(model_shape), **hint)


def run_audit(
    adapter: ModelAdapter,
    data: AuditData,
    *,
    probes: Sequence[ProbeSpec] | None = None,
    budget: str = "standard",
    seed: int = DEFAULT_SEED,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    model_info: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool | None = None,
    debug: bool = False,
    max_minutes: float | None = None,
    size_to_clock: bool = True,
    cost: Any = None,
) -> AuditResult:
    """Audit ``adapter`` on ``data`` with the selected probes; gates are applied by the caller.

    Args:
        probes: registry names (default: every installed probe); ``Probe`` instances or
            subclasses are used as given.
        checkpoint_dir: write each finished probe's result there (under
            ``.auditkit-checkpoint/``), so an interrupted audit loses only the probe it was in.
        resume: reuse those results instead of recomputing them. A result is reused only for
            the same model file and weights (hash of the clean logits), adapter settings
            (normalization, input box, output kind, device type), data, seed, budget, options,
            auditkit version and probe configuration, and only when the other probes' results it
            read are the same now. ``None`` (default) reads whenever ``checkpoint_dir`` is given;
            ``False`` only writes (a plain run); ``True`` needs ``checkpoint_dir``.
        max_minutes: a limit on probe time replacing the budget's (``auditkit.sizing``).
        size_to_clock: measure the model's cost and size the probes' work to the budget.
        cost: a recorded cost (``audit.json``'s ``settings.sizing.cost``) to plan with instead
            of measuring, so a rerun sizes its work exactly as the recorded run did.

    Example:
        >>> result = run_audit(adapter, load_data("digits"), budget="fast", seed=0)
    """
    started_at = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    if resume and checkpoint_dir is None:
        raise AuditkitInputError(
            "resume=True needs checkpoint_dir: the folder an earlier run wrote its checkpoints to"
        )
    read_checkpoints = checkpoint_dir is not None if resume is None else bool(resume)
    selected, broken = select_probes(probes, budget, options)
    from auditkit import distributed

    if not distributed.is_main():
        # Under torchrun only rank 0 writes and shows progress; it also decides what is reused.
        checkpoint_dir, read_checkpoints, progress = None, False, Progress(False)
    progress = progress or Progress(False)  # a library call is silent unless asked
    with preserved_random_state():
        seed_everything(seed)
        return _run_selected(
            adapter, data, selected, broken, seed=seed, budget=budget, options=options,
            model_info=model_info, progress=progress, checkpoint_dir=checkpoint_dir,
            read_checkpoints=read_checkpoints, debug=debug, started_at=started_at, t0=t0,
            sizing={"enabled": size_to_clock, "max_minutes": max_minutes, "cost": cost,
                    "given": [p for p in selected if any(p is s for s in probes or [])]},
        )


def _run_selected(
    adapter: ModelAdapter,
    data: AuditData,
    selected: list[Probe],
    broken: list[ProbeResult],
    *,
    seed: int,
    budget: str,
    options: Mapping[str, Mapping[str, Any]] | None,
    model_info: Mapping[str, Any] | None,
    progress: Progress,
    checkpoint_dir: str | Path | None,
    read_checkpoints: bool,
    debug: bool,
    started_at: str,
    t0: float,
    sizing: Mapping[str, Any] | None = None,
) -> AuditResult:

    from auditkit import distributed
    from auditkit.loading.model_path import model_path

    context = build_context(adapter, data, seed=seed, budget=budget, progress=progress)
    model = dict(model_info or {})
    model.setdefault("format", adapter.format)
    model.setdefault("num_classes", adapter.num_classes)
    model["adapter"] = adapter.describe()
    model.update(model_path(model["adapter"]))  # which path ran (white/black box), in words
    data_info = data.describe()
    data_info["splits"] = describe_splits(context.splits, seed)
    key = _checkpoint_key(context, model, data_info["fingerprint"], options)
    checkpoint = _Checkpoint(
        Path(checkpoint_dir) if checkpoint_dir else None, key, read=read_checkpoints
    )
    from auditkit.sizing import fit_to_clock

    # Sizing may lower the threads or change the layout for this scan: given back on exit.
    with fit_to_clock(
        selected, context, x=data.x, budget=budget, options=options,
        checkpoint=checkpoint.directory, reuse=read_checkpoints, **dict(sizing or {}),
    ) as fit:
        selected = fit.probes
        results: dict[str, ProbeResult] = {r.name: r for r in broken}
        with progress.session():
            if fit.plan is not None and fit.plan.noteworthy:
                # Before the probes: what the clock changed, and how long the work will take.
                progress.log(f"sizing: {fit.plan.summary()}")
            for index, probe in enumerate(selected, 1):
                progress.start_probe(probe.name, index, len(selected))
                cached = checkpoint.load(probe, context)
                artifacts = checkpoint.load_artifacts(probe) if cached is not None else None
                if distributed.state().active:
                    # Every rank runs (or reuses) exactly what rank 0 does.
                    cached, artifacts = distributed.broadcast_object((cached, artifacts))
                if cached is not None:
                    result = cached
                    if artifacts is not None:
                        context.artifacts[probe.name] = artifacts
                else:
                    fit.before_probe(index, probe.name, progress.log)
                    with _watching_reads(context, probe.name) as reads:
                        result = run_probe(probe, context, debug=debug)
                    context.results[probe.name] = result
                    checkpoint.save(
                        probe, result, context.artifacts.get(probe.name), _upstream(context, reads)
                    )
                results[probe.name] = result
                context.results[probe.name] = result
                progress.end_probe(probe.name, result.status, reused=cached is not None)

        ordered = {name: results[name] for name in [*(p.name for p in selected), *(b.name for b in broken)]}
        plan = ran_only(fit.plan, ordered) if fit.plan is not None else None
        return AuditResult(
            model=model,
            data=data_info,
            environment=_environment(adapter, seed),
            probes=ordered,
            gates=[],
            verdict=compute_verdict(ordered, []),
            settings={
                "budget": budget,
                "seed": seed,
                "probes": list(ordered),
                "options": {k: dict(v) for k, v in (options or {}).items()},
                **({"sizing": plan.to_dict()} if plan is not None else {}),
            },
            started_at=started_at,
            duration_seconds=round(time.perf_counter() - t0, 3),
            auditkit_version=__version__,
        )
