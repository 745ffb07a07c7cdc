"""Run probes over a shared context: one clean forward pass, isolation, seeds, checkpoints."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
import time
import traceback
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
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
# build_context diagnoses the adapter on the first examples (output kind, randomness, gradients).
DIAGNOSTIC_SAMPLE = 64


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
    if budget not in BUDGETS:
        raise AuditkitInputError(f"--budget {budget}: unknown budget; use one of {', '.join(BUDGETS)}")
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


class _Checkpoint:
    """Finished probe results kept on disk so ``--resume`` never recomputes them.

    The directory is keyed by model, data, seed, budget and options; each file also records the
    probe's own configuration, so a probe configured differently is run again.
    """

    def __init__(self, directory: Path | None, key: str) -> None:
        self.directory = directory / ".auditkit-checkpoint" / key if directory else None

    @staticmethod
    def _config_key(probe: Probe) -> str:
        text = json.dumps(
            [getattr(probe, "budget", None), getattr(probe, "config", {})],
            sort_keys=True, default=repr,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def load(self, probe: Probe) -> ProbeResult | None:
        """The stored result of ``probe``, or None when it must run (again)."""
        if self.directory is None:
            return None
        path = self.directory / f"{probe.name}.json"
        if not path.is_file():
            return None
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            if stored.get("probe_config") != self._config_key(probe):
                return None
            result = ProbeResult.from_dict(stored["result"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None  # a damaged checkpoint is recomputed, never trusted
        return result if result.status != "error" else None

    def load_artifacts(self, probe: Probe) -> dict[str, Any] | None:
        """Per-example arrays the probe shared with later probes (numbers only, no pickle)."""
        path = self.directory / f"{probe.name}.artifacts.npz" if self.directory else None
        if path is None or not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as archive:
                return {k: archive[k].item() if archive[k].ndim == 0 else archive[k]
                        for k in archive.files}
        except (OSError, ValueError):
            return None

    def save(self, probe: Probe, result: ProbeResult, artifacts: Mapping[str, Any] | None) -> None:
        if self.directory is None or result.status == "error":
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        if artifacts:
            # Cross-probe consumers (bias reads adversarial/calibration per-example results) must
            # see the same inputs on a resumed run as on the original one.
            arrays = {k: np.asarray(v) for k, v in artifacts.items()}
            if all(a.dtype != object for a in arrays.values()):
                with open(self.directory / f"{probe.name}.artifacts.npz", "wb") as fh:
                    np.savez(fh, **arrays)
        path = self.directory / f"{probe.name}.json"
        tmp = path.with_suffix(".json.tmp")
        payload = {"probe_config": self._config_key(probe), "result": result.to_dict()}
        tmp.write_text(json.dumps(payload, allow_nan=False), encoding="utf-8")
        tmp.replace(path)  # atomic: an interrupted run never leaves half a checkpoint


def run_probe(probe: Probe, context: AuditContext, *, debug: bool = False) -> ProbeResult:
    """Run one probe in isolation: an exception becomes ``status: error``, never a crash."""
    started = time.perf_counter()
    try:
        reason = probe.skip_reason(context)
        if reason:
            return ProbeResult(name=probe.name, status="skipped", skip_reason=reason, summary=reason)
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
        )
    from dataclasses import replace

    # Rounded here, as audit.json stores it, so a result survives a JSON round trip unchanged.
    seconds = result.seconds or (time.perf_counter() - started)
    info = {
        metric: {"direction": spec.direction, "description": spec.description}
        for metric, spec in getattr(probe, "metrics", {}).items()
        if metric in result.metrics
    }
    return replace(
        result, name=probe.name, seconds=round(float(seconds), 4),
        metric_info={**info, **result.metric_info},
    )


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
    if not len(data):
        raise AuditkitInputError(f"data {data.name}: no examples to audit")
    # Checked before any forward pass: an out-of-range label would crash the gradient check.
    if int(data.y.min()) < 0:
        raise AuditkitInputError(
            f"data has label {int(data.y.min())}; labels must be class indices 0..K-1"
        )
    if int(data.y.max()) >= adapter.num_classes:
        raise AuditkitInputError(
            f"data has label {int(data.y.max())} but the model has only {adapter.num_classes} "
            "outputs; check --data and the model's classes"
        )
    sample = data.x[: min(len(data), DIAGNOSTIC_SAMPLE)]
    if hasattr(adapter, "diagnose"):
        adapter.diagnose(sample, data.y[: len(sample)])

    clean_logits = adapter.predict_logits(data.x)  # the single shared clean pass
    if clean_logits.ndim != 2 or clean_logits.shape != (len(data), adapter.num_classes):
        raise AuditkitInputError(
            f"model returns outputs of shape {tuple(clean_logits.shape)} for {len(data)} "
            f"examples; expected ({len(data)}, {adapter.num_classes})"
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
    probes: Sequence[ProbeSpec] | None = None,
    budget: str = "standard",
    seed: int = DEFAULT_SEED,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    model_info: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    checkpoint_dir: str | Path | None = None,
    debug: bool = False,
) -> AuditResult:
    """Audit ``adapter`` on ``data`` with the selected probes; gates are applied by the caller.

    Args:
        probes: registry names (default: every installed probe); ``Probe`` instances or
            subclasses are used as given.
        checkpoint_dir: keep finished probe results there and reuse them on the next run with
            the same model, data, seed, budget and options (``--resume``).

    Example:
        >>> result = run_audit(adapter, load_data("digits"), budget="fast", seed=0)
    """
    started_at = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    selected, broken = select_probes(probes, budget, options)
    progress = progress or Progress()
    with preserved_random_state():
        seed_everything(seed)
        return _run_selected(
            adapter, data, selected, broken, seed=seed, budget=budget, options=options,
            model_info=model_info, progress=progress, checkpoint_dir=checkpoint_dir,
            debug=debug, started_at=started_at, t0=t0,
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
    debug: bool,
    started_at: str,
    t0: float,
) -> AuditResult:

    context = build_context(adapter, data, seed=seed, budget=budget, progress=progress)
    model = dict(model_info or {})
    model.setdefault("format", adapter.format)
    model.setdefault("num_classes", adapter.num_classes)
    model["adapter"] = adapter.describe()
    data_info = data.describe()
    data_info["splits"] = describe_splits(context.splits, seed)
    # Without a file hash (in-memory models, black boxes) the model is identified by what it
    # predicts on this data, so a different model never reuses another's checkpoint.
    identity = model.get("sha256") or hashlib.sha256(
        context.clean_logits.numpy().tobytes()
    ).hexdigest()
    key = hashlib.sha256(
        json.dumps(
            [identity, data_info["fingerprint"], seed, budget, sorted((options or {}).items())],
            default=str,
        ).encode()
    ).hexdigest()[:16]
    checkpoint = _Checkpoint(Path(checkpoint_dir) if checkpoint_dir else None, key)

    results: dict[str, ProbeResult] = {r.name: r for r in broken}
    with progress.session():
        for probe in selected:
            cached = checkpoint.load(probe)
            if cached is not None:
                result = cached
                artifacts = checkpoint.load_artifacts(probe)
                if artifacts is not None:
                    context.artifacts[probe.name] = artifacts
            else:
                progress.log(f"running {probe.name}")
                result = run_probe(probe, context, debug=debug)
                checkpoint.save(probe, result, context.artifacts.get(probe.name))
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
        duration_seconds=round(time.perf_counter() - t0, 3),
        auditkit_version=__version__,
    )
