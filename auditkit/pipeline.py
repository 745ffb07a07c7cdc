"""Run probes over a shared context: one clean forward pass, isolation, seeds, checkpoints."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
import time
import traceback
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from auditkit._version import __version__
from auditkit.adapters.base import ModelAdapter
from auditkit.data.core import AuditData, make_splits
from auditkit.errors import AuditkitInputError
from auditkit.probes.base import BUDGETS, Probe
from auditkit.progress import Progress
from auditkit.registry import discover_probes
from auditkit.results import AuditResult, ProbeResult, compute_verdict

DEFAULT_SEED = 0


def derive_seed(seed: int, name: str) -> int:
    """A stable per-probe seed, so a probe's numbers do not depend on which others ran."""
    return (int(seed) * 1_000_003 + zlib.crc32(name.encode())) % (2**31 - 1)


@dataclass
class AuditContext:
    """Everything a probe may use. Built once per audit; probes must not mutate the data.

    Attributes:
        adapter: the model seen through the adapter contract.
        data: the audit examples.
        splits: deterministic index arrays (``calibration``, ``evaluation``).
        clean_logits: logits of the whole audit set, computed ONCE and shared (CPU tensor).
        seed, budget, device: run settings.
        results: results of the probes that already ran (cross-probe consumers read these).
        artifacts: in-memory per-example arrays probes share (not written to JSON), e.g.
            ``artifacts["adversarial"]["robust_correct"]``.
    """

    adapter: ModelAdapter
    data: AuditData
    seed: int
    budget: str
    splits: dict[str, np.ndarray]
    clean_logits: torch.Tensor
    progress: Progress = field(default_factory=lambda: Progress(False))
    results: dict[str, ProbeResult] = field(default_factory=dict)
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return self.adapter.device

    @property
    def clean_probabilities(self) -> torch.Tensor:
        return torch.softmax(self.clean_logits, dim=-1)

    @property
    def clean_predictions(self) -> torch.Tensor:
        return self.clean_logits.argmax(dim=-1)

    @property
    def clean_correct(self) -> torch.Tensor:
        return self.clean_predictions == self.data.y

    def generator(self, name: str, device: torch.device | str = "cpu") -> torch.Generator:
        """A torch generator seeded for ``name`` (use instead of global RNG state)."""
        g = torch.Generator(device=device)
        g.manual_seed(derive_seed(self.seed, name))
        return g

    def rng(self, name: str) -> np.random.Generator:
        return np.random.default_rng(derive_seed(self.seed, name))


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
    return env


def select_probes(
    names: Sequence[str] | None, budget: str, options: Mapping[str, Mapping[str, Any]] | None
) -> tuple[list[Probe], list[ProbeResult]]:
    """Instantiate the requested probes; plugins that fail to load become error results."""
    if budget not in BUDGETS:
        raise AuditkitInputError(f"--budget {budget}: unknown budget; use one of {', '.join(BUDGETS)}")
    entries = discover_probes()
    wanted = list(names) if names else list(entries)
    unknown = [n for n in wanted if n not in entries]
    if unknown:
        raise AuditkitInputError(
            f"--probes {','.join(unknown)}: unknown probe (available: {', '.join(entries)})"
        )
    options = dict(options or {})
    stray = [n for n in options if n not in entries]
    if stray:
        raise AuditkitInputError(
            f"--set {stray[0]}.…: unknown probe {stray[0]!r} (available: {', '.join(entries)})"
        )
    probes, broken = [], []
    for name in wanted:
        entry = entries[name]
        if not entry.loaded:
            broken.append(
                ProbeResult(name=name, status="error", error=f"plugin failed to load: {entry.error}")
            )
            continue
        probes.append(entry.obj(budget=budget, **dict(options.get(name, {}))))
    return probes, broken


class _Checkpoint:
    """Finished probe results kept on disk so ``--resume`` never recomputes them."""

    def __init__(self, directory: Path | None, key: str) -> None:
        self.directory = directory / ".auditkit-checkpoint" / key if directory else None

    def load(self, name: str) -> ProbeResult | None:
        if self.directory is None:
            return None
        path = self.directory / f"{name}.json"
        if not path.is_file():
            return None
        result = ProbeResult.from_dict(json.loads(path.read_text(encoding="utf-8")))
        return result if result.status != "error" else None

    def save(self, result: ProbeResult) -> None:
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / f"{result.name}.json").write_text(
            json.dumps(result.to_dict(), allow_nan=False), encoding="utf-8"
        )


def run_probe(probe: Probe, context: AuditContext, *, debug: bool = False) -> ProbeResult:
    """Run one probe in isolation: an exception becomes ``status: error``, never a crash."""
    reason = probe.skip_reason(context)
    if reason:
        return ProbeResult(name=probe.name, status="skipped", skip_reason=reason, summary=reason)
    seed_everything(derive_seed(context.seed, probe.name))
    started = time.perf_counter()
    try:
        result = probe.run(context)
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
            seconds=time.perf_counter() - started,
        )
    if not result.seconds:
        from dataclasses import replace

        result = replace(result, seconds=time.perf_counter() - started)
    return result


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
        from auditkit import errors

        raise AuditkitInputError(
            errors.SHAPE_MISMATCH.format(
                data_shape=tuple(data.input_shape), model_shape=tuple(adapter.input_shape)
            )
        )
    sample = data.x[: min(len(data), 64)]
    if hasattr(adapter, "diagnose"):
        adapter.diagnose(sample, data.y[: len(sample)])

    clean_logits = adapter.predict_logits(data.x)  # the single shared clean pass
    if clean_logits.shape[-1] != adapter.num_classes:
        raise AuditkitInputError(
            f"model returns {clean_logits.shape[-1]} outputs but declares {adapter.num_classes}"
        )
    if len(data) and int(data.y.max()) >= adapter.num_classes:
        raise AuditkitInputError(
            f"data has label {int(data.y.max())} but the model has only {adapter.num_classes} "
            "outputs; check --data and the model's classes"
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


def run_audit(
    adapter: ModelAdapter,
    data: AuditData,
    *,
    probes: Sequence[str] | None = None,
    budget: str = "standard",
    seed: int = DEFAULT_SEED,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    model_info: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    checkpoint_dir: str | Path | None = None,
    debug: bool = False,
) -> AuditResult:
    """Audit ``adapter`` on ``data`` with the selected probes; gates are applied by the caller.

    Example:
        >>> result = run_audit(adapter, load_data("digits"), budget="fast", seed=0)
    """
    started_at = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    selected, broken = select_probes(probes, budget, options)
    progress = progress or Progress()
    seed_everything(seed)

    context = build_context(adapter, data, seed=seed, budget=budget, progress=progress)
    model = dict(model_info or {})
    model.setdefault("format", adapter.format)
    model.setdefault("num_classes", adapter.num_classes)
    model["adapter"] = adapter.describe()
    data_info = data.describe()
    data_info["splits"] = describe_splits(context.splits, seed)
    key = hashlib.sha256(
        json.dumps(
            [model.get("sha256"), data_info["fingerprint"], seed, budget, sorted((options or {}).items())],
            default=str,
        ).encode()
    ).hexdigest()[:16]
    checkpoint = _Checkpoint(Path(checkpoint_dir) if checkpoint_dir else None, key)

    results: dict[str, ProbeResult] = {r.name: r for r in broken}
    with progress.session():
        for probe in selected:
            cached = checkpoint.load(probe.name)
            if cached is not None:
                result = cached
            else:
                progress.log(f"running {probe.name}")
                result = run_probe(probe, context, debug=debug)
                checkpoint.save(result)
            results[probe.name] = result
            context.results[probe.name] = result

    ordered = {name: results[name] for name in [*(p.name for p in selected), *(b.name for b in broken)]}
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
        },
        started_at=started_at,
        duration_seconds=time.perf_counter() - t0,
        auditkit_version=__version__,
    )
